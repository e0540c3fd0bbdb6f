"""Does a threshold recommended on one annotated recording hold its precision on another? (issue 23's
acceptance: within ±5 points of the target on a held-out recording.)

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.event_thresholds [--minutes 20] [--targets 0.8,0.9]
                                                                 [--sounds generated|devsets] [--out DIR]

Trains the small event model of bench/events.py (mfcc_cnn1d from scratch on generated 1 s clips, multi-
label) — or, with `--sounds devsets`, the same recipe on real clips (bench/soundscape.py, when present).
Builds a calibration recording and a held-out one (other seeds), scores each ONCE in 1 s windows every
0.25 s, sweeps thresholds × event gaps × minimum lengths over those scores
(`learner.score.event_report.evaluate_on_boxes`), recommends per-class thresholds for each target on the
calibration recording, and measures precision at exactly those thresholds and that rule on the held-out
one: per class, and over all classes pooled. Prints CPU seconds of scoring and of the sweep, and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _recording(root: Path, name: str, minutes: float, seed: int, sounds: str) -> Path:
    """A long recording with known events and its box CSV (generated sounds, or devset clips)."""
    import pandas as pd

    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if sounds == "devsets":
        from bench.soundscape import write_devset_recording  # annot's builder (issue 23)

        return write_devset_recording(folder, minutes * 60, seed)
    from learner.data.soundscape import write_soundscape

    n = int(minutes * 4)  # 4 events a minute, 15 % of them overlapping another class
    truth = write_soundscape(
        folder / "rec.wav", duration_s=minutes * 60, n_events=n, overlaps=n // 7, seed=seed
    )
    boxes = pd.DataFrame(
        [{"path": e.path, "start_s": e.start_s, "end_s": e.end_s, "label": e.label} for e in truth]
    )
    boxes.to_csv(folder / "boxes.csv", index=False)
    return folder / "boxes.csv"


def _at(curve, thresholds: dict, gap: float, least: float) -> dict:
    """Each class's figures on a curve at its own threshold and the rule (a class's events depend only on its
    own threshold, so one sweep answers any per-class choice), and all classes pooled."""
    rows = curve[(curve["gap_s"] == gap) & (curve["min_length_s"] == least)]
    out, pooled = {}, {"matched": 0, "found": 0, "true_events": 0}
    for label, t in thresholds.items():
        r = rows[(rows["label"] == label) & (rows["threshold"] == t)].iloc[0]
        out[label] = {"precision": r["precision"], "recall": r["recall"], "found": int(r["found"])}
        for k in pooled:
            pooled[k] += int(r[k])
    out["pooled"] = {
        "precision": round(pooled["matched"] / pooled["found"], 4) if pooled["found"] else None,
        "recall": round(pooled["matched"] / pooled["true_events"], 4) if pooled["true_events"] else None,
        "found": pooled["found"],
    }
    return out


def run(minutes: float, targets: list[float], sounds: str, work: Path) -> dict:
    from bench.events import train_event_model
    from learner.report.event_curve import recommend_thresholds
    from learner.score.event_report import chosen_thresholds, evaluate_on_boxes, load_boxes
    from learner.serve.predictor import Predictor

    cpu = time.process_time()
    model = train_event_model(work, task="multi", clips=240, epochs=10)
    train_cpu = time.process_time() - cpu
    calib = _recording(work, "calibration", minutes, seed=11, sounds=sounds)
    held = _recording(work, "held-out", minutes, seed=12, sounds=sounds)
    predictor = Predictor.from_dir(model)
    window = (1.0, 0.25)
    seen: list[int] = []
    forward = predictor.predict_waves
    predictor.predict_waves = lambda waves: (seen.append(len(waves)), forward(waves))[1]
    sweeps = {}
    for name, boxes in (("calibration", calib), ("held_out", held)):
        cpu, wall = time.process_time(), time.perf_counter()
        res = evaluate_on_boxes(
            load_boxes(boxes), predictor=predictor, window=window, target_precision=targets[0]
        )
        sweeps[name] = (res, round(time.process_time() - cpu, 1), round(time.perf_counter() - wall, 1))
    out: dict = {
        "minutes": minutes,
        "sounds": sounds,
        "train_cpu_s": round(train_cpu, 1),
        "windows_forwarded": sum(seen),
        "windows": {k: v[0].windows for k, v in sweeps.items()},
        "curve_points": {k: len(v[0].curve) for k, v in sweeps.items()},
        "score_and_sweep_cpu_s": {k: v[1] for k, v in sweeps.items()},
        "true_events": {k: v[0].metrics["overall"]["true_events"] for k, v in sweeps.items()},
        "targets": {},
    }
    for target in targets:
        rec = recommend_thresholds(sweeps["calibration"][0].curve, target_precision=target)
        chosen = chosen_thresholds(rec)
        if not chosen:
            out["targets"][target] = {"note": "no class reaches the target", "recommended": rec}
            continue
        rule = (rec["gap_s"], rec["min_length_s"])
        out["targets"][target] = {
            "rule": rule,
            "thresholds": chosen,
            "calibration": _at(sweeps["calibration"][0].curve, chosen, *rule),
            "held_out": _at(sweeps["held_out"][0].curve, chosen, *rule),
        }
    out["load_after"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--targets", default="0.8,0.9")
    ap.add_argument("--sounds", default="generated", choices=["generated", "devsets"])
    ap.add_argument("--out", default=None, help="keep the work folder here (default: a temporary one)")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    print(f"load before: {os.getloadavg()}")
    if args.out:
        result = run(args.minutes, targets, args.sounds, Path(args.out))
    else:
        with tempfile.TemporaryDirectory() as d:
            result = run(args.minutes, targets, args.sounds, Path(d))
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
