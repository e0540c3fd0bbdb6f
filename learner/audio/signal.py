"""Signal steps in NumPy: mono, resample, trim silence, crop / repeat-pad, windows.

Plain functions on arrays; `learner.audio.pipeline.ClipPipeline` strings them together with an AudioConfig
for everyone (training's signal store and transforms, the Predictor, the scorers, the demo).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

_FRAME = 1024
_HOP = 256


def resample_ratio(orig_sr: int, target_sr: int) -> Fraction:
    """up / down of `resample` (denominator at most 1000, so odd rates get a close ratio and a short
    filter)."""
    return Fraction(int(target_sr), int(orig_sr)).limit_denominator(1000)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (scipy), shared by every backend so both see the same samples
    (`learner.audio.stream.Resampler` gives the same samples block by block)."""
    if orig_sr == target_sr or x.size == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = resample_ratio(orig_sr, target_sr)
    y = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(y, dtype=np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) → (frames,) by averaging channels (never over time)."""
    if x.ndim == 1:
        return x
    return x.mean(axis=1)


def duration_to_samples(seconds: float, sample_rate: int) -> int:
    """Seconds → whole samples, rounding half up (the same everywhere a span is cut)."""
    return int(math.floor(seconds * sample_rate + 0.5))


def frame_db(x: np.ndarray, frame: int = _FRAME, hop: int = _HOP) -> np.ndarray:
    """RMS energy per frame in dB relative to the loudest frame (0 dB at the peak)."""
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    n = 1 + (x.size - frame) // hop
    if frame % hop == 0:  # energy per hop-sized block, then k consecutive blocks per frame: O(n), no gather
        k = frame // hop
        blocks = np.square(x[: (n + k - 1) * hop].reshape(-1, hop), dtype=np.float64).sum(axis=1)
        rms = np.sqrt(sum(blocks[i : i + n] for i in range(k)) / frame)
    else:
        idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
        rms = np.sqrt(np.mean(np.square(x[idx], dtype=np.float64), axis=1))
    peak = rms.max()
    if peak <= 0:
        return np.full(n, -np.inf)
    return 20 * np.log10(np.maximum(rms, 1e-12) / peak)


def trim_silence(x: np.ndarray, top_db: float | None = 60.0, mode: str = "edges") -> np.ndarray:
    """Drop what is more than `top_db` below the loudest frame.

    "edges" keeps everything between the first and last loud frame; "all" also removes silent gaps,
    concatenating the loud parts. A clip that is silent throughout is returned unchanged (there is
    nothing better to keep, and an empty clip would break the crop).
    """
    if top_db is None or x.size == 0:
        return x
    db = frame_db(x)
    loud = db > -top_db
    if not loud.any() or loud.all():
        return x
    if mode == "edges":
        idx = np.flatnonzero(loud)
        start, end = idx[0] * _HOP, min(x.size, idx[-1] * _HOP + _FRAME)
        return x[start:end]
    keep = np.zeros(x.size, dtype=bool)
    for i in np.flatnonzero(loud):
        keep[i * _HOP : i * _HOP + _FRAME] = True
    return x[keep]


def crop_pad(
    x: np.ndarray,
    n: int,
    offset: float | None = 0.5,
    rng: np.random.Generator | None = None,
    pad: str = "repeat",
) -> np.ndarray:
    """Exactly `n` samples: crop a long clip; repeat a short one (`pad="repeat"`) or place it in silence
    (`pad="zeros"`).

    `offset` in [0, 1] places the crop, or the short clip inside the silence (0.5 = centre, the inference
    choice); `offset=None` draws it from `rng` (the training choice: a random time shift), and rotates a
    repeat-padded clip so the repeat seam moves.
    """
    if x.size == 0:
        return np.zeros(n, dtype=np.float32)
    frac = rng.random() if offset is None and rng is not None else (0.5 if offset is None else offset)
    if x.size >= n:
        start = int(round(frac * (x.size - n)))
        return np.ascontiguousarray(x[start : start + n], dtype=np.float32)
    if pad == "zeros":
        y = np.zeros(n, dtype=np.float32)
        start = int(round(frac * (n - x.size)))
        y[start : start + x.size] = x
        return y
    reps = -(-n // x.size)
    y = np.tile(x, reps)
    if offset is None and rng is not None:
        y = np.roll(y, int(rng.integers(0, x.size)))
    return np.ascontiguousarray(y[:n], dtype=np.float32)


def windows(x: np.ndarray, n: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a long signal into windows of `n` samples every `hop` samples.

    Returns (windows[k, n], starts[k]). Windows start every `hop`; one more window aligned to the end
    covers the tail, so every sample is scored and no window is padding. A signal no longer than one
    window gives one (repeat-padded) window.
    """
    starts = window_starts(x.size, n, hop)
    if x.size <= n:
        return crop_pad(x, n, 0.0)[None, :], starts
    out = np.stack([x[s : s + n] for s in starts]).astype(np.float32, copy=False)
    return out, starts


def window_starts(n_samples: int, n: int, hop: int) -> np.ndarray:
    """Where `windows` starts its windows of `n` samples over a signal of `n_samples` (tail window aligned
    to the end): the one rule for scoring's windows and the training windows cut from annotations."""
    if hop <= 0 or n <= 0:
        raise ValueError(f"window ({n}) and hop ({hop}) must be positive")
    if n_samples <= n:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, n_samples - n + 1, hop))
    if starts[-1] + n < n_samples:
        starts.append(n_samples - n)
    return np.asarray(starts, dtype=np.int64)
