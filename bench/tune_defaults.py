"""Sweep training settings through the README's command (`python -m jobs.train`) beside the plain fastai
reference (bench/reference_fastai.py), on real and generated sets, several seeds each (issue #11).

    python bench/tune_defaults.py --out runs/tune --sets speech-dev-tune --settings default,reference --seeds
    0,1,2
    python bench/tune_defaults.py --out runs/tune --report          # the table of everything run so far

Sets (each written once as a manifest with an explicit `split` column, so both recipes see the same split):
- `speech-dev`: ../shared/devsets/speech-dev as published (60 speakers held out) — for the final report only;
- `speech-dev-tune`: the 179 *training* speakers of speech-dev, a quarter of them held out — for choosing
  settings, so that the figure reported on `speech-dev` was not used to pick them;
- `synth`: spoken-digits-synth (espeak-ng voices), 4 of the 20 voices held out;
- `generated`: 4 classes of generated 5 s sounds (a quick check that 5 s clips stay good).

Every run is one process with OMP_NUM_THREADS=1 (steady on a shared 2-core box); CPU seconds are the child's
user+system time. Results append to OUT/results.jsonl keyed by (set, setting, seed): a rerun skips what is
done, so the sweep resumes after an interruption.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import CHILD_ENV, ROOT, child_cpu, train_job

DEVSET = ROOT.parent / "shared" / "devsets" / "speech-dev" / "manifest.csv"

# name → extra jobs.train flags (on top of the README's command with --pretrained none).
SETTINGS: dict[str, str] = {
    "default": "",
    # the defaults before issue #11, spelled out so that they stay fixed while the defaults move
    "before": "--sample-rate 22050 --n-fft 1024 --hop 512 --n-mels 128 --norm dataset --mixup 0.4 --bs 32 "
    "--epochs 10 --spec-freq-mask 24 --spec-time-mask 40",
    # the reference recipe's settings through earshot's pipeline
    "recipe-flags": "--sample-rate 16000 --n-fft 1024 --hop 256 --norm clip --mixup 0 --bs 64 --duration 1 "
    "--spec-freq-mask 15 --spec-time-mask 20",
    # the efficient family at the default settings (accuracy against CPU cost, issue #11 item 4)
    "mobilenetv3": "--arch mobilenetv3_large_100",
    "efficientnet_b0": "--arch efficientnet_b0",
}


def _hash_frac(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8


def build_set(name: str, out: Path) -> Path:
    """Write (once) the manifest of one set with absolute paths and a `split` column; return its path."""
    path = out / "sets" / f"{name}.csv"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if name in ("speech-dev", "speech-dev-tune"):
        df = pd.read_csv(DEVSET, dtype=str)
        df["path"] = [str(DEVSET.parent / p) for p in df["path"]]
        if name == "speech-dev-tune":
            df = df[df["split"] == "train"].copy()
            df["split"] = ["valid" if _hash_frac("tune/" + g) < 0.25 else "train" for g in df["group"]]
    elif name == "synth":
        from learner.data.synth import ensure_spoken_digits

        src = ensure_spoken_digits(out / "data" / "spoken-digits-synth")
        df = pd.read_csv(src / "manifest.csv" if src.is_dir() else src, dtype=str)
        base = src if src.is_dir() else src.parent
        df["path"] = [p if Path(p).is_absolute() else str(base / p) for p in df["path"]]
        voices = sorted(df["group"].unique(), key=lambda g: _hash_frac("synth/" + g))
        held = set(voices[:4])
        df["split"] = ["valid" if g in held else "train" for g in df["group"]]
    elif name == "generated":
        from learner.data.sounds import make_dataset

        root = make_dataset(out / "data" / "generated", n_per_class=40, sr=22050, duration=5.0, seed=7)
        rows = [{"path": str(f), "label": f.parent.name} for f in sorted(root.glob("*/*.wav"))]
        df = pd.DataFrame(rows)
        df["split"] = ["valid" if _hash_frac("gen/" + p) < 0.25 else "train" for p in df["path"]]
    else:
        raise SystemExit(f"unknown set {name!r}")
    df[["path", "label", "split"] + [c for c in ("group",) if c in df]].to_csv(path, index=False)
    return path


def run_one(set_name: str, setting: str, flags: str, seed: int, out: Path) -> dict:
    manifest = build_set(set_name, out)
    run_dir = out / "runs" / set_name / setting / f"seed{seed}"
    env = CHILD_ENV
    if setting == "reference":
        cmd = [
            sys.executable,
            str(ROOT / "bench" / "reference_fastai.py"),
            "--data",
            str(manifest),
            "--out",
            str(run_dir),
            "--seed",
            str(seed),
        ]
    else:
        cmd = train_job(manifest, run_dir, seed=seed, extra=shlex.split(flags))
    c0, t0, load0 = child_cpu(), time.time(), os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    row = {
        "set": set_name,
        "setting": setting,
        "flags": flags,
        "seed": seed,
        "cpu_s": round(child_cpu() - c0, 1),
        "wall_s": round(time.time() - t0, 1),
        "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
    }
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return row
    if setting == "reference":
        res = json.loads((run_dir / "result.json").read_text())
        row["accuracy"] = res["accuracy"]
    else:
        m = json.loads((run_dir / "metrics.json").read_text())
        row["accuracy"] = round(m["accuracy"], 4)
        row["top3"] = round(m.get("top3_accuracy", float("nan")), 4)
    return row


def load_results(out: Path) -> list[dict]:
    f = out / "results.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def report(out: Path) -> str:
    rows = [r for r in load_results(out) if "accuracy" in r]
    if not rows:
        return "no results yet"
    df = pd.DataFrame(rows)
    lines = []
    for set_name, g in df.groupby("set", sort=False):
        ref = g[g["setting"] == "reference"]
        ref_acc = ref["accuracy"].mean() if len(ref) else np.nan
        ref_cpu = ref["cpu_s"].mean() if len(ref) else np.nan
        lines.append(f"\n{set_name}  (reference: {ref_acc:.4f} over {len(ref)} seeds, {ref_cpu:.0f} CPU s)")
        lines.append(f"{'setting':<34} {'n':>2} {'accuracy':>16} {'Δ ref':>7} {'CPU s':>7} {'× ref':>6}")
        summary = g.groupby("setting", sort=False).agg(
            n=("accuracy", "size"), mean=("accuracy", "mean"), std=("accuracy", "std"), cpu=("cpu_s", "mean")
        )
        for setting, s in summary.sort_values("mean", ascending=False).iterrows():
            std = 0.0 if np.isnan(s["std"]) else s["std"]
            lines.append(
                f"{setting:<34} {int(s['n']):>2} {s['mean']:.4f} ± {std:.4f} "
                f"{100 * (s['mean'] - ref_acc):>+7.1f} "
                f"{s['cpu']:>7.0f} {s['cpu'] / ref_cpu:>6.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="runs/tune")
    p.add_argument("--sets", default="speech-dev-tune")
    p.add_argument(
        "--settings", default="default,reference", help=f"names from {sorted(SETTINGS)} or 'reference'"
    )
    p.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="add a setting: NAME='--flag value ...' (jobs.train flags)",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--report", action="store_true", help="only print the table")
    args = p.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(SETTINGS)
    for d in args.define:
        name, _, flags = d.partition("=")
        settings[name] = flags
    if args.report:
        print(report(out))
        return
    done = {(r["set"], r["setting"], r["seed"]) for r in load_results(out) if "accuracy" in r}
    todo = [
        (s, name, int(seed))
        for seed in args.seeds.split(",")
        for s in args.sets.split(",")
        for name in args.settings.split(",")
        if (s, name, int(seed)) not in done
    ]
    for i, (set_name, name, seed) in enumerate(todo):
        if name != "reference" and name not in settings:
            raise SystemExit(f"unknown setting {name!r}; define it with --define {name}='--flags'")
        row = run_one(set_name, name, settings.get(name, ""), seed, out)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        acc = f"{row['accuracy']:.4f}" if "accuracy" in row else f"FAILED {row.get('error')}"
        print(
            f"[{i + 1}/{len(todo)}] {set_name} {name} seed {seed}: {acc}  cpu {row['cpu_s']:.0f}s  "
            f"wall {row['wall_s']:.0f}s",
            flush=True,
        )
    print(report(out))


if __name__ == "__main__":
    main()
