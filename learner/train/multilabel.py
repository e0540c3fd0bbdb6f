"""The multi-label side of training: multi-hot float targets, sigmoid outputs through fastai's
`BCEWithLogitsLossFlat` and metrics that suit several labels per clip (the thresholds and the report after
the fit are `learner.report.validation`'s).

fastai's `MixUp` needs nothing special here: with a loss that has no `y_int` (BCE) it blends the targets
themselves, so mixed clips train on soft targets (λ·y₁ + (1 − λ)·y₂); the targets are float for that reason.
"""

from __future__ import annotations

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


def split_classes(used: pd.DataFrame, task: str, source: str) -> list[str]:
    """The classes a model trains on, from the training rows of `used` (multi-label: `training_classes`;
    single: the training labels); a validation label no training row has is an error, and so is one class."""
    if task == "multi":
        classes = training_classes(used, source)
    else:
        classes = sorted(used.loc[~used["is_valid"], "label"].unique())
        unseen = sorted(set(used.loc[used["is_valid"], "label"]) - set(classes))
        if unseen:
            raise ValueError(f"{source}: validation has labels with no training files: {', '.join(unseen)}")
    if len(classes) < 2:
        raise ValueError(f"{source}: need at least 2 classes to train, found {classes}")
    return classes
