"""Boxes on long recordings → labelled training windows at the model's clip length (path + offset, never cut
into files).

    windows = labelled_windows(boxes, sizes, sr, WindowRule(clip_s=1.0))   # one row per window

Windows start where scoring's do (`learner.audio.signal.window_starts`: every `hop_s`, half a clip by
default, plus one aligned to the end), so a model learns on the windows it will later score. A window takes
a box's label when their overlap is at least `min_overlap` of the shorter of the two (the box fills that
share of the window, or that share of the box lies in it: OpenSoundscape's `min_label_overlap` /
`min_label_fraction` pair as one share); several labels make it multi-label. A window with no label is
background: on a recording declared fully annotated it is a candidate, and `background_ratio` × the labelled
windows of them are drawn at random; a window inside an explicit negative row (`negative_of`) is always
kept, as background.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from learner.audio.signal import window_starts
from learner.data.annotations import NEGATIVE
from learner.data.labels import SEP

WINDOW_COLUMNS = ("path", "start_s", "offset", "labels", "kind")
KINDS = ("box", "background", "negative")  # labelled; unannotated stretch; inside an explicit negative row


@dataclass(frozen=True)
class Window:
    """`size` samples of recording `path` from sample `offset` (at the model's rate): one training item."""

    path: str
    offset: int
    size: int


@dataclass(frozen=True)
class WindowReader:
    """A window table's row → its `Window` (fastai's `get_x`; picklable for DataLoader workers)."""

    size: int

    def __call__(self, row) -> Window:
        return Window(str(row["path"]), int(row["offset"]), self.size)


@dataclass(frozen=True)
class WindowRule:
    """How boxes become windows; see the module docstring."""

    clip_s: float
    hop_s: float | None = None  # None: half a clip, as scoring
    min_overlap: float = 0.5
    background_ratio: float = 1.0
    fully_annotated: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_overlap <= 1:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        if self.background_ratio < 0:
            raise ValueError(f"background_ratio must be ≥ 0, got {self.background_ratio}")
        if self.hop_s is not None and not self.hop_s > 0:
            raise ValueError(f"window hop must be positive, got {self.hop_s}")


def _hits(starts_s: np.ndarray, clip_s: float, begin: float, end: float, share: float) -> np.ndarray:
    """Which windows [s, s + clip_s) a box [begin, end] labels (a point box: the windows holding it)."""
    if end <= begin:
        return (starts_s <= begin) & (begin < starts_s + clip_s)
    overlap = np.minimum(starts_s + clip_s, end) - np.maximum(starts_s, begin)
    return (overlap > 0) & (overlap >= share * min(clip_s, end - begin) - 1e-9)


def labelled_windows(
    boxes: pd.DataFrame, sizes: Mapping[str, int], sr: int, rule: WindowRule
) -> pd.DataFrame:
    """The training windows (`WINDOW_COLUMNS`, by path and time) of every recording in `sizes` (path →
    samples at `sr`) from the box table `boxes`: `labels` `;`-joined ("" = background), `kind` in `KINDS`.
    `attrs` counts what was drawn (`counts`) and windows both drawn and declared negative (`conflicts`)."""
    size = int(round(rule.clip_s * sr))
    hop = int(round((rule.hop_s or rule.clip_s / 2) * sr))
    negative = boxes[NEGATIVE] if NEGATIVE in boxes else pd.Series("", index=boxes.index)
    by_path = {p: g for p, g in boxes.assign(**{NEGATIVE: negative.fillna("")}).groupby("path", sort=False)}
    frames, conflicts = [], 0
    for path in sorted(sizes):
        starts = window_starts(int(sizes[path]), size, hop)
        starts_s = starts / sr
        labels = [set() for _ in starts]
        denied = np.zeros(starts.size, dtype=bool)
        for r in by_path.get(path, pd.DataFrame(columns=["start_s"])).itertuples(index=False):
            hit = np.flatnonzero(_hits(starts_s, rule.clip_s, r.start_s, r.end_s, rule.min_overlap))
            for i in hit:
                if r.negative_of:
                    denied[i] = True
                    conflicts += r.negative_of in labels[i]
                else:
                    labels[i].add(r.label)
                    conflicts += bool(denied[i])
        joined = [SEP.join(sorted(s)) for s in labels]
        kind = [
            "box" if j else "negative" if d else "background" for j, d in zip(joined, denied, strict=True)
        ]
        frames.append(
            pd.DataFrame(
                {"path": path, "start_s": starts_s, "offset": starts, "labels": joined, "kind": kind}
            )
        )
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(WINDOW_COLUMNS))
    df = _draw_background(df, rule)
    df.attrs.update(counts=df["kind"].value_counts().to_dict(), conflicts=int(conflicts))
    return df


def _draw_background(df: pd.DataFrame, rule: WindowRule) -> pd.DataFrame:
    """Labelled and negative windows all; of the background, `background_ratio` × the labelled count at
    random (none unless the recordings are declared fully annotated)."""
    background = np.flatnonzero(df["kind"].to_numpy() == "background")
    keep = np.flatnonzero(df["kind"].to_numpy() != "background")
    if rule.fully_annotated and len(background):
        n = min(len(background), int(round(rule.background_ratio * int((df["kind"] == "box").sum()))))
        keep = np.concatenate([keep, np.random.default_rng(rule.seed).choice(background, n, replace=False)])
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def cut_clips(windows: pd.DataFrame, root: Path, clip_s: float) -> pd.DataFrame:
    """Each window written as its own file under `root` (16-bit WAV at the recording's own rate): the same
    windows "cut by hand", to train on as an ordinary manifest (`path,labels,group`) and compare."""
    import soundfile as sf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, w in enumerate(windows.itertuples(index=False)):
        rate = sf.info(w.path).samplerate
        start = int(round(w.start_s * rate))
        x, _ = sf.read(w.path, start=start, frames=int(round(clip_s * rate)), dtype="int16")
        out = root / f"{Path(w.path).stem}_{k:05d}.wav"
        sf.write(out, x, rate, subtype="PCM_16")
        rows.append((str(out), w.labels, getattr(w, "group", w.path)))
    return pd.DataFrame(rows, columns=["path", "labels", "group"])
