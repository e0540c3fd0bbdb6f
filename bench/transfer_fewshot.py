"""Does transfer from an earlier earshot model pay? A few-shot task on real speech (issue #11).

    python bench/transfer_fewshot.py --out runs/transfer [--seeds 0,1,2] [--shots 10] [-- extra jobs.train
    flags]

From ../shared/devsets/speech-dev: a source model is trained on five of the words (train speakers only);
then, for each seed, `--shots` clips per class of the other five words are drawn from the train speakers and
the same clips train two models through the README's command: from scratch (`--pretrained none`) and from
the source model (`--pretrained SOURCE`). Both are judged on every clip of the five new words spoken by the
60 held-out speakers. Prints mean ± std of both and the gain; rows go to OUT/results.jsonl (resumable).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import CHILD_ENV, ROOT, child_cpu, parser, train_job

DEVSET = ROOT.parent / "shared" / "devsets" / "speech-dev" / "manifest.csv"
SOURCE_WORDS = ("yes", "no", "up", "down", "left")
TARGET_WORDS = ("right", "on", "off", "stop", "go")


def train(manifest: Path, out: Path, pretrained: str, seed: int, extra: list[str]) -> dict:
    env = CHILD_ENV
    cmd = train_job(manifest, out, pretrained=pretrained, seed=seed, extra=extra)
    c0, t0 = child_cpu(), time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{r.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {
        "accuracy": round(m["accuracy"], 4),
        "top3": round(m["top3_accuracy"], 4),
        "cpu_s": round(child_cpu() - c0, 1),
        "wall_s": round(time.time() - t0, 1),
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--tag", default="default", help="name of this configuration in the results")
    p.add_argument("extra", nargs="*", help="extra jobs.train flags for both arms (after --)")
    args = p.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(DEVSET, dtype=str)
    df["path"] = [str(DEVSET.parent / q) for q in df["path"]]

    source_csv = out / "source.csv"
    df[df["label"].isin(SOURCE_WORDS)].to_csv(source_csv, index=False)
    source_dir = out / "source-model"
    if not (source_dir / "metrics.json").exists():
        print("training the source model on", ", ".join(SOURCE_WORDS), flush=True)
        res = train(source_csv, source_dir, "none", 0, [])
        print(f"source model: {res}", flush=True)

    results_file = out / "results.jsonl"
    done = (
        {(r["tag"], r["seed"], r["arm"]) for r in map(json.loads, results_file.read_text().splitlines())}
        if results_file.exists()
        else set()
    )
    target = df[df["label"].isin(TARGET_WORDS)]
    for seed in map(int, args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        pool = target[target["split"] == "train"]
        shots = pd.concat([g.iloc[rng.permutation(len(g))[: args.shots]] for _, g in pool.groupby("label")])
        few = pd.concat([shots, target[target["split"] == "valid"]])
        few_csv = out / f"fewshot-seed{seed}.csv"
        few.to_csv(few_csv, index=False)
        for arm, pretrained in (("scratch", "none"), ("transfer", str(source_dir))):
            if (args.tag, seed, arm) in done:
                continue
            res = train(few_csv, out / args.tag / f"{arm}-seed{seed}", pretrained, seed, args.extra)
            row = {"tag": args.tag, "seed": seed, "arm": arm, "flags": args.extra, **res}
            with open(results_file, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

    rows = pd.DataFrame(map(json.loads, results_file.read_text().splitlines()))
    for tag, g in rows.groupby("tag"):
        s = g.groupby("arm")["accuracy"].agg(["mean", "std", "count"])
        line = "  ".join(
            f"{arm} {r['mean']:.3f} ± {r['std']:.3f} (n={int(r['count'])})" for arm, r in s.iterrows()
        )
        both = {"transfer", "scratch"} <= set(s.index)
        gain = (s.loc["transfer", "mean"] - s.loc["scratch", "mean"]) * 100 if both else float("nan")
        print(f"{tag}: {line}  gain {gain:+.1f} points")


if __name__ == "__main__":
    main()
