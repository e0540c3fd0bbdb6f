"""The one table of synthetic sounds (`SOUNDS`) behind every generated data set: the tests' clips, the
benches', the mixtures recipe and the soundscapes. Each generator maps sample times `t` (seconds), a
random generator and the rate to a raw signal; `make_sound` levels one as a clip, `make_dataset` writes a
folder-per-class set. Synthetic sets check machinery, never accuracy on real recordings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Generator = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]
CLASSES = ("tone", "chirp", "noise", "clicks")  # the tests' four classes, easy to tell apart


def _tone(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    f = rng.uniform(300, 1200)
    return np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)


def _chirp(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    f0, f1, dur = rng.uniform(200, 500), rng.uniform(2000, 4000), max(t.size / sr, 1e-3)
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))


def _noise(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """White noise in bursts."""
    return rng.normal(0, 1, t.size) * (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0)


def _clicks(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    x = np.zeros(t.size)
    period = max(1, int(sr / rng.uniform(8, 20)))
    for s in range(int(rng.integers(0, period)), t.size - 30, period):
        x[s : s + 30] = rng.choice([-1, 1]) * np.hanning(60)[30:]
    return x


def _hiss(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Band-limited noise (≈ 4–7 kHz at 16 kHz), on and off in bursts."""
    n = t.size
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, d=1 / 16000)
    spec[(f < rng.uniform(3500, 4500)) | (f > rng.uniform(6000, 7500))] = 0
    x = np.fft.irfft(spec, n)
    return x * (np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6)) > -0.3)


def _siren(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """A warble: carrier 1–1.8 kHz swept ±250 Hz at 3–6 Hz."""
    fc, dev, rate = rng.uniform(1000, 1800), rng.uniform(150, 300), rng.uniform(3, 6)
    return np.sin(2 * np.pi * fc * t + dev / rate * np.sin(2 * np.pi * rate * t))


def _knock(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Two to five decaying low thumps (90–200 Hz)."""
    x = np.zeros(t.size)
    f, tau = rng.uniform(90, 200), rng.uniform(0.02, 0.05)
    hits = np.sort(rng.uniform(0, max(t[-1] - 0.1, 0.01), size=int(rng.integers(2, 6))))
    for h in hits:
        s = int(h * sr)
        k = np.arange(t.size - s) / sr
        x[s:] += np.exp(-k / tau) * np.sin(2 * np.pi * f * k)
    return x


SOUNDS: dict[str, Generator] = {
    "tone": _tone,
    "chirp": _chirp,
    "noise": _noise,
    "clicks": _clicks,
    "hiss": _hiss,
    "siren": _siren,
    "knock": _knock,
}


def raw_sound(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of `kind` straight from its generator (unlevelled)."""
    if kind not in SOUNDS:
        raise ValueError(f"no synthetic sound {kind!r}; known: {', '.join(SOUNDS)}")
    return SOUNDS[kind](np.arange(n) / sr, rng, sr)


def make_sound(kind: str, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of `kind` with random pitch/level/placement, embedded in quiet noise."""
    n = int(sr * duration)
    x = raw_sound(kind, n, sr, rng)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.9)
    return (x + rng.normal(0, 0.005, n)).astype(np.float32)


def make_dataset(
    root: Path,
    n_per_class: int = 12,
    sr: int = 16000,
    duration: float = 1.0,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
    fmt: str = "wav",
) -> Path:
    """Folder-per-class dataset under `root`; returns root."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            x = make_sound(c, sr, duration * rng.uniform(0.7, 1.3), rng)
            sf.write(root / c / f"{c}_{i:03d}.{fmt}", x, sr)
    return root
