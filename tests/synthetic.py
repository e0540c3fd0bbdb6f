"""Generated audio for tests: four sound classes that a model can tell apart, in several formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("tone", "chirp", "noise", "clicks")


def make_sound(kind: str, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of `kind` with random pitch/level/placement, embedded in quiet noise."""
    n = int(sr * duration)
    t = np.arange(n) / sr
    if kind == "tone":
        f = rng.uniform(300, 1200)
        x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
    elif kind == "chirp":
        f0, f1 = rng.uniform(200, 500), rng.uniform(2000, 4000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration)))
    elif kind == "noise":
        x = rng.normal(0, 1, n)
        x *= np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0  # bursts
    elif kind == "clicks":
        x = np.zeros(n)
        period = int(sr / rng.uniform(8, 20))
        for s in range(int(rng.integers(0, period)), n - 30, period):
            x[s : s + 30] = rng.choice([-1, 1]) * np.hanning(60)[30:]
    else:
        raise ValueError(kind)
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
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            x = make_sound(c, sr, duration * rng.uniform(0.7, 1.3), rng)
            sf.write(root / c / f"{c}_{i:03d}.{fmt}", x, sr)
    return root
