"""What a model's validation predictions become: per-class thresholds (both tasks), the metrics of
metrics.json, and the multi-label outputs beside the model (per_class.csv, pr_curves.png). NumPy only:
training and `learner.score.evaluate` share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def targets_matrix(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Multi-hot (rows × classes) from class indices (single-label) or as given (multi-label)."""
    targets = np.asarray(targets)
    if targets.ndim == 2:
        return (targets > 0.5).astype(np.float32)
    out = np.zeros((len(targets), n_classes), dtype=np.float32)
    out[np.arange(len(targets)), targets.astype(np.int64)] = 1.0
    return out


def decide(
    task: str,
    probs: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    target_precision: float | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """(thresholds, metrics) on the validation predictions. Single-label metrics are exactly
    `classification_report`'s; thresholds are calibrated for both tasks (see learner.report.thresholds)."""
    from learner.report.thresholds import calibrate

    hot = targets_matrix(targets, len(classes))
    thresholds = calibrate(probs, hot, classes, task, target_precision)
    if task == "multi":
        from learner.report.multilabel import multilabel_report

        return thresholds, multilabel_report(probs, hot, classes, thresholds)
    from learner.report.metrics import classification_report

    return thresholds, classification_report(probs, targets, classes)


def threshold_rule(target_precision: float | None) -> str:
    """How config.json's thresholds were chosen, in words (for the card)."""
    if target_precision is None:
        return "maximum F1 per class on the validation split"
    return f"lowest threshold with precision ≥ {target_precision:g} per class on the validation split"


def write_multilabel_outputs(
    out: Path,
    metrics: dict[str, Any],
    probs: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    thresholds: dict[str, float],
) -> None:
    """per_class.csv and pr_curves.png beside the model (the multi-label counterpart of the confusion
    matrix)."""
    from learner.report.multilabel import per_class_csv
    from learner.report.plots import plot_pr_curves

    (Path(out) / "per_class.csv").write_text(per_class_csv(metrics), encoding="utf-8")
    mean_ap = metrics.get("macro_map")
    plot_pr_curves(
        probs,
        targets,
        classes,
        thresholds,
        Path(out) / "pr_curves.png",
        title=f"validation · macro mAP {mean_ap:.3f}" if mean_ap is not None else "validation",
    )
