"""Multi-label acceptance (issue #14): macro mAP and macro F1 at calibrated thresholds on mixtures-synth.

    python bench/multilabel.py --out runs/multilabel [--clips 600] [--duration 2] [--epochs 15] [-- jobs.train
    flags]

Builds the generated multi-label set (1–3 of six synthetic sources per 2 s clip, random offsets and SNRs,
`group` = site), trains with jobs.train's defaults (`--pretrained none`: ImageNet weights need the network),
then scores the validation split again through the Predictor (`jobs.evaluate --subset valid`) and reports,
side by side in this one run: macro mAP, macro/micro F1 at the calibrated per-class thresholds and at a
fixed 0.5, and the training figures against the Predictor's. Goals: mAP ≥ 0.9, calibrated macro F1 ≥ 0.85.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from benchkit import CHILD_ENV, ROOT, child_cpu, job, parser, train_job


def evaluate_job(model: Path, data: Path, subset: str, out: Path) -> list[str]:
    return job("evaluate", "--model", model, "--data", data, "--subset", subset, "--out", out, "--quiet")


def run(cmd: list[str]) -> tuple[float, float]:
    c0, t0 = child_cpu(), time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{r.stderr[-2000:]}")
    print(r.stdout.strip())
    return round(time.time() - t0, 1), round(child_cpu() - c0, 1)


def main() -> None:
    p = parser(
        __doc__,
        out="runs/multilabel",
        clips=600,
        epochs=(15, "jobs.train's default"),
        duration=(2.0, "clip seconds (sources last 0.4-1.5 s; ≤ 1 s clips: 0.3-0.8 s)"),
        seed=(0, "data seed"),
        reuse_model=(False, "keep OUT/model if it is there (re-evaluate only)"),
    )
    p.add_argument("extra", nargs="*", help="extra jobs.train flags (after --)")
    args = p.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from learner.data.mixtures import ensure_mixtures
    from learner.report.multilabel import multilabel_report

    t0 = time.time()
    source_s = (0.4, 1.5) if args.duration > 1.0 else (0.3, 0.8)
    manifest = ensure_mixtures(
        out / "data",
        n_clips=args.clips,
        n_sites=24,
        duration=args.duration,
        source_s=source_s,
        seed=args.seed,
    )
    build_s = round(time.time() - t0, 1)
    model = out / "model"
    train_wall = train_cpu = None
    if not (args.reuse_model and (model / "config.json").exists()):
        extra = ["--epochs", args.epochs, *args.extra]
        train_wall, train_cpu = run(train_job(manifest, model, seed=42, extra=map(str, extra)))
    ev = out / "evaluate"
    eval_wall, eval_cpu = run(evaluate_job(model, manifest, "valid", ev))
    # held out: other sites and seeds, never seen by training nor by the threshold calibration (validation)
    heldout = ensure_mixtures(
        out / "heldout",
        n_clips=max(120, args.clips // 3),
        n_sites=8,
        duration=args.duration,
        source_s=source_s,
        seed=args.seed + 1000,
    )
    run(evaluate_job(model, heldout, "all", out / "evaluate-heldout"))
    held = json.loads((out / "evaluate-heldout" / "metrics.json").read_text())
    config = json.loads((model / "config.json").read_text())
    trained = json.loads((model / "metrics.json").read_text())
    again = json.loads((ev / "metrics.json").read_text())
    assert config["task"] == "multi", config["task"]

    # the same validation predictions at a fixed 0.5, side by side with the calibrated thresholds
    from learner.data.labels import label_sets, multi_hot
    from learner.data.manifest import load_manifest
    from learner.score.evaluate import select_rows
    from learner.serve.predictor import Predictor

    pred = Predictor.from_dir(model)
    rows = select_rows(load_manifest(manifest), "valid", config["train"], config)
    probs = np.stack([r.probs for r in pred.predict_many(list(rows["path"]))])
    hot = multi_hot(label_sets(rows), pred.classes)
    fixed = multilabel_report(probs, hot, pred.classes, dict.fromkeys(pred.classes, 0.5))
    calibrated = multilabel_report(probs, hot, pred.classes, config["thresholds"])
    per_clip = [len(pred.detect(p)) for p in probs]

    result = {
        "clips": args.clips,
        "clip_s": args.duration,
        "n_train": trained["n_train"],
        "n_valid": trained["n_valid"],
        "classes": len(pred.classes),
        "epochs": args.epochs,
        "labels_per_clip": round(trained["labels_per_clip"], 2),
        "macro_map": round(trained["macro_map"], 4),
        "macro_auroc": round(trained["macro_auroc"], 4),
        "macro_f1_calibrated": round(trained["macro_f1"], 4),
        "micro_f1_calibrated": round(trained["micro_f1"], 4),
        "macro_f1_at_0.5": round(fixed["macro_f1"], 4),
        "micro_f1_at_0.5": round(fixed["micro_f1"], 4),
        "exact_match_calibrated": round(calibrated["exact_match"], 4),
        "exact_match_at_0.5": round(fixed["exact_match"], 4),
        "predictor_macro_map": round(again["macro_map"], 4),
        "predictor_macro_f1": round(again["macro_f1"], 4),
        "detected_per_clip": round(float(np.mean(per_clip)), 2),
        "heldout_n": held.get("n_samples"),
        "heldout_macro_map": round(held["macro_map"], 4),
        "heldout_macro_f1": round(held["macro_f1"], 4),
        "heldout_micro_f1": round(held["micro_f1"], 4),
        "thresholds": {k: round(v, 3) for k, v in config["thresholds"].items()},
        "per_class_ap": {r["label"]: round(r["ap"], 4) for r in trained["per_class"]},
        "build_s": build_s,
        "train_wall_s": train_wall,
        "train_cpu_s": train_cpu,
        "eval_wall_s": eval_wall,
        "eval_cpu_s": eval_cpu,
        "load": os.getloadavg()[0],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["macro_map"] >= 0.9 and result["macro_f1_calibrated"] >= 0.85
    print(
        f"macro mAP {result['macro_map']:.3f} (goal ≥ 0.9) · macro F1 calibrated "
        f"{result['macro_f1_calibrated']:.3f} "
        f"vs {result['macro_f1_at_0.5']:.3f} at 0.5 (goal ≥ 0.85) → {'PASS' if ok else 'FAIL'}"
    )
    print(
        f"held out ({result['heldout_n']} clips of 8 new sites, thresholds from validation): macro mAP "
        f"{result['heldout_macro_map']:.3f} · macro F1 {result['heldout_macro_f1']:.3f}"
    )


if __name__ == "__main__":
    main()
