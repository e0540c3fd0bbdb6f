"""Multi-label metrics from sigmoid scores and multi-hot targets: per-class AP and AUROC, macro mAP, and
micro/macro precision, recall and F1 at the model's thresholds (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.report.thresholds import pr_points


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the precision-recall steps, Σ (R_n − R_{n−1}) P_n (scikit-learn's definition); NaN with no
    positives."""
    truth = np.asarray(truth) > 0.5
    if not truth.any():
        return float("nan")
    _, precision, recall = pr_points(np.asarray(scores, dtype=np.float64), truth)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half); NaN when one side is empty."""
    truth = np.asarray(truth) > 0.5
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def multilabel_report(
    probs: np.ndarray, targets: np.ndarray, classes: list[str], thresholds: dict[str, float]
) -> dict[str, Any]:
    """macro mAP, macro AUROC, micro/macro F1 (precision, recall) at `thresholds`, exact-match accuracy and a
    per-class table; macro figures average the classes that have positives in `targets`."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets) > 0.5
    if len(targets) == 0:
        raise ValueError("no samples to evaluate")
    thr = np.array([thresholds[c] for c in classes])
    pred = probs >= thr
    tp, fp, fn = (pred & targets).sum(0), (pred & ~targets).sum(0), (~pred & targets).sum(0)
    precision, recall, f1 = _prf(tp, fp, fn)
    micro_p, micro_r, micro_f = _prf(tp.sum(), fp.sum(), fn.sum())
    ap = np.array([average_precision(probs[:, j], targets[:, j]) for j in range(len(classes))])
    roc = np.array([auroc(probs[:, j], targets[:, j]) for j in range(len(classes))])
    present = targets.sum(0) > 0
    per_class = [
        {
            "label": c,
            "support": int(targets[:, j].sum()),
            "ap": _num(ap[j]),
            "auroc": _num(roc[j]),
            "threshold": float(thr[j]),
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
        }
        for j, c in enumerate(classes)
    ]
    return {
        "task": "multi",
        "n_samples": int(len(targets)),
        "macro_map": float(np.nanmean(ap)) if present.any() else None,
        "macro_auroc": float(np.nanmean(roc)) if np.isfinite(roc).any() else None,
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "micro_f1": float(micro_f),
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "exact_match": float((pred == targets).all(axis=1).mean()),
        "labels_per_clip": float(targets.sum(1).mean()),
        "per_class": per_class,
        "classes": list(classes),
    }


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def multilabel_summary(m: dict[str, Any]) -> str:
    mean_ap = "n/a" if m.get("macro_map") is None else f"{m['macro_map']:.3f}"
    return (
        f"macro mAP {mean_ap} · macro F1 {m['macro_f1']:.3f} · micro F1 {m['micro_f1']:.3f} · "
        f"exact match {m['exact_match']:.3f} · n={m['n_samples']}"
    )


def per_class_csv(m: dict[str, Any]) -> str:
    """The per-class table as CSV text (label, support, ap, auroc, threshold, precision, recall, f1)."""
    import csv
    import io

    cols = ("label", "support", "ap", "auroc", "threshold", "precision", "recall", "f1")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in m["per_class"]:
        w.writerow(
            ["" if r[c] is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in cols]
        )
    return buf.getvalue()
