"""The model's log-mel in NumPy, and occlusion saliency through any backend: what the demo draws where torch
is not installed (the lean serving venv runs ONNX Runtime only).

`logmel(x, cfg)` is `frontend.LogMel` (torchaudio's MelSpectrogram, Slaney mel scale and norm, periodic
Hann window, centred reflect-padded STFT, power → dB with a per-clip `top_db` floor) rewritten in NumPy;
equal within float32 rounding (tested against the torch module). `occlusion(...)` asks the model itself:
it removes one frequency band during one stretch of time, reruns the clip, and records how much the
target's probability fell, for every band × stretch; it needs only `Predictor.predict_waves`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from learner.config import AudioConfig

AMIN = 1e-10  # torchaudio AmplitudeToDB's floor (power)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as torchaudio's mel_scale="slaney"."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def f_max_of(cfg: AudioConfig) -> float:
    """The top of the mel range: `f_max`, else Nyquist as torchaudio computes it (integer half rate)."""
    return float(cfg.f_max) if cfg.f_max is not None else float(cfg.sample_rate // 2)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters with Slaney area normalisation (torchaudio's
    melscale_fbanks)."""
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    return fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels]))[None, :]


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT|² (n_fft // 2 + 1, frames): periodic Hann window of n_fft, centred with reflect padding."""
    x = np.asarray(x, dtype=np.float64)
    x = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.fft.rfft(x[idx] * window, axis=1)
    return (spec.real**2 + spec.imag**2).T


def logmel(x: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """One clip (samples,) → its log-mel (n_mels, frames) in dB, exactly as the model's front end computes
    it."""
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.f_min), f_max_of(cfg))
    mel = fb.T @ power_spectrogram(x, cfg.n_fft, cfg.hop_length)
    db = 10.0 * np.log10(np.maximum(mel, AMIN))
    if cfg.top_db is not None:
        db = np.maximum(db, db.max() - cfg.top_db)
    return db.astype(np.float32)


@dataclass
class Occlusion:
    """Like `saliency.Saliency`: `logmel` (n_mels, frames) in dB and `heat` (same shape, 0–1)."""

    logmel: np.ndarray
    heat: np.ndarray
    target: int
    method: str = "occlusion"
    bands: int = 0
    segments: int = 0


def occlusion(
    predict_waves: Callable[[np.ndarray], np.ndarray],
    clip: np.ndarray,
    cfg: AudioConfig,
    target: int,
    bands: int = 8,
    segments: int | None = None,
) -> Occlusion:
    """How much the `target` probability falls when one mel-spaced frequency band is removed during one
    stretch of the clip, for every band × stretch (one batch through the model, any backend).

    A band is removed with an FFT mask over the whole clip, then only inside its stretch (10 ms cosine
    edges, so no clicks are added). Cells whose removal raises the probability count as 0.
    """
    clip = np.asarray(clip, dtype=np.float32)
    n = clip.size
    segments = segments or int(np.clip(round(cfg.duration / 0.25), 4, 12))
    spectrum = np.fft.rfft(clip.astype(np.float64))
    freqs = np.fft.rfftfreq(n, 1.0 / cfg.sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(f_max_of(cfg)), bands + 1))
    edges[0], edges[-1] = 0.0, cfg.sample_rate / 2 + 1  # the lowest and highest bands reach the ends
    parts = [
        np.fft.irfft(spectrum * ((freqs >= lo) & (freqs < hi)), n) for lo, hi in zip(edges[:-1], edges[1:])
    ]
    ramp = max(1, int(0.01 * cfg.sample_rate))
    taper = np.hanning(2 * ramp + 1)
    taper /= taper.sum()
    cuts = np.linspace(0, n, segments + 1).round().astype(int)
    masks = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        m = np.zeros(n)
        m[a:b] = 1.0
        masks.append(np.convolve(m, taper, mode="same"))
    batch = np.stack([clip] + [clip - part * m for part in parts for m in masks]).astype(np.float32)
    p = predict_waves(batch)[:, target]
    drop = np.maximum(p[0] - p[1:], 0.0).reshape(bands, segments)
    spec = logmel(clip, cfg)
    n_mels, frames = spec.shape
    band_of_row = np.minimum((np.arange(n_mels) * bands) // n_mels, bands - 1)
    seg_of_frame = np.minimum(
        np.searchsorted(cuts, np.arange(frames) * cfg.hop_length, side="right") - 1, segments - 1
    )
    heat = drop[band_of_row][:, seg_of_frame]
    peak = float(heat.max())
    heat = (heat / peak if peak > 0 else np.zeros_like(heat)).astype(np.float32)
    return Occlusion(spec, heat, target, "occlusion", bands, segments)
