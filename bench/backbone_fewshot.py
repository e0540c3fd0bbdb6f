"""Frozen backbone heads on real few-shot sets, beside the reference that decides "frozen or scratch".

    OMP_NUM_THREADS=1 python bench/backbone_fewshot.py --sets esc,frog,speech10 --views 1,3 [--seeds 0,1,2]
        [--backbones aisfx,speech_embedding]

For each set: the training split's clips are embedded once (cached under $EARSHOT_CACHE/embeddings), a
logistic-regression head is chosen by inner cross-validation on the training split only (C; L2 or not is
reported per row, never picked on valid), and judged on the validation split. Beside it: the inner-CV
accuracy of plain log-mel statistics and what `decide_start` concludes. speech10 is the transfer bench's
split (10 clips a word of right/on/off/stop/go from train speakers, per seed; judged on the 60 held-out
speakers). Rows go to OUT/rows.jsonl; embedding cost (CPU s per clip on one thread) is printed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

DEVSETS = Path(os.environ.get("EARSHOT_DEVSETS", ROOT.parent / "shared" / "devsets"))
TARGET_WORDS = ("right", "on", "off", "stop", "go")


def load_set(name: str, seed: int) -> pd.DataFrame:
    base = "speech-dev" if name.startswith("speech") else f"{name}-dev"
    df = pd.read_csv(DEVSETS / base / "manifest.csv", dtype=str)
    df["path"] = [str(DEVSETS / base / p) for p in df["path"]]
    if name == "speech10":
        rng = np.random.default_rng(seed)
        target = df[df["label"].isin(TARGET_WORDS)]
        pool = target[target["split"] == "train"]
        shots = pd.concat([g.iloc[rng.permutation(len(g))[:10]] for _, g in pool.groupby("label")])
        df = pd.concat([shots, target[target["split"] == "valid"]])
    return df.reset_index(drop=True)


def run_set(name: str, seed: int, views: list[int], out: Path, backbone: str = "aisfx") -> list[dict]:
    import torch

    from learner.config import AudioConfig
    from learner.data.embeddings import cached_embeddings
    from learner.data.signals import load_signals
    from learner.model.backbones import load_backbone
    from learner.train.fit import pick_duration
    from learner.train.heads import (
        backbone_embedder,
        choose_head,
        decide_start,
        embedding_cache_dir,
        inner_cv_accuracy,
        logmel_summary,
        predict_logits,
    )

    torch.set_num_threads(1)
    df = load_set(name, seed)
    bb = load_backbone(backbone)
    key = f"{backbone}-{(bb.spec.weights.sha256 or bb.spec.weights.md5 or 'x')[:8]}"
    cfg = AudioConfig(sample_rate=bb.sample_rate)
    signals, failures = load_signals(list(df["path"]), cfg, workers=1, progress=False)
    df = df[~df["path"].isin(failures)]
    tr, va = df[df["split"] == "train"], df[df["split"] == "valid"]
    cfg.duration = pick_duration([signals[p].size / cfg.sample_rate for p in tr["path"]])
    classes = sorted(tr["label"].unique())
    y_tr = tr["label"].map(classes.index).to_numpy()
    y_va = va["label"].map(classes.index).to_numpy()
    groups = tr["group"].fillna("").to_numpy() if "group" in tr else np.arange(len(tr))
    embed = backbone_embedder(bb)
    cache = embedding_cache_dir(None, backbone)
    rows = []
    ref = logmel_summary(signals, list(tr["path"]), cfg)
    ref_acc = inner_cv_accuracy(ref[:, None], y_tr, groups, C=0.1, seed=seed)
    for v in views:
        c0 = time.process_time()
        e_tr = cached_embeddings(list(tr["path"]), signals, cfg, embed, key, v, cache)
        e_va = cached_embeddings(list(va["path"]), signals, cfg, embed, key, 1, cache)
        cost = time.process_time() - c0
        for l2 in (False, True, None):  # None: chosen by inner CV (the default)
            c1 = time.process_time()
            fit = choose_head(e_tr, y_tr, groups, l2=l2, seed=seed)
            head_cpu = time.process_time() - c1
            acc = float((predict_logits(fit, e_va[:, 0]).argmax(1) == y_va).mean())
            row = {
                "set": name,
                "backbone": backbone,
                "seed": seed,
                "views": v,
                "l2": "cv" if l2 is None else l2,
                "l2_chosen": fit.l2,
                "duration": cfg.duration,
                "n_train": len(tr),
                "n_valid": len(va),
                "valid_acc": round(acc, 4),
                "inner_acc": fit.inner_accuracy,
                "C": fit.C,
                "ref_inner_acc": ref_acc,
                "decision": decide_start(fit.inner_accuracy, ref_acc),
                "head_cpu_s": round(head_cpu, 2),
                "embed_cpu_s": round(cost, 1),
                "load": os.getloadavg()[0],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(out / "rows.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sets", default="esc,frog,speech10")
    p.add_argument("--views", default="1,3")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", default="runs/backbone")
    p.add_argument("--backbones", default="aisfx")
    args = p.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    for name in args.sets.split(","):
        for seed in map(int, args.seeds.split(",")):
            for backbone in args.backbones.split(","):
                run_set(name, seed, [int(v) for v in args.views.split(",")], out, backbone)


if __name__ == "__main__":
    main()
