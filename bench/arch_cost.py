"""Accuracy against CPU cost for every arch trained by `bench/tune_defaults.py` on one set (issue #11 item 4).

    .venv/bin/python bench/arch_cost.py --tune runs/tune --set speech-dev [--rounds 3] [--clips 64]

For each arch's model folders under TUNE/runs/SET/SETTING/seedN it reads the held-out accuracy and the
training CPU seconds (TUNE/results.jsonl), exports model.onnx + static int8 (calibrated on training clips
from the set's manifest), then times one-clip forwards (batch 1, the prepared fixed-length clip, one thread)
for the torch, onnx and onnx-int8 backends, each in its own fresh process, rounds alternating the order.
CPU milliseconds per clip (process time) are what is reported: on a shared machine they move far less with
load than wall time. Also checks that the ONNX export agrees with torch (top-1 on the timed clips).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchkit import ROOT, parser  # first: it puts the checkout on the import path

BACKENDS = ("torch", "onnx", "onnx-int8")
SETTING_ARCH = {
    "default": "xresnet18",
    "mobilenetv3": "mobilenetv3_large_100",
    "efficientnet_b0": "efficientnet_b0",
}


def child(backend: str, model: str, clips_csv: str, n: int) -> None:
    """One backend in a fresh single-thread process: prints JSON with CPU ms per clip and the top-1 labels."""
    import numpy as np
    import pandas as pd

    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model, backend=backend, threads=1, batch_size=1)
    paths = pd.read_csv(clips_csv)["path"].tolist()[:n]
    waves = np.stack([p.prepare(p.decode(f).samples) for f in paths]).astype(np.float32)
    p.predict_waves(waves[:2])  # warm-up
    t0 = time.process_time()
    probs = np.concatenate([p.predict_waves(w[None]) for w in waves])
    cpu_ms = 1000 * (time.process_time() - t0) / len(waves)
    print(json.dumps({"cpu_ms": cpu_ms, "top1": probs.argmax(1).tolist()}))


def run_child(backend: str, model: Path, clips: Path, n: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", backend, str(model), str(clips), str(n)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def params_of(model: Path) -> float:
    """Millions of weights (BatchNorm running statistics excluded)."""
    import math

    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "np") as f:
        shapes = [
            f.get_slice(k).get_shape() for k in f.keys() if "running_" not in k and "num_batches" not in k
        ]
    return sum(math.prod(s) for s in shapes) / 1e6


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--tune", default="runs/tune")
    ap.add_argument("--set", default="speech-dev")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.child[2], int(a.child[3]))
        return
    import pandas as pd

    tune = Path(a.tune).absolute()
    results = [json.loads(line) for line in (tune / "results.jsonl").read_text().splitlines() if line.strip()]
    manifest = pd.read_csv(tune / "sets" / f"{a.set}.csv")
    calib = tune / "arch_cost_calib"
    clips_csv = tune / "arch_cost_clips.csv"
    if not calib.exists():  # int8 calibration on real training clips, as a user would calibrate
        calib.mkdir(parents=True)
        for p in manifest[manifest["split"] == "train"].sample(200, random_state=0)["path"]:
            (calib / f"{Path(p).parent.name}_{Path(p).name}").symlink_to(p)
    manifest[manifest["split"] == "valid"].sample(a.clips, random_state=0)[["path"]].to_csv(
        clips_csv, index=False
    )

    rows = []
    for setting, arch in SETTING_ARCH.items():
        runs = [r for r in results if r["set"] == a.set and r["setting"] == setting and "accuracy" in r]
        if not runs:
            continue
        model = tune / "runs" / a.set / setting / f"seed{runs[0]['seed']}"
        if not (model / "model.int8.onnx").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jobs.export",
                    "--model",
                    str(model),
                    "--int8",
                    "--calib",
                    str(calib),
                    "--quiet",
                ],
                cwd=ROOT,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        acc = [r["accuracy"] for r in runs]
        rows.append(
            {
                "arch": arch,
                "model": model,
                "seeds": len(acc),
                "accuracy": sum(acc) / len(acc),
                "train_cpu_s": sum(r["cpu_s"] for r in runs) / len(runs),
                "params_m": params_of(model),
                "mb": {
                    b: (model / f).stat().st_size / 1e6
                    for b, f in zip(BACKENDS, ("model.safetensors", "model.onnx", "model.int8.onnx"))
                },
            }
        )
    timings: dict[tuple[str, str], list[float]] = {}
    agree: dict[tuple[str, str], float] = {}
    for rnd in range(a.rounds):
        for row in rows if rnd % 2 == 0 else rows[::-1]:
            top1 = {}
            for backend in BACKENDS if rnd % 2 == 0 else BACKENDS[::-1]:
                res = run_child(backend, row["model"], clips_csv, a.clips)
                timings.setdefault((row["arch"], backend), []).append(res["cpu_ms"])
                top1[backend] = res["top1"]
            for b in ("onnx", "onnx-int8"):
                agree[(row["arch"], b)] = sum(x == y for x, y in zip(top1["torch"], top1[b])) / len(top1[b])
        print(f"round {rnd + 1}/{a.rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)

    print(
        f"\n{a.set}: accuracy on the held-out split against CPU cost (one thread, batch 1, best of "
        f"{a.rounds} rounds)"
    )
    print(
        "| arch | seeds | accuracy | params (M) | training CPU s | torch ms/clip | ONNX ms/clip | int8 "
        "ms/clip "
        "| int8 top-1 agreement | int8 MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = {b: min(timings[(r["arch"], b)]) for b in BACKENDS}
        print(
            f"| {r['arch']} | {r['seeds']} | {r['accuracy']:.4f} | {r['params_m']:.2f} | "
            f"{r['train_cpu_s']:,.0f} "
            f"| {t['torch']:.1f} | {t['onnx']:.1f} | {t['onnx-int8']:.1f} | "
            f"{agree[(r['arch'], 'onnx-int8')]:.0%} "
            f"| {r['mb']['onnx-int8']:.1f} |"
        )
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
