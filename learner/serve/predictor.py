"""The one inference path: load a model directory once, preprocess exactly as in training, batch, top-k.

The demo, `evaluate`, and the predict and score jobs all call this class. Item preprocessing is the model's
`ClipPipeline` (NumPy: decode → trim → centre crop, or windows), shared by every backend; the backend only
maps fixed-length waveforms (B, samples) to logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import AudioDecodeError, ClipPipeline, Decoded, Source, TooShortError, WindowPlan
from learner.audio.decode import decode_array
from learner.audio.limits import MIN_DURATION_S, too_short
from learner.audio.stream import StreamSizes
from learner.config import AudioConfig
from learner.folder import ModelDirError, read_config
from learner.hub import resolve
from learner.report.thresholds import detected, threshold_vector
from learner.serve.backends import BACKENDS, BackendSpec, scores_from_logits
from learner.serve.events import Event, EventRule, events_for
from learner.serve.longfile import stream_windows
from learner.serve.prediction import Prediction
from learner.serve.reject import Rejection


class Predictor:
    """Load once (`from_dir` / `from_pretrained`), then `predict`, `predict_many` or `predict_waves`."""

    def __init__(
        self,
        config: dict[str, Any],
        backend: Any,
        model_id: str = "",
        revision: str = "",
        batch_size: int = 32,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number from 1 up, got {batch_size!r}")
        self.config = config
        self.cfg = AudioConfig.from_dict(config["audio"])
        self.pipeline = ClipPipeline(self.cfg)
        self.classes: list[str] = list(config["classes"])
        self.arch: str = config["arch"]
        self.backend = backend
        self.model_id, self.revision = model_id, revision
        self.batch_size = batch_size
        self.stream_sizes = StreamSizes()  # how a long file is decoded and windowed block by block
        self.folder: Path | None = None
        self.task: str = config.get("task", "single")  # absent in folders written before multi-label
        self.thresholds = threshold_vector(config, self.classes)
        self.rejection = Rejection.from_config(config)  # "not one of the words" (learner.serve.reject)
        self.min_duration_s = MIN_DURATION_S  # less audio is refused, as jobs.score refuses it

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        backend: str = "auto",
        allow_pickle: bool = False,
        device: str | None = None,
        threads: int | None = None,
        **kw: Any,
    ) -> Predictor:
        """A local model directory. `allow_pickle=True` is the only way model.pkl is ever read."""
        folder = Path(path)
        config = read_config(folder)
        cfg = AudioConfig.from_dict(config["audio"])
        name = backend
        if backend == "auto":
            name = "onnx" if "onnx" in BACKENDS and (folder / "model.onnx").is_file() else "torch"
            if (
                name == "torch"
                and not (folder / "model.safetensors").is_file()
                and (folder / "model.int8.onnx").is_file()
            ):
                name = "onnx-int8"  # a shipped int8-only folder (the demo's default model)
            if not (folder / "model.safetensors").is_file() and (folder / "model.pkl").is_file():
                name = "pickle"
        if name == "pickle" and not allow_pickle:
            problem = f"{folder}: loading model.pkl runs code from the file (it is a pickle)"
            e = ModelDirError(f"{problem}; pass allow_pickle=True only if you trust it")
            e.problem, e.field = problem, "allow_pickle"  # a job says what to do instead (jobs._cli)
            raise e
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
        impl = BACKENDS[name](BackendSpec(folder, config, cfg, device=device, threads=threads))
        model_id = kw.pop("model_id", str(folder))
        p = cls(config, impl, model_id=model_id, revision=kw.pop("revision", _revision_of(folder)), **kw)
        p.folder = folder
        return p

    @classmethod
    def from_pretrained(
        cls, ref: str, *, token: str | None = None, endpoint: str | None = None, **kw: Any
    ) -> Predictor:
        """A local directory or a Hub id `user/name[@revision]` (downloaded once into the HF cache)."""
        folder = resolve(ref, include_pickle=bool(kw.get("allow_pickle")), token=token, endpoint=endpoint)
        kw.setdefault("model_id", ref.split("@")[0] if not Path(ref).exists() else str(folder))
        return cls.from_dir(folder, **kw)

    # --- item pipeline (NumPy, shared by every backend): `self.pipeline` ------------------------------------

    def decode(
        self,
        src: Source | Decoded | Signal,
        max_duration_s: float | None = None,
        max_bytes: int | None = None,
        sample_rate: int | None = None,
    ) -> Decoded:
        """Decoded mono float32 at the model's rate; limits (duration, file size) are the caller's choice.

        `src` is a path or bytes (`ClipPipeline.decode`), or a signal already in memory: a NumPy array
        with its `sample_rate`, a `(sample_rate, array)` pair (Gradio's numpy audio) or a dict with
        `array`/`raw` and `sampling_rate` (Hugging Face datasets and pipelines)."""
        if isinstance(src, Decoded):
            return src
        signal, rate = _signal_of(src, sample_rate)
        if signal is not None:
            return decode_array(signal, rate, self.cfg.sample_rate, max_duration_s)
        return self.pipeline.decode(src, max_duration_s=max_duration_s, max_bytes=max_bytes)

    def prepare(self, signal: np.ndarray) -> np.ndarray:
        """Decoded signal → one fixed-length clip, as in validation (`ClipPipeline.prepare`)."""
        return self.pipeline.prepare(signal)

    # --- model --------------------------------------------------------------------------------------------

    def predict_waves(self, waves: np.ndarray) -> np.ndarray:
        """Fixed-length waveforms (B, n_samples) → class probabilities (B, n_classes), in batches (softmax, or
        a sigmoid per class for multi-label models)."""
        waves = np.asarray(waves, dtype=np.float32).reshape(len(waves), -1)
        out = [
            scores_from_logits(self.backend(waves[i : i + self.batch_size]), self.task)
            for i in range(0, len(waves), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    def predict_windows(
        self, signal: np.ndarray, plan: WindowPlan, chunk: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """(window probabilities (k, n_classes), window starts in s) over a decoded signal, `chunk` windows at
        a
        time, so a four-hour file needs the memory of one chunk."""
        probs, starts = [], []
        for wins, st in self.pipeline.chunks(signal, plan, chunk):
            probs.append(self.predict_waves(wins))
            starts.append(st)
        return np.concatenate(probs), np.concatenate(starts)

    def detect(self, probs: np.ndarray) -> list[str]:
        """Labels at or above their thresholds (config.json's, calibrated at training), best first; for a
        single-label model the top class or nothing ("none of the known classes"). A reject class (such as
        `unknown` or `silence`, learner.serve.reject) is never a detection: it says none was made."""
        hits = detected(probs, self.classes, self.thresholds, self.task)
        return [c for c in hits if c not in self.rejection.classes]

    def answer(self, probs: np.ndarray) -> tuple[str, bool]:
        """(the answer a person is told, whether it is a rejection) for one row of class probabilities: the
        top class, a reject class, or the reject answer when the top class is below its threshold."""
        rule = self.rejection
        if self.task == "multi":
            hits = detected(probs, self.classes, self.thresholds, self.task)  # a reject class may answer
            answer = hits[0] if hits else rule.answer
        else:
            top = int(np.asarray(probs).argmax())
            answer = rule.decide(self.classes[top], float(probs[top]), float(self.thresholds[top]))
        return answer, rule.rejects(answer)

    def _top(self, probs: np.ndarray, k: int) -> tuple[list[str], list[float]]:
        order = self.pipeline.top_k(probs, k)
        return [self.classes[i] for i in order], [float(probs[i]) for i in order]

    def predict(
        self,
        src: Source | Decoded | Signal,
        top_k: int = 5,
        window: str | float | None = "auto",
        hop: float | None = None,
        max_duration_s: float | None = None,
        max_bytes: int | None = None,
        sample_rate: int | None = None,
        events: EventRule | None = None,
    ) -> Prediction:
        """Classify one input (a file, bytes, or a signal with its `sample_rate`: see `decode`).
        `window="auto"` scores inputs longer than twice the clip length in windows (mean of window
        probabilities); a number forces windows of that many seconds; None = one centre crop.
        A windowed prediction also lists its `events` (the model's thresholds unless `events` says otherwise).
        A file (path or bytes) is decoded at the model's rate block by block, and a long one windowed as it
        is decoded (`learner.serve.longfile`): same result, memory bounded by a batch of windows."""
        path = str(src) if isinstance(src, (str, Path)) else ""
        if window is not None and isinstance(src, (str, Path, bytes)):
            plan = self.pipeline.window_plan(None if window == "auto" else float(window), hop)
            d, scored = stream_windows(
                self.pipeline,
                self.predict_waves,
                src,
                plan,
                max_duration_s,
                max_bytes,
                self.batch_size,
                self.stream_sizes,
            )
            if scored is None:  # not long: the whole-file path on its decoded samples
                return self.predict_decoded(d, top_k, window, hop, events, path)
            wp, starts, kept = scored
            return self.windowed(d, plan, wp, starts, kept.__getitem__, top_k, events, path)
        return self.predict_decoded(
            self.decode(src, max_duration_s, max_bytes, sample_rate), top_k, window, hop, events, path
        )

    def predict_decoded(
        self,
        d: Decoded,
        top_k: int = 5,
        window: str | float | None = "auto",
        hop: float | None = None,
        events: EventRule | None = None,
        path: str = "",
    ) -> Prediction:
        """`predict` on a decoded signal held whole; too little audio is a `TooShortError`."""
        self.check_long_enough(d, path)
        pipe = self.pipeline
        if window is not None and pipe.wants_windows(d.samples.size, forced=window != "auto"):
            plan = pipe.window_plan(None if window == "auto" else float(window), hop)
            wp, starts = self.predict_windows(d.samples, plan)

            def clip_at(k: int) -> np.ndarray:  # that one window again (not every window from it to the end)
                s = int(round(starts[k] * self.cfg.sample_rate))
                return pipe.windows(d.samples[s : s + plan.size], plan)[0][0]

            return self.windowed(d, plan, wp, starts, clip_at, top_k, events, path)
        clip = pipe.prepare(d.samples)
        return self._prediction(d, self.predict_waves(clip[None])[0], top_k, clip=clip)

    def check_long_enough(self, d: Decoded, path: str = "") -> None:
        """Refuse what jobs.score refuses (`learner.audio.limits.too_short`): one rule for every caller."""
        if reason := too_short(d.duration_s, self.min_duration_s):
            raise TooShortError(path or "<input>", reason)

    def windowed(
        self,
        d: Decoded,
        plan: WindowPlan,
        wp: np.ndarray,
        starts: np.ndarray,
        clip_at: Callable[[int], np.ndarray],
        top_k: int = 5,
        events: EventRule | None = None,
        path: str = "",
    ) -> Prediction:
        """The prediction of window probabilities `wp` (mean over windows); `clip_at(k)` gives window k, asked
        only for the window where the top class scored highest."""
        probs = wp.mean(axis=0)
        clip = clip_at(int(wp[:, int(probs.argmax())].argmax()))
        window_s, hop_s = plan.size / self.cfg.sample_rate, plan.hop / self.cfg.sample_rate
        return self._prediction(
            d,
            probs,
            top_k,
            window_starts=[float(s) for s in starts],
            window_probs=wp,
            clip=clip,
            window_s=window_s,
            hop_s=hop_s,
            events=self.events(starts, wp, window_s, events, d.duration_s, path),
        )

    def _prediction(self, d: Decoded, probs: np.ndarray, top_k: int, **more: Any) -> Prediction:
        """A Prediction of `probs` for the decoded input `d` (windows, clip and events in `more`)."""
        labels, scores = self._top(probs, top_k)
        answer, rejected = self.answer(probs)
        return Prediction(
            labels,
            scores,
            probs,
            d.duration_s,
            d.orig_sample_rate,
            d.channels,
            d.decoder,
            detected=self.detect(probs),
            warning=d.warning,
            answer=answer,
            answer_text=self.rejection.text(answer),
            rejected=rejected,
            **more,
        )

    def events(
        self,
        starts: np.ndarray,
        window_probs: np.ndarray,
        window_s: float,
        rule: EventRule | None = None,
        duration_s: float | None = None,
        path: str = "",
    ) -> list[Event]:
        """Window scores → events with this model's thresholds and background classes (config.json), `rule`
        overriding."""
        return events_for(starts, window_probs, self.classes, window_s, self.config, rule, duration_s, path)

    def __call__(
        self, inputs: Any, *, top_k: int = 5, sampling_rate: int | None = None, sample_rate: int | None = None
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """`[{"label", "score"}, ...]`, best first, like Hugging Face's audio-classification pipeline.

        `inputs` is one input (path, bytes, NumPy signal with `sampling_rate`, `(rate, array)` or a dict
        with `array`/`raw` and `sampling_rate`) or a list of them (then one list per input)."""
        rate = sampling_rate if sampling_rate is not None else sample_rate
        if isinstance(inputs, list):
            return [self(x, top_k=top_k, sampling_rate=rate) for x in inputs]
        pred = self.predict(inputs, top_k=top_k, sample_rate=rate)
        return [{"label": lab, "score": score} for lab, score in zip(pred.labels, pred.scores, strict=True)]

    def predict_many(self, srcs: list[Source], top_k: int = 5) -> list[Prediction | AudioDecodeError]:
        """Many short inputs (one centre crop each) batched through the model; bad files come back as
        errors."""
        results: list[Prediction | AudioDecodeError] = []
        for i in range(0, len(srcs), self.batch_size):
            chunk = srcs[i : i + self.batch_size]
            decoded: list[Decoded | AudioDecodeError] = []
            for s in chunk:
                try:
                    d = self.decode(s)
                    self.check_long_enough(d, str(s) if isinstance(s, (str, Path)) else "")
                    decoded.append(d)
                except AudioDecodeError as e:
                    decoded.append(e)
            clips = [self.pipeline.prepare(d.samples) for d in decoded if isinstance(d, Decoded)]
            probs = iter(self.predict_waves(np.stack(clips)) if clips else [])
            clip_it = iter(clips)
            for d in decoded:
                if isinstance(d, AudioDecodeError):
                    results.append(d)
                    continue
                results.append(self._prediction(d, next(probs), top_k, clip=next(clip_it)))
        return results


Signal = np.ndarray | tuple | dict


def _signal_of(src: Any, sample_rate: int | None) -> tuple[np.ndarray | None, int | None]:
    """(array, rate) when `src` is a signal in memory (array, (rate, array) or {"array"|"raw",
    "sampling_rate"}),
    else (None, None) for a path or bytes."""
    if isinstance(src, dict):
        key = "array" if "array" in src else "raw" if "raw" in src else None
        if key is None:
            raise ValueError(
                f"an audio dict needs 'array' (or 'raw') and 'sampling_rate'; got keys {sorted(src)}"
            )
        return np.asarray(src[key]), src.get("sampling_rate", sample_rate)
    if (
        isinstance(src, tuple)
        and len(src) == 2
        and isinstance(src[0], (int, np.integer))
        and isinstance(src[1], np.ndarray)
    ):
        return src[1], int(src[0])
    if isinstance(src, np.ndarray):
        return src, sample_rate
    return None, None


def _revision_of(folder: Path) -> str:
    """The Hub commit a cached snapshot came from (its folder name), else empty for local models."""
    parts = Path(os.path.realpath(folder)).parts
    return parts[-1] if len(parts) > 2 and parts[-2] == "snapshots" else ""
