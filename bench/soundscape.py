"""Long recordings built from real devset clips at known times over real background, with Raven tables.

    python bench/soundscape.py OUT [--split train|valid] [--recordings 4] [--minutes 2] [--events 24]
                                   [--classes frog-dev:american-bullfrog,esc-dev:dog,speech-dev:yes ...]
                                   [--bed loop|mix]

Sounds are clips of ../shared/devsets (`frog-dev`, `esc-dev`, `speech-dev`; manifests
`path,label,split,group`) of the chosen split, so recordings built from `train` and from `valid` share no
source clip and no group; the bed is esc-dev's field background (rain, wind, sea waves) of the same
split: one clip looped per recording (`--bed loop`, each recording its own site) or pieces of all of them
(`mix`, one site).
Placement, SNRs (0-15 dB by default) and overlaps are `learner.data.soundscape.compose_soundscape`'s: what
tests build from generated sounds. Writes OUT/rec_00.wav ... with `rec_00.wav.earshot.selection.table.txt`
beside each (earshot's own Raven writer) and OUT/boxes.csv (the truth). Other benches import
`devset_sounds`, `devset_beds` and `build` (with bench/ on `sys.path`, as for benchkit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import DEVSETS  # first: it puts the checkout on the import path

from learner.audio import decode
from learner.data.soundscape import BEDS, write_soundscapes
from learner.score.event_writers import EVENT_WRITERS, RAVEN_SUFFIX

BED_CLASSES = ("rain", "wind", "sea_waves")  # esc-dev's steady field sounds: the background
DEFAULT_CLASSES = (
    "frog-dev:american-bullfrog", "frog-dev:spring-peeper", "frog-dev:green-frog",
    "esc-dev:dog", "esc-dev:cow", "esc-dev:car_horn", "speech-dev:yes", "speech-dev:stop",
)  # fmt: skip


def _manifest(devset: str) -> pd.DataFrame:
    path = DEVSETS / devset / "manifest.csv"
    if not path.exists():
        raise SystemExit(f"{path}: no such devset manifest (set EARSHOT_DEVSETS to the devsets folder)")
    df = pd.read_csv(path)
    df["path"] = [str(path.parent / p) for p in df["path"]]
    return df


def devset_sounds(
    classes: tuple[str, ...] = DEFAULT_CLASSES, split: str = "train", per_class: int = 8, sr: int = 16000
) -> dict[str, list[np.ndarray]]:
    """{label: up to `per_class` decoded clips of `split`} for each `devset:label` in `classes`."""
    sounds: dict[str, list[np.ndarray]] = {}
    for spec in classes:
        devset, label = spec.split(":", 1)
        df = _manifest(devset)
        rows = df[(df["label"] == label) & (df["split"] == split)]
        if rows.empty:
            raise SystemExit(f"{devset}: no {split} clips of {label!r}")
        sounds[label] = [decode(p, sr).samples for p in rows["path"].iloc[:per_class]]
    return sounds


def devset_beds(split: str = "train", sr: int = 16000) -> list[np.ndarray]:
    """esc-dev's background clips (`BED_CLASSES`) of `split`, decoded at `sr`."""
    df = _manifest("esc-dev")
    rows = df[df["label"].isin(BED_CLASSES) & (df["split"] == split)]
    return [decode(p, sr).samples for p in rows["path"]]


def build(
    out: Path,
    *,
    split: str = "train",
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    recordings: int = 4,
    minutes: float = 2.0,
    events: int = 24,
    seed: int = 0,
    sr: int = 16000,
    **compose,
) -> pd.DataFrame:
    """The recordings and their tables in `out`; returns the truth (a box table)."""
    sounds, beds = devset_sounds(classes, split, sr=sr), devset_beds(split, sr)
    return write_soundscapes(
        out, sounds, beds, recordings, minutes * 60, sr=sr, seed=seed, n_events=events,
        table=(RAVEN_SUFFIX, EVENT_WRITERS["raven"].render), **compose,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--split", default="train", choices=("train", "valid"))
    p.add_argument("--recordings", type=int, default=4)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--events", type=int, default=24, help="sounds per recording")
    p.add_argument("--overlap-share", type=float, default=0.25)
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 15.0), metavar=("LOW_DB", "HIGH_DB"))
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="devset:label,...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bed", default="loop", choices=BEDS, help="background: one clip looped, or a mix")
    a = p.parse_args(argv)
    truth = build(
        a.out, split=a.split, classes=tuple(a.classes.split(",")), recordings=a.recordings,
        minutes=a.minutes, events=a.events, seed=a.seed, overlap_share=a.overlap_share, snr_db=tuple(a.snr),
        bed=a.bed,
    )  # fmt: skip
    overlaps = sum(
        int((g["start_s"].to_numpy()[1:] < g["end_s"].to_numpy()[:-1]).sum())
        for _, g in truth.groupby("path")
    )
    print(f"{a.recordings} recordings × {a.minutes:g} min, {len(truth)} boxes ({overlaps} overlap) → {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
