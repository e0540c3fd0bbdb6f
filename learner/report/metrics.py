"""Classification metrics from probabilities: one function, used by training, evaluation and comparison."""

from __future__ import annotations

from typing import Any

import numpy as np


def ranks(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of the true class in each row (1 = top prediction)."""
    true = probs[np.arange(len(targets)), targets]
    return 1 + (probs > true[:, None]).sum(axis=1)


def confusion(targets: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (targets, preds), 1)
    return cm


def classification_report(probs: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """accuracy, top-3 accuracy, MAP@3, macro precision/recall/F1, a per-class table and the confusion
    matrix."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        raise ValueError("no samples to evaluate")
    n = len(classes)
    preds = probs.argmax(axis=1)
    r = ranks(probs, targets)
    cm = confusion(targets, preds, n)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    per_class = [
        {
            "label": c,
            "support": int(support[i]),
            "top1": float(recall[i]),
            "top3": float((r[targets == i] <= 3).mean()) if support[i] else 0.0,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
        }
        for i, c in enumerate(classes)
    ]
    return {
        "n_samples": int(len(targets)),
        "accuracy": float((preds == targets).mean()),
        "top3_accuracy": float((r <= 3).mean()),
        "map3": float(np.where(r <= 3, 1.0 / r, 0.0).mean()),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class": per_class,
        "not_evaluated": [c for i, c in enumerate(classes) if not support[i]],  # no clip to measure them on
        "confusion": cm.tolist(),
        "classes": list(classes),
    }


def summary_line(m: dict[str, Any]) -> str:
    return (
        f"accuracy {m['accuracy']:.3f} · top-3 {m['top3_accuracy']:.3f} · MAP@3 {m['map3']:.3f} · "
        f"macro F1 {m['macro_f1']:.3f} · n={m['n_samples']}"
    )
