"""Training from Raven tables over uncut recordings vs training on the same windows cut by hand (issue 23).

    OMP_NUM_THREADS=1 python bench/train_from_boxes.py [--recordings 6] [--test-recordings 3] [--minutes 2]
                                                      [--epochs 6] [--seeds 0 1] [--work DIR]

Long recordings from real devset clips (`bench/soundscape.py`: train-split clips for training, valid-split
clips for the held-out test recordings) with earshot's Raven tables. Path "boxes": `jobs.train --data
FOLDER` (windows read from the recordings by offset). Path "cut": the windows the trainer draws
(`learner.data.box_windows.labelled_windows`, same rule and seed) written as clip files by `cut_clips`, then
`jobs.train --data cut.csv --group-col group`. Both models score every window of the test recordings
(`Predictor.predict_windows`, half-clip hop); each window's truth comes from the test boxes by the same
overlap rule; the figure is macro average precision over the classes. Prints one line per seed and path
with training CPU seconds, then the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from benchkit import CHILD_ENV, ROOT, child_cpu, train_job  # first: it puts the checkout on the import path
from soundscape import build

from learner.data.annotations import read_boxes
from learner.data.box_windows import WindowRule, cut_clips, labelled_windows

SR, CLIP_S = 16000, 2.0
AUDIO = ["--sample-rate", SR, "--duration", CLIP_S, "--n-mels", 64, "--hop", 256, "--n-fft", 512]


def _sizes(folder: Path) -> dict[str, int]:
    return {str(p): sf.info(p).frames for p in sorted(folder.glob("*.wav"))}


def _train(data: Path, out: Path, seed: int, epochs: int, extra=()) -> float:
    before = child_cpu()
    cmd = train_job(data, out, seed=seed, extra=["--epochs", epochs, "--bs", 32, *AUDIO, *extra])
    r = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"training on {data} failed:\n{r.stderr[-2000:]}")
    return child_cpu() - before


def macro_map(model: Path, test: Path) -> float:
    """Macro average precision of `model` over every window of the test recordings."""
    from sklearn.metrics import average_precision_score

    from learner.serve.predictor import Predictor

    pred = Predictor.from_dir(model, threads=1)
    truth = read_boxes(test)
    sizes = _sizes(test)
    rule = WindowRule(clip_s=pred.pipeline.cfg.duration, background_ratio=1e9)
    windows = labelled_windows(truth, sizes, SR, rule)
    plan = pred.pipeline.window_plan()
    scores, labels = [], []
    for path in sorted(sizes):
        probs, starts = pred.predict_windows(pred.decode(path).samples, plan)
        mine = windows[windows["path"] == path]
        assert np.allclose(mine["start_s"].to_numpy(), starts), "scoring's windows differ from the truth's"
        scores.append(probs)
        labels += [set(s.split(";")) - {""} for s in mine["labels"]]
    probs = np.concatenate(scores)
    aps = [
        average_precision_score([c in s for s in labels], probs[:, k])
        for k, c in enumerate(pred.classes)
        if any(c in s for s in labels)
    ]
    return float(np.mean(aps))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", type=int, default=6)
    p.add_argument("--test-recordings", type=int, default=3)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--events", type=int, default=24)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--work", type=Path, default=None)
    a = p.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="boxes-bench-"))
    train_dir, test_dir = work / "train", work / "test"
    train_truth = build(train_dir, split="train", recordings=a.recordings, minutes=a.minutes, events=a.events)
    (train_dir / "boxes.csv").unlink()  # the Raven tables alone carry the labels
    build(test_dir, split="valid", recordings=a.test_recordings, minutes=a.minutes, events=a.events, seed=100)
    print(
        f"{len(train_truth)} boxes on {a.recordings} recordings of {a.minutes:g} min; "
        f"{a.test_recordings} to test"
    )
    rows = []
    for seed in a.seeds:
        windows = labelled_windows(
            read_boxes(train_dir), _sizes(train_dir), SR, WindowRule(CLIP_S, seed=seed)
        )
        windows["group"] = windows["path"]
        manifest = cut_clips(windows, work / f"cut{seed}", CLIP_S)
        manifest.to_csv(work / f"cut{seed}.csv", index=False)
        cpu_boxes = _train(train_dir, work / f"boxes{seed}", seed, a.epochs)
        cpu_cut = _train(
            work / f"cut{seed}.csv", work / f"cut{seed}_m", seed, a.epochs, ["--group-col", "group"]
        )
        m_boxes, m_cut = (
            macro_map(work / f"boxes{seed}", test_dir),
            macro_map(work / f"cut{seed}_m", test_dir),
        )
        n = json.loads((work / f"boxes{seed}" / "metrics.json").read_text())
        n_cut = json.loads((work / f"cut{seed}_m" / "metrics.json").read_text())
        print(
            f"seed {seed}: boxes mAP {m_boxes:.4f} ({cpu_boxes:.0f} s CPU, {n['n_train']}+{n['n_valid']} win)"
            f" | cut mAP {m_cut:.4f} ({cpu_cut:.0f} s CPU, {n_cut['n_train']}+{n_cut['n_valid']} clips)"
            f" | difference {m_boxes - m_cut:+.4f}"
        )
        rows.append((m_boxes, m_cut))
    diffs = [abs(b - c) for b, c in rows]
    print(f"largest |difference| {max(diffs):.4f}; load average {os.getloadavg()[0]:.1f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
