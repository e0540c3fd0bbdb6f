"""`ClipPipeline(cfg)`: every step between a file and the model's input, in one NumPy object.

Training's signal store (`learner.data.signals`) and its fastai transforms, the Predictor (torch and ONNX
backends), both scoring engines and the demo hold one of these, built from the model's `AudioConfig`, so the
window rule, the trim and the crop exist once. What the demo hears is what the model was trained on.

    decode (mono, resampled) → trim silence → either one centre crop / repeat-pad (`prepare`)
                                            or fixed-length windows over the untrimmed signal (`windows`)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.audio.decode import Decoded, Source, decode
from learner.audio.signal import crop_pad, trim_silence, windows
from learner.config import AudioConfig

#: Inputs longer than this many clip lengths are scored in windows when the caller leaves it to us.
AUTO_WINDOW_FACTOR = 2
MAX_WINDOW_S = 600.0  # the longest model input a config may ask for (learner.folder.schema.MAX_CLIP_S)


@dataclass(frozen=True)
class WindowPlan:
    """Windows of `size` samples every `hop` samples (at the model's sample rate)."""

    size: int
    hop: int

    def count(self, n_samples: int) -> int:
        """How many windows `learner.audio.signal.windows` cuts from a signal of `n_samples` (tail window
        included)."""
        return 1 + max(0, int(np.ceil((n_samples - self.size) / self.hop)))


@dataclass(frozen=True)
class ClipPipeline:
    """The item pipeline of one model. Picklable (worker processes and Ray actors get their own copy)."""

    cfg: AudioConfig

    def decode(
        self,
        src: Source | Decoded,
        *,
        max_duration_s: float | None = None,
        max_bytes: int | None = None,
        name: str | None = None,
    ) -> Decoded:
        """Mono float32 at the model's rate; limits (duration, file size) are the caller's choice."""
        if isinstance(src, Decoded):
            return src
        return decode(
            src, self.cfg.sample_rate, max_duration_s=max_duration_s, max_bytes=max_bytes, name=name
        )

    def trim(self, signal: np.ndarray) -> np.ndarray:
        """Drop silence as the config says (edges, or every gap)."""
        return trim_silence(signal, self.cfg.trim_db, self.cfg.trim_mode)

    def load(self, src: Source) -> np.ndarray:
        """Decode and trim: everything before the crop, which training draws anew every epoch."""
        return self.trim(self.decode(src).samples)

    def prepare(self, signal: np.ndarray) -> np.ndarray:
        """A decoded signal → one fixed-length clip (trim, centre crop / repeat-pad), as in validation."""
        return crop_pad(self.trim(signal), self.cfg.n_samples, pad=self.cfg.pad_mode)

    def window_plan(self, window_s: float | None = None, hop_s: float | None = None) -> WindowPlan:
        """Window and hop in samples: the clip length and half of it unless given (seconds).

        A window shorter than the clip is refused (ValueError): padded with silence to the clip and then
        standardised, it is an input the model never saw (a 2 s model on 1 s windows called every window
        of noise "b" at 0.94). Longer windows are centre-cropped to the clip, as any long input."""
        win = window_s or self.cfg.duration
        sr = self.cfg.sample_rate
        hop = hop_s or win / 2
        if not (1 / sr <= win <= MAX_WINDOW_S and 1 / sr <= hop):  # also refuses nan and inf
            raise ValueError(
                f"window {win:g} s and hop {hop:g} s: each must be at least one sample (1/{sr} s), "
                f"the window at most {MAX_WINDOW_S:g} s"
            )
        plan = WindowPlan(int(round(win * sr)), int(round(hop * sr)))
        if plan.size < self.cfg.n_samples:
            raise ValueError(
                f"windows={win:g} s is shorter than the model's {self.cfg.duration:g} s clip (each window "
                f"would be padded with silence the model never heard); use windows of at least "
                f"{self.cfg.duration:g} s (the default)"
            )
        return plan

    def wants_windows(self, n_samples: int, forced: bool = False) -> bool:
        """Windows when asked for, else for inputs longer than AUTO_WINDOW_FACTOR clip lengths."""
        return forced or n_samples > AUTO_WINDOW_FACTOR * self.cfg.n_samples

    def windows(self, signal: np.ndarray, plan: WindowPlan, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(prepared windows (k, n_samples), start times in seconds) over the untrimmed `signal`.

        Times refer to the file: `offset` is where `signal` starts in it (samples), for callers that cut a
        long signal into chunks.
        """
        wins, starts = windows(signal, plan.size, plan.hop)
        return np.stack([self.prepare(w) for w in wins]), (starts + offset) / self.cfg.sample_rate

    def chunks(self, signal: np.ndarray, plan: WindowPlan, chunk: int = 256):
        """`windows` over a long signal, at most `chunk` windows at a time (bounded memory).

        Each chunk is the slice that holds exactly its windows, so the windows and start times equal one
        whole-signal call. Yields (windows, starts_s).
        """
        a = 0
        while True:
            last = signal.size - a <= plan.size + chunk * plan.hop
            seg = signal[a:] if last else signal[a : a + (chunk - 1) * plan.hop + plan.size]
            yield self.windows(seg, plan, offset=a)
            if last:
                return
            a += chunk * plan.hop

    @staticmethod
    def top_k(probs: np.ndarray, k: int) -> np.ndarray:
        """Indices of the `k` most probable classes, best first (ties keep class order; 1 ≤ k ≤ n_classes)."""
        return np.argsort(-probs, kind="stable")[: max(1, min(int(k), probs.shape[-1]))]
