"""Sweep training settings for the comparison defaults, one run after another, on a held-out-voice split.

    python bench/compare_sweep.py --data spoken-digits-synth --seed 1 --out /tmp/sweep RUN_JSON [RUN_JSON ...]

Each RUN_JSON is an object of TrainArgs fields (arch, epochs, lr, bs, ...) and AudioConfig fields
(n_mels, spec_freq_mask, mixup, ...), e.g. '{"arch": "xresnet18", "epochs": 6, "mixup": 0}'. Every run trains
through `learner.train.fit.train` (pretrained none) and appends one JSON line to OUT/sweep.jsonl with
validation
accuracy, top-3, macro F1, wall time, CPU time and the load average, so the runs can be compared side by side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from pathlib import Path

from benchkit import parser  # first: it puts the checkout on the import path

from learner.config import AudioConfig  # noqa: E402
from learner.train.fit import TrainArgs, train  # noqa: E402

BASE_AUDIO = dict(sample_rate=16000, duration=1.0)


def cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default="spoken-digits-synth")
    p.add_argument(
        "--seed", type=int, default=1, help="split seed (tune on a split the final report does not use)"
    )
    p.add_argument("--out", required=True)
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targ_fields = {f.name for f in dataclasses.fields(TrainArgs)}
    for i, spec in enumerate(args.runs):
        run = json.loads(spec)
        t_kw = {k: v for k, v in run.items() if k in targ_fields}
        a_kw = {k: v for k, v in run.items() if k not in targ_fields}
        name = "-".join(f"{k}{v}" for k, v in run.items()).replace("/", "_").replace(" ", "")
        targs = TrainArgs(
            data=args.data,
            out=str(out / name),
            pretrained="none",
            seed=args.seed,
            pickle=False,
            progress=False,
            cache_dir=str(out / ".cache"),
            **t_kw,
        )
        cfg = AudioConfig(**{**BASE_AUDIO, **a_kw})
        load0, c0, t0 = os.getloadavg()[0], cpu_s(), time.time()
        m = train(targs, cfg).metrics
        row = {
            "run": run,
            "accuracy": round(m["accuracy"], 4),
            "top3": round(m["top3_accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "best_epoch": m["best_epoch"],
            "wall_s": round(time.time() - t0, 1),
            "cpu_s": round(cpu_s() - c0, 1),
            "train_time_s": m["train_time_s"],
            "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "seed": args.seed,
        }
        with open(out / "sweep.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"[{i + 1}/{len(args.runs)}] acc {row['accuracy']:.3f} f1 {row['macro_f1']:.3f} wall "
            f"{row['wall_s']:.0f}s "
            f"cpu {row['cpu_s']:.0f}s load {row['load']} {json.dumps(run)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
