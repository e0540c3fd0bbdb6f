"""Cross-validation: one model per value of the manifest's `fold` column, then per-fold and mean ± std
metrics.

Each fold is an ordinary training run (`learner.train.fit.train` with `valid_fold=K`) written to
`OUT/fold-K/`, so
every fold is a complete model directory that the Predictor, `jobs.evaluate` and the Hub tools accept.
`OUT/cv_report.json` and `OUT/cv_report.md` summarise them, `OUT/cv_curves.png` draws every fold's curves. A
manifest without a fold column is given folds by `learner.data.manifest.plan_folds` (whole groups per fold
when it has a `group`; the same planner `compare` uses), written to `OUT/cv_manifest.csv`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learner.config import AudioConfig
from learner.data.manifest import ManifestError, add_groups, load_manifest, plan_folds
from learner.folder import write_json
from learner.report.comparison import CV_METRICS, METRIC_LABELS  # noqa: F401 (CV_METRICS: re-exported)
from learner.report.plots import plot_confusion, plot_curves
from learner.train.fit import TrainArgs, train

log = logging.getLogger(__name__)

#: The numbers every fold reports and the summary averages (keys of `classification_report`).


def _fold_plan(
    targs: TrainArgs, out: Path, n_folds: int | None, folds: list[int] | None
) -> tuple[str, list[int], str]:
    """(the manifest with folds, the folds to train, where the folds come from). Multi-label data and fold
    values the manifest lacks are refused before any training starts."""
    from learner.data.annotations import is_annotations

    if is_annotations(targs.data):
        raise ManifestError(
            f"{targs.data}: cross-validation of annotated long recordings is not supported yet; train "
            "without it (its validation split holds whole recordings out)"
        )
    df = add_groups(load_manifest(targs.data), targs.group_col, targs.group_regex)
    from learner.data.labels import resolve_task

    # its report is built from single-label metrics
    if resolve_task(df, targs.task, str(targs.data)) == "multi":
        raise ManifestError(
            f"{targs.data}: cross-validation of multi-label models is not supported yet; "
            "train one model on one split"
        )
    plan = plan_folds(df, targs.data, out, n_folds, targs.seed)
    data, all_folds, source = plan.data, plan.folds, plan.source
    todo = all_folds if folds is None else [f for f in all_folds if f in set(folds)]
    if folds is not None and len(todo) != len(set(folds)):
        raise ManifestError(
            f"folds {sorted(set(folds) - set(all_folds))} are not in {targs.data} (folds: {all_folds})"
        )
    return data, todo, source


def _fold_row(k: int, res: Any) -> dict[str, Any]:
    """One fold's line of the report: where its model is and the numbers its training measured."""
    m = res.metrics
    return {
        "fold": k,
        "model_dir": str(res.model_dir),
        **{key: m[key] for key in CV_METRICS},
        "n_train": m["n_train"],
        "n_valid": m["n_valid"],
        "best_epoch": m["best_epoch"],
        "train_time_s": m["train_time_s"],
        "excluded_files": m["excluded_files"],
    }


def _pooled(classes: list[str] | None, confusion: Any, m: dict[str, Any]) -> tuple[list[str] | None, Any]:
    """(classes, pooled confusion) with one more fold added; a fold whose training part lacks a class
    makes the pooled confusion undefined (None)."""
    cm = np.asarray(m["confusion"])
    if classes is None:
        return m["classes"], cm
    if m["classes"] == classes:
        return classes, confusion + cm
    return classes, None


def _write_outputs(
    out: Path, report: dict[str, Any], histories: list[pd.DataFrame], confusion: Any, classes: Any
) -> None:
    """cv_history.csv and cv_curves.png (every fold), cv_report.json/.md, the pooled confusion if defined."""
    pd.concat(histories).to_csv(out / "cv_history.csv", index=False)
    plot_curves({f"fold {h['fold'].iloc[0]}": h for h in histories}, out / "cv_curves.png")
    write_json(out / "cv_report.json", report)
    (out / "cv_report.md").write_text(report_markdown(report))
    if confusion is not None:
        plot_confusion(
            confusion,
            classes,
            out / "cv_confusion_matrix.png",
            title=f"{len(report['folds'])} folds pooled · accuracy {report['mean']['accuracy']:.3f}",
        )


