"""Cross-validation: one model per value of the manifest's `fold` column, then per-fold and mean ± std metrics.

Each fold is an ordinary training run (`learner.train.train` with `valid_fold=K`) written to `OUT/fold-K/`, so
every fold is a complete model directory that the Predictor, `jobs.evaluate` and the Hub tools accept.
`OUT/cv_report.json` and `OUT/cv_report.md` summarise them. A manifest without a fold column can be given
folds by `assign_folds` (whole groups per fold when it has a `group`); the assignment is written to
`OUT/cv_manifest.csv` so the folds are on disk, not only in memory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learner.config import AudioConfig
from learner.data import ManifestError, add_groups, load_manifest
from learner.modeldir import write_json
from learner.train import TrainArgs, train

#: The numbers every fold reports and the summary averages (keys of `classification_report`).
CV_METRICS = ("accuracy", "top3_accuracy", "map3", "macro_f1")
_LABELS = {"accuracy": "accuracy", "top3_accuracy": "top-3", "map3": "MAP@3", "macro_f1": "macro F1"}


def assign_folds(df: pd.DataFrame, n_folds: int, seed: int = 42) -> pd.DataFrame:
    """A copy of `df` with a `fold` column 1..n_folds: whole groups per fold when there is a `group` column
    (so a speaker is never on both sides), else stratified by label. Deterministic for a given seed."""
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    df = df.copy()
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(df), dtype=int)
    if "group" in df:
        groups = df["group"].astype(str).to_numpy()
        uniq = np.unique(groups)
        if len(uniq) < n_folds:
            raise ManifestError(f"{n_folds} folds need at least {n_folds} groups; found {len(uniq)}")
        rng.shuffle(uniq)
        of_group = {g: 1 + i % n_folds for i, g in enumerate(uniq)}
        fold = np.array([of_group[g] for g in groups])
    else:
        labels = df["label"].to_numpy()
        for lab in np.unique(labels):
            members = np.flatnonzero(labels == lab)
            fold[members[rng.permutation(len(members))]] = 1 + np.arange(len(members)) % n_folds
    df["fold"] = fold
    return df


def _folds_of(targs: TrainArgs, out: Path, n_folds: int | None) -> tuple[str, list[int], str]:
    """(manifest to train from, fold values, where the folds came from)."""
    df = add_groups(load_manifest(targs.data), targs.group_col, targs.group_regex)
    if "fold" in df:
        if n_folds is not None:
            raise ManifestError(f"{targs.data} already has a fold column; drop n_folds (--n-folds) to use it")
        folds = sorted(int(f) for f in df["fold"].unique())
        if len(folds) < 2:
            raise ManifestError(f"{targs.data}: cross-validation needs at least 2 values in the fold column, found {folds}")
        return targs.data, folds, "fold column"
    if n_folds is None:
        raise ManifestError(f"{targs.data}: cross-validation needs a fold column (integers) in the manifest, "
                            "or folds assigned by group with `python -m jobs.compare --cv --n-folds K`")
    df = assign_folds(df, n_folds, targs.seed)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cv_manifest.csv"
    df.to_csv(path, index=False)
    how = f"assigned: {n_folds} folds by {'group' if 'group' in df else 'label (stratified)'}, seed {targs.seed}"
    return str(path), list(range(1, n_folds + 1)), how


def cross_validate(targs: TrainArgs, cfg: AudioConfig | None = None, n_folds: int | None = None,
                   folds: list[int] | None = None) -> dict[str, Any]:
    """Train one model per fold into `targs.out/fold-K/`; write cv_report.json + cv_report.md; return the report.

    `folds` restricts the run to some fold values (all by default). Every fold starts from its own copy of
    `cfg` (training measures normalisation statistics on its own training folds).
    """
    cfg = cfg or AudioConfig()
    out = Path(targs.out)
    data, all_folds, source = _folds_of(targs, out, n_folds)
    todo = all_folds if folds is None else [f for f in all_folds if f in set(folds)]
    if folds is not None and len(todo) != len(set(folds)):
        raise ManifestError(f"folds {sorted(set(folds) - set(all_folds))} are not in {targs.data} (folds: {all_folds})")
    rows, histories, confusion, classes, started = [], [], None, None, time.time()
    for i, k in enumerate(todo):
        if targs.progress:
            print(f"earshot: fold {k} ({i + 1}/{len(todo)})")
        fold_args = dataclasses.replace(targs, data=data, out=str(out / f"fold-{k}"), valid_fold=k)
        res = train(fold_args, cfg.replace())
        m = res.metrics
        rows.append({"fold": k, "model_dir": str(res.model_dir), **{key: m[key] for key in CV_METRICS},
                     "n_train": m["n_train"], "n_valid": m["n_valid"], "best_epoch": m["best_epoch"],
                     "train_time_s": m["train_time_s"], "excluded_files": m["excluded_files"]})
        histories.append(res.history.assign(fold=k))
        cm = np.asarray(m["confusion"])
        if classes is None:
            classes, confusion = m["classes"], cm
        elif m["classes"] == classes:
            confusion = confusion + cm
        else:  # a fold whose training part lacks a class: the pooled confusion is not defined
            confusion = None
    report = summarise(rows)
    report.update(data=str(targs.data), arch=targs.arch, pretrained=targs.pretrained, epochs=targs.epochs,
                  fold_source=source, classes=classes, confusion=None if confusion is None else confusion.tolist(),
                  wall_time_s=round(time.time() - started, 1))
    pd.concat(histories).to_csv(out / "cv_history.csv", index=False)
    write_json(out / "cv_report.json", report)
    (out / "cv_report.md").write_text(report_markdown(report))
    if confusion is not None:
        from learner.plots import plot_confusion

        plot_confusion(confusion, classes, out / "cv_confusion_matrix.png",
                       title=f"{len(rows)} folds pooled · accuracy {report['mean']['accuracy']:.3f}")
    return report


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold rows → {"folds", "mean", "std"}; std is the sample standard deviation over folds (ddof=1)."""
    if not rows:
        raise ValueError("no folds to summarise")
    vals = {k: np.array([r[k] for r in rows], dtype=float) for k in (*CV_METRICS, "train_time_s")}
    ddof = 1 if len(rows) > 1 else 0
    return {"folds": rows, "mean": {k: float(v.mean()) for k, v in vals.items()},
            "std": {k: float(v.std(ddof=ddof)) for k, v in vals.items()}}


