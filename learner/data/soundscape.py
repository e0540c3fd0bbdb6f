"""Generated long recordings with known sound events, and the clips to train an event model on (tests and
benches).

    make_soundscape(600, 40, overlaps=6) → a 10-minute recording: steady background noise, 40 events of 1.5–4
    s
                                           (tone, chirp, clicks), some overlapping another class, and the
                                           truth
    make_event_dataset(root)             → folder-per-class 1 s clips of the same classes plus `background`
    make_multilabel_event_dataset(root)  → 1 s clips holding 0, 1 or 2 of those sounds at once, `path,labels`
    compose_soundscape(sounds, beds)     → given sounds ({class: [signals]}, real or `generated_sounds()`) at
                                           random times and SNRs over a given background, some overlapping
    write_soundscapes(root, sounds, beds) → rec_00.wav ... + boxes.csv (the truth) [+ a table per recording]

A softmax classifier has no "nothing" output, so the single-label event model is trained with a `background`
class (the recording's noise alone); `learner.serve.events` never reports that class as an event. A
multi-label
(sigmoid) model needs none: a clip of background alone has no label, and two overlapping sounds have both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from learner.data.events import Event
from learner.data.sounds import make_sound

EVENT_CLASSES = ("tone", "chirp", "clicks")
BACKGROUND = "background"
NOISE_LEVEL = (0.004, 0.012)  # background noise standard deviation (events peak at 0.15–0.6)


def background(n: int, rng: np.random.Generator, level: float | None = None) -> np.ndarray:
    """Steady noise with a little low hum: what the recorder hears when nothing happens."""
    level = rng.uniform(*NOISE_LEVEL) if level is None else level
    t = np.arange(n) / 16000
    hum = 0.3 * np.sin(2 * np.pi * rng.uniform(50, 120) * t + rng.uniform(0, 6.3))
    return (level * (rng.normal(0, 1, n) + hum)).astype(np.float32)


def event_sound(kind: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A `kind` event of `seconds`: calls of about a second back to back (a chirp is a series of sweeps),
    faded
    in and out over 5 ms, peaking at 0.15–0.6."""
    parts, n = [], int(round(seconds * sr))
    while sum(p.size for p in parts) < n:
        parts.append(make_sound(kind, sr, float(rng.uniform(0.8, 1.2)), rng))
    x = np.concatenate(parts)[:n]
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.15, 0.6)
    fade = min(n // 2, int(0.005 * sr))
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    x[:fade] *= ramp
    x[n - fade :] *= ramp[::-1]
    return x.astype(np.float32)


def make_soundscape(
    duration_s: float = 600.0,
    n_events: int = 40,
    overlaps: int = 6,
    sr: int = 16000,
    seed: int = 0,
    classes: tuple[str, ...] = EVENT_CLASSES,
    length_s: tuple[float, float] = (1.5, 4.0),
) -> tuple[np.ndarray, list[Event]]:
    """(signal, true events sorted by start). `overlaps` of the events start 0.3–0.8 s before another event
    of a different class ends; the rest get a slot of their own with at least a second of background
    around."""
    rng = np.random.default_rng(seed)
    x = background(int(round(duration_s * sr)), rng)
    solo = n_events - overlaps
    slot = duration_s / solo
    if slot < 2 * length_s[1] + 2:
        raise ValueError(f"{n_events} events of up to {length_s[1]} s do not fit in {duration_s} s")
    partners = set(rng.choice(solo, size=overlaps, replace=False).tolist())
    truth: list[Event] = []

    def place(label: str, start: float, seconds: float) -> None:
        a = int(round(start * sr))
        s = event_sound(label, seconds, sr, rng)
        x[a : a + s.size] += s[: x.size - a]
        truth.append(Event("", label, round(start, 4), round(start + s.size / sr, 4), 1.0, 1.0))

    for i in range(solo):
        label = str(rng.choice(classes))
        seconds = float(rng.uniform(*length_s))
        start = i * slot + float(rng.uniform(1.0, slot - 2 * length_s[1] - 1.0))
        place(label, start, seconds)
        if i in partners:
            other = str(rng.choice([c for c in classes if c != label]))
            place(other, start + seconds - float(rng.uniform(0.3, 0.8)), float(rng.uniform(*length_s)))
    truth.sort(key=lambda e: e.start_s)
    return np.clip(x, -1, 1), truth


def write_soundscape(path: Path, **kw) -> list[Event]:
    x, truth = make_soundscape(**kw)
    sf.write(path, x, kw.get("sr", 16000), subtype="PCM_16")
    return [Event(str(path), e.label, e.start_s, e.end_s, 1.0, 1.0) for e in truth]


def make_event_dataset(
    root: Path,
    n_per_class: int = 40,
    sr: int = 16000,
    seed: int = 0,
    classes: tuple[str, ...] = EVENT_CLASSES,
    edge_share: float = 0.5,
) -> Path:
    """Folder-per-class 1 s clips: each event class over background noise, plus `background` alone.

    A window in a long recording often holds only part of an event; `edge_share` of the clips teach the model
    where the line is: an event clip is then only 55–90 % event (the rest background, before or after it), and
    a background clip holds the edge of an event over 5–40 % of it. So a window fires when the sound fills
    about half of it, which is what the centre rule of `learner.serve.events` assumes."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in (*classes, BACKGROUND):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            x = background(sr, rng)
            edge = rng.random() < edge_share
            kind = c if c != BACKGROUND else str(rng.choice(classes)) if edge else None
            if kind is not None:
                share = (
                    1.0 if not edge else rng.uniform(0.55, 0.9) if c != BACKGROUND else rng.uniform(0.05, 0.4)
                )
                s = event_sound(kind, share, sr, rng)
                at = 0 if rng.random() < 0.5 else sr - s.size  # the event ends in the clip, or starts in it
                x[at : at + s.size] += s
            sf.write(root / c / f"{c}_{i:03d}.wav", np.clip(x, -1, 1), sr, subtype="PCM_16")
    return root


SOURCE_COUNTS = (0.3, 0.4, 0.3)  # share of multi-label clips holding 0, 1 and 2 sounds
PLACEMENTS = {"whole": 0.4, "mostly": 0.35, "edge": 0.25}  # how one sound sits in a clip (see below)


def make_multilabel_event_dataset(
    root: Path, n_clips: int = 240, sr: int = 16000, seed: int = 0, classes: tuple[str, ...] = EVENT_CLASSES
) -> Path:
    """`root/manifest.csv` (`path,labels`, `;`-separated, empty = background alone) over 1 s clips of
    background
    noise holding 0, 1 or 2 sounds of different classes (`SOURCE_COUNTS`), labels known → the manifest's path.

    Each sound fills the whole clip, or 55–90 % of it ("mostly", labelled), or only 5–40 % ("edge", not
    labelled: a window fires when the sound fills about half of it, as in `make_event_dataset`); a partial
    sound
    starts or ends the clip, so two of them overlap the way one event hands over to the next in the recording.
    Clips with no sound hold, half of the time, the unlabelled edge of one."""
    import csv

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    kinds, weights = list(PLACEMENTS), np.array(list(PLACEMENTS.values()))
    rows = []
    for i in range(n_clips):
        x = background(sr, rng)
        k = int(rng.choice(len(SOURCE_COUNTS), p=SOURCE_COUNTS))
        sounds = [
            (str(c), str(rng.choice(kinds, p=weights / weights.sum())))
            for c in rng.choice(classes, k, replace=False)
        ]
        if k == 0 and rng.random() < 0.5:
            sounds = [(str(rng.choice(classes)), "edge")]
        labels = []
        for kind, placement in sounds:
            share = {"whole": 1.0, "mostly": rng.uniform(0.55, 0.9), "edge": rng.uniform(0.05, 0.4)}[
                placement
            ]
            s = event_sound(kind, share, sr, rng)
            at = 0 if rng.random() < 0.5 else sr - s.size  # the sound ends in the clip, or starts in it
            x[at : at + s.size] += s
            if placement != "edge":
                labels.append(kind)
        rel = f"clips/mix_{i:04d}.wav"
        sf.write(root / rel, np.clip(x, -1, 1), sr, subtype="PCM_16")
        rows.append((rel, ";".join(sorted(labels))))
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels"])
        w.writerows(rows)
    return root / "manifest.csv"


# --- long recordings from given sounds over a given bed (real clips: bench/soundscape.py; generated: tests)

SCENE_TRIM_DB = 30.0  # a sound's box is its part louder than this below its peak (what an annotator boxes)


def generated_sounds(
    classes: tuple[str, ...] = EVENT_CLASSES, n_per_class: int = 6, sr: int = 16000, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """{class: sounds of 1-3 s}: the generated stand-in for a devset's clips in `compose_soundscape`."""
    rng = np.random.default_rng(seed)
    return {
        c: [event_sound(c, float(rng.uniform(1.0, 3.0)), sr, rng) for _ in range(n_per_class)]
        for c in classes
    }


BEDS = ("loop", "mix")  # compose_soundscape's backgrounds: one site per recording, or one site for all


def draw_bed(
    beds: list[np.ndarray], n: int, rng: np.random.Generator, sr: int, how: str = "loop"
) -> np.ndarray:
    """`n` samples of background from `beds` (`how`: compose_soundscape's `bed`), pieces joined with 50 ms
    crossfades. "loop": one bed from a random offset, looped if short (each recording its own site; a 5 s
    bed repeats 720 times an hour). "mix": pieces of 1-5 s from random beds at random offsets and ±3 dB, so
    recordings drawn from the same beds share a site's sounds without repeating one stretch of it."""
    if how not in BEDS:
        raise ValueError(f"bed {how!r}: choose one of {', '.join(BEDS)}")
    fade = int(0.05 * sr)
    out, at = np.zeros(n, dtype=np.float32), 0
    src = beds[int(rng.integers(len(beds)))].astype(np.float32)  # drawn for "mix" too: one random stream
    if how == "loop":
        fade = min(fade, src.size // 4)
        at = -int(rng.integers(max(1, src.size - fade)))
    while at < n:
        if how == "mix":
            src = beds[int(rng.integers(len(beds)))].astype(np.float32)
            size = min(src.size, int(rng.uniform(1.0, 5.0) * sr))
            offset = int(rng.integers(src.size - size + 1))
            src = src[offset : offset + size] * np.float32(10 ** (rng.uniform(-3, 3) / 20))
        f = min(fade, src.size // 4)
        piece = src.copy()
        ramp = np.linspace(0, 1, f, dtype=np.float32)
        piece[:f] *= ramp
        piece[src.size - f :] *= ramp[::-1]
        a, b = max(at, 0), min(at + src.size, n)
        out[a:b] += piece[a - at : b - at]
        at += src.size - f
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def compose_soundscape(
    sounds: dict[str, list[np.ndarray]],
    beds: list[np.ndarray],
    duration_s: float = 120.0,
    *,
    sr: int = 16000,
    n_events: int = 20,
    overlap_share: float = 0.25,
    snr_db: tuple[float, float] = (0.0, 15.0),
    seed: int = 0,
    bed: str = "loop",
) -> tuple[np.ndarray, list[Event]]:
    """(signal, true events by start): `n_events` sounds (classes taken in turn, shuffled) placed at random
    gaps over background drawn from `beds` as `bed` says (draw_bed), each at an SNR drawn from `snr_db` (its
    RMS against the bed's), about `overlap_share` of them starting 0.3-0.8 s before the previous one ends.

    Each sound is first trimmed to its part within `SCENE_TRIM_DB` of its peak, so an event is exactly where
    the sound is loud: the box an annotator would draw. The mixture is scaled down only if it would clip."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    from learner.audio.signal import trim_silence

    order = [c for _ in range(n_events // len(sounds) + 1) for c in rng.permutation(sorted(sounds))][
        :n_events
    ]
    picked = [
        (str(c), trim_silence(sounds[c][int(rng.integers(len(sounds[c])))], SCENE_TRIM_DB)) for c in order
    ]
    overlapped = [
        i > 0 and picked[i][0] != picked[i - 1][0] and rng.random() < overlap_share for i in range(n_events)
    ]
    sound_s = sum(s.size for _, s in picked) / sr
    free = duration_s - sound_s - 1.0
    if free < 0.5 * n_events:
        raise ValueError(
            f"{n_events} sounds ({sound_s:.0f} s) do not fit in {duration_s:g} s with gaps between"
        )
    gaps = rng.dirichlet(np.ones(n_events + 1)) * free  # seconds of bed before each sound not overlapped
    under = draw_bed(beds, n, rng, sr, bed)
    x, level, truth = under.copy(), _rms(under), []
    t, prev = 0.5, None
    for i, ((label, s), over) in enumerate(zip(picked, overlapped, strict=True)):
        if over and prev is not None:
            start = prev[1] - min(rng.uniform(0.3, 0.8), 0.5 * (prev[1] - prev[0]), 0.5 * s.size / sr)
        else:
            start = t + gaps[i]
        a = int(round(start * sr))
        s = s[: n - a]
        gain = level * 10 ** (rng.uniform(*snr_db) / 20) / _rms(s)
        x[a : a + s.size] += gain * s
        end = (a + s.size) / sr
        truth.append(Event("", label, round(a / sr, 4), round(end, 4), 1.0, 1.0))
        t, prev = max(t, end), (a / sr, end)
    peak = float(np.abs(x).max())
    if peak > 0.99:
        x *= 0.99 / peak
    truth.sort(key=lambda e: (e.start_s, e.label))
    return x.astype(np.float32), truth


def write_soundscapes(
    root: Path, sounds: dict[str, list[np.ndarray]], beds: list[np.ndarray],  # where, and what to place
    n_recordings: int = 4, duration_s: float = 120.0,
    *,
    sr: int = 16000, seed: int = 0,
    table: tuple[str, Callable[[list[Event], int], str]] | None = None,
    **compose: Any,
) -> pd.DataFrame:
    """`root/rec_00.wav` ... (16-bit) from `compose_soundscape(**compose)` with seeds `seed`, `seed + 1`, ...,
    the truth as `root/boxes.csv` (the box table: path,start_s,end_s,label) and, given `table` = (suffix,
    render), one table per recording beside it (e.g. `(".Table.1.selections.txt", raven_table-like)`).
    Returns the truth as a box table (`learner.data.annotations.read_boxes` of boxes.csv)."""
    from learner.data.annotations import read_boxes

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n_recordings):
        x, truth = compose_soundscape(sounds, beds, duration_s, sr=sr, seed=seed + k, **compose)
        path = root / f"rec_{k:02d}.wav"
        sf.write(path, x, sr, subtype="PCM_16")
        events = [Event(str(path), e.label, e.start_s, e.end_s, 1.0, 1.0) for e in truth]
        if table is not None:
            (root / (path.name + table[0])).write_text(table[1](events, sr), encoding="utf-8")
        rows += [(path.name, e.start_s, e.end_s, e.label) for e in events]
    pd.DataFrame(rows, columns=["path", "start_s", "end_s", "label"]).to_csv(root / "boxes.csv", index=False)
    return read_boxes(root / "boxes.csv")