def cross_validate(
    targs: TrainArgs,
    cfg: AudioConfig | None = None,
    n_folds: int | None = None,
    folds: list[int] | None = None,
) -> dict[str, Any]:
    """Train one model per fold into `targs.out/fold-K/`; write cv_report.json + cv_report.md; return the
    report.

    `folds` restricts the run to some fold values (all by default). Every fold starts from its own copy of
    `cfg` (training measures normalisation statistics on its own training folds).
    """
    cfg = cfg or AudioConfig()
    out = Path(targs.out)
    data, todo, source = _fold_plan(targs, out, n_folds, folds)
    rows, histories, confusion, classes, started = [], [], None, None, time.time()
    for i, k in enumerate(todo):
        log.info("fold %s (%d/%d)", k, i + 1, len(todo))
        fold_args = dataclasses.replace(targs, data=data, out=str(out / f"fold-{k}"), valid_fold=k)
        res = train(fold_args, cfg.replace())
        rows.append(_fold_row(k, res))
        histories.append(res.history.assign(fold=k))
        classes, confusion = _pooled(classes, confusion, res.metrics)
    report = summarise(rows)
    report.update(
        data=str(targs.data),
        arch=targs.arch,
        pretrained=targs.pretrained,
        epochs=targs.epochs,
        fold_source=source,
        classes=classes,
        confusion=None if confusion is None else confusion.tolist(),
        wall_time_s=round(time.time() - started, 1),
    )
    _write_outputs(out, report, histories, confusion, classes)
    return report


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold rows → {"folds", "mean", "std"}; std is the sample standard deviation over folds (ddof=1)."""
    if not rows:
        raise ValueError("no folds to summarise")
    vals = {k: np.array([r[k] for r in rows], dtype=float) for k in (*CV_METRICS, "train_time_s")}
    ddof = 1 if len(rows) > 1 else 0
    return {
        "folds": rows,
        "mean": {k: float(v.mean()) for k, v in vals.items()},
        "std": {k: float(v.std(ddof=ddof)) for k, v in vals.items()},
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The single human-readable CV report: a row per fold and the mean ± std."""
    cols = list(CV_METRICS)
    lines = [
        f"# Cross-validation: {report.get('arch', '?')} on {report.get('data', '?')}",
        "",
        f"{len(report['folds'])} folds ({report.get('fold_source', 'fold column')}); start: "
        f"{report.get('pretrained', '?')}; {report.get('epochs', '?')} epochs per fold. "
        "Std is over folds (ddof=1).",
        "",
        "| fold | " + " | ".join(METRIC_LABELS[c] for c in cols) + " | train / valid clips | train time |",
        "|---|" + "---:|" * (len(cols) + 2),
    ]
    for r in report["folds"]:
        lines.append(
            f"| {r['fold']} | "
            + " | ".join(f"{r[c]:.3f}" for c in cols)
            + f" | {r['n_train']} / {r['n_valid']} | {r['train_time_s']:.0f} s |"
        )
    mean, std = report["mean"], report["std"]
    lines.append(
        "| **mean ± std** | "
        + " | ".join(f"**{mean[c]:.3f} ± {std[c]:.3f}**" for c in cols)
        + f" | | {mean['train_time_s']:.0f} s |"
    )
    excluded = {p: why for r in report["folds"] for p, why in r.get("excluded_files", {}).items()}
    if excluded:
        lines += ["", f"{len(excluded)} file(s) could not be read and were excluded:"]
        lines += [f"- `{p}`: {why}" for p, why in sorted(excluded.items())]
    if report.get("confusion") is not None:
        lines += ["", "![pooled confusion matrix](cv_confusion_matrix.png)"]
    return "\n".join(lines) + "\n"