def report_markdown(report: dict[str, Any]) -> str:
    """The single human-readable CV report: a row per fold and the mean ± std."""
    cols = list(CV_METRICS)
    lines = [f"# Cross-validation: {report.get('arch', '?')} on {report.get('data', '?')}", "",
             f"{len(report['folds'])} folds ({report.get('fold_source', 'fold column')}); start: "
             f"{report.get('pretrained', '?')}; {report.get('epochs', '?')} epochs per fold. "
             "Std is over folds (ddof=1).", "",
             "| fold | " + " | ".join(_LABELS[c] for c in cols) + " | train / valid clips | train time |",
             "|---|" + "---:|" * (len(cols) + 2)]
    for r in report["folds"]:
        lines.append(f"| {r['fold']} | " + " | ".join(f"{r[c]:.3f}" for c in cols)
                     + f" | {r['n_train']} / {r['n_valid']} | {r['train_time_s']:.0f} s |")
    mean, std = report["mean"], report["std"]
    lines.append("| **mean ± std** | " + " | ".join(f"**{mean[c]:.3f} ± {std[c]:.3f}**" for c in cols)
                 + f" | | {mean['train_time_s']:.0f} s |")
    excluded = {p: why for r in report["folds"] for p, why in r.get("excluded_files", {}).items()}
    if excluded:
        lines += ["", f"{len(excluded)} file(s) could not be read and were excluded:"]
        lines += [f"- `{p}`: {why}" for p, why in sorted(excluded.items())]
    if report.get("confusion") is not None:
        lines += ["", "![pooled confusion matrix](cv_confusion_matrix.png)"]
    return "\n".join(lines) + "\n"
