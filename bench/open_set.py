"""How often a model says "not one of the words" to sounds that are none of them (issue 24 item 3).

    OMP_NUM_THREADS=1 python bench/open_set.py [--model assets/speech-words] [--sets esc-dev,urban-dev]

Real everyday sounds from the devsets (esc-dev: 24 ESC-50 classes, all 201 clips of 5 s; urban-dev: its 387
`valid` clips of ≤ 4 s), none of them speech commands, through the Predictor with the model's own reject
record and thresholds (learner.serve.reject). Two views: the answer for the whole file (mean of window
probabilities, as `jobs.predict` says it) and the answer for each 1 s window (what the live mode hears).
`--sets hum`: generated mains hum, the sound a live microphone adds that no devset holds: 50 and 60 Hz, pure
or with its harmonics, at three levels, each over five draws of a faint noise floor 20-30 dB below it.
Nothing here chooses a setting: the thresholds were set on held-out training speakers by
scripts/build_demo_model.py. Prints one JSON line per set with the load average and the process CPU time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import DEVSETS, ROOT, parser  # first: it puts the checkout on the import path

SUBSETS = {"esc-dev": None, "urban-dev": "valid"}  # which rows: all of esc-dev, urban-dev's valid split


def measure(model: Path, name: str) -> dict:
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model, backend="onnx-int8", threads=1)
    manifest = DEVSETS / name / "manifest.csv"
    df = pd.read_csv(manifest, dtype=str)
    if SUBSETS[name]:
        df = df[df["split"] == SUBSETS[name]]
    files, windows, said = [], [], Counter()
    c0 = time.process_time()
    for rel in df["path"]:
        pred = p.predict(str(manifest.parent / rel), top_k=1, window=p.cfg.duration)
        files.append(pred.rejected)
        for row in pred.window_probs if pred.window_probs is not None else [pred.probs]:
            answer, rejected = p.answer(row)
            windows.append(rejected)
            said[answer] += 1
    return {
        "set": name,
        "files": len(files),
        "files_rejected": round(float(np.mean(files)), 4),
        "windows": len(windows),
        "windows_rejected": round(float(np.mean(windows)), 4),
        "window_answers": dict(said.most_common(8)),
        "cpu_s": round(time.process_time() - c0, 1),
        "load": os.getloadavg()[0],
    }


def hum_clips(sr: int = 16000) -> list[np.ndarray]:
    """60 one-second hums: {50, 60} Hz × {pure, 8 harmonics at 1/k} × 3 levels × 5 noise floors."""
    t, clips = np.arange(sr) / sr, []
    for f0 in (50, 60):
        for harmonics in (1, 8):
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
            tone = tone / np.sqrt(np.mean(tone**2))
            for level in (0.01, 0.035, 0.1):
                for seed in range(5):
                    rng = np.random.default_rng(seed)
                    floor = level * 10 ** (-rng.uniform(20, 30) / 20)
                    clips.append((level * tone + rng.normal(0, floor, sr)).astype(np.float32))
    return clips


def measure_hum(model: Path) -> dict:
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model, backend="onnx-int8", threads=1)
    c0, said = time.process_time(), Counter()
    preds = [p.predict(y, sample_rate=16000) for y in hum_clips()]
    said.update(r.answer for r in preds)
    return {
        "set": "hum",
        "clips": len(preds),
        "rejected": round(float(np.mean([r.rejected for r in preds])), 4),
        "answers": dict(said.most_common(8)),
        "cpu_s": round(time.process_time() - c0, 1),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model", default=str(ROOT / "assets" / "speech-words"))
    ap.add_argument("--sets", default=",".join(SUBSETS))
    args = ap.parse_args()
    for name in args.sets.split(","):
        if name == "hum":
            print(json.dumps(measure_hum(Path(args.model))), flush=True)
            continue
        if not (DEVSETS / name / "manifest.csv").is_file():
            sys.exit(f"open_set: {DEVSETS / name}/manifest.csv: no such devset")
        print(json.dumps(measure(Path(args.model), name)), flush=True)


if __name__ == "__main__":
    main()
