"""Generated takes and played sequences for live mode and Teach (tests and bench/live.py), from the one
table of synthetic sounds (learner/data/sounds.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learner.data.sounds import make_sound

SR = 48000  # what a browser's microphone sends
KINDS = ("background", "tone", "siren")  # the taught classes: room noise and two sounds
PATTERN = [("background", 2), ("tone", 3), ("background", 2), ("siren", 3), ("background", 2)]


def take(kind: str, seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """One take: quiet noise for "background", else the sound (random pitch, level) over quiet noise."""
    if kind == "background":
        return rng.normal(0, 0.005, int(sr * seconds)).astype(np.float32)
    return make_sound(kind, sr, seconds, rng)


def sequence(
    rng: np.random.Generator, pattern: list[tuple[str, int]] = PATTERN, sr: int = SR
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The played signal (each segment made of 1 s takes) and its known segments (label, start, end)."""
    parts, segments, at = [], [], 0.0
    for kind, seconds in pattern:
        parts.append(np.concatenate([take(kind, 1.0, rng, sr) for _ in range(seconds)]))
        segments.append((kind, at, at + seconds))
        at += seconds
    return np.concatenate(parts), segments


def new_takes_right(predictor, seed: int, n: int = 10, kinds=KINDS) -> float:
    """The share of `n` new takes (1–2 s) of each kind that the predictor names right."""
    rng = np.random.default_rng(seed)
    return float(np.mean([
        predictor.predict(take(k, rng.uniform(1, 2), rng), sample_rate=SR, window=None).label == k
        for k in kinds
        for _ in range(n)
    ]))  # fmt: skip


def teach(root: Path, session: str = "s", kinds=KINDS, n: int = 5, seed: int = 1):
    """A Classroom with one session taught `n` takes of each of `kinds`: (classroom, teacher, result)."""
    from learner.demo.teach import Classroom

    rng = np.random.default_rng(seed)
    room = Classroom(root)
    teacher = room.get(session)
    teacher.set_classes(", ".join(kinds))
    for kind in kinds:
        for _ in range(n):
            teacher.add_example(kind, (SR, (take(kind, rng.uniform(1, 2), rng) * 32767).astype(np.int16)))
    return room, teacher, teacher.train()
