"""The multi-label side of training: multi-hot float targets, sigmoid outputs through fastai's
`BCEWithLogitsLossFlat`, metrics that suit several labels per clip, and after the fit the per-class
thresholds (both tasks) and the report.

fastai's `MixUp` needs nothing special here: with a loss that has no `y_int` (BCE) it blends the targets
themselves, so mixed clips train on soft targets (λ·y₁ + (1 − λ)·y₂); the targets are float for that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learner.data.labels import multi_hot, split_labels


class LabelsToMultiHot:
    """get_y of a manifest row: its `labels` as a float 0/1 vector over `classes` (a class, so that the
    fastai export can pickle it)."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = list(classes)

    def __call__(self, row: pd.Series) -> np.ndarray:
        return multi_hot([split_labels(row["labels"])], self.classes)[0]


def multi_label_parts(classes: list[str]) -> tuple[Any, Any, Any, list[Any]]:
    """(y block, get_y, loss, metrics) for a multi-label DataBlock and Learner."""
    from fastai.data.block import MultiCategoryBlock
    from fastai.losses import BCEWithLogitsLossFlat
    from fastai.metrics import APScoreMulti, accuracy_multi

    return (
        MultiCategoryBlock(encoded=True, vocab=list(classes)),
        LabelsToMultiHot(classes),
        BCEWithLogitsLossFlat(),
        [APScoreMulti(), accuracy_multi],
    )


def training_classes(used: pd.DataFrame, source: str) -> list[str]:
    """Every label of the training rows, sorted; validation labels never seen in training are an error."""
    from learner.data.labels import label_sets

    sets = label_sets(used)
    train = [s for s, v in zip(sets, used["is_valid"], strict=True) if not v]
    classes = sorted({lab for s in train for lab in s})
    unseen = sorted(
        {lab for s, v in zip(sets, used["is_valid"], strict=True) if v for lab in s} - set(classes)
    )
    if unseen:
        raise ValueError(f"{source}: validation has labels with no training files: {', '.join(unseen)}")
    return classes


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
