"""Per-class decision thresholds, calibrated on the validation split (NumPy only: serving reads the result).

A multi-label model says "present" for every class whose sigmoid score reaches its threshold. A single-label
model keeps its top class, but when that class's probability is below its threshold the answer is "none of
the known classes". One rule serves both: for a single-label model the score of class c is its probability
where c is the top class and 0 elsewhere, so the threshold only ever rejects top predictions.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Used when a model folder records no thresholds: sigmoid 0.5 (multi-label), any top class (single-label).
DEFAULT_THRESHOLD = {"multi": 0.5, "single": 0.0}


def decision_scores(probs: np.ndarray, task: str) -> np.ndarray:
    """What thresholds act on: the scores themselves (multi), or each row's top probability in its column
    and 0 elsewhere (single)."""
    probs = np.asarray(probs, dtype=np.float64)
    if task == "multi":
        return probs
    out = np.zeros_like(probs)
    rows = np.arange(len(probs))
    top = probs.argmax(axis=1)
    out[rows, top] = probs[rows, top]
    return out


def pr_points(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, precision, recall) for "positive when score ≥ threshold", one point per
    distinct
    score (as scikit-learn's precision_recall_curve, without its appended end point)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    positives = t.sum()
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / positives if positives else np.zeros_like(tp)
    return s[last], precision, recall


def calibrate_one(
    scores: np.ndarray, truth: np.ndarray, target_precision: float | None = None
) -> float | None:
    """The threshold of one class: maximum F1 (default), or the lowest one whose precision reaches
    `target_precision` (most recall at that precision). It sits halfway to the next lower score, so the
    validation decisions are exactly those of the chosen point with a margin for new data. None when the
    class has no validation examples (nothing to calibrate on)."""
    truth = np.asarray(truth) > 0.5
    if not truth.any():
        return None
    thr, precision, recall = pr_points(np.asarray(scores, dtype=np.float64), truth)
    if target_precision is None:
        f1 = np.where(
            precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0
        )
        i = int(np.argmax(f1))
    else:
        ok = np.flatnonzero(precision >= target_precision)
        i = int(ok[-1]) if len(ok) else int(np.argmax(precision))
    below = thr[i + 1] if i + 1 < len(thr) else 0.0
    return float((thr[i] + below) / 2)


def calibrate(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    task: str,
    target_precision: float | None = None,
) -> dict[str, float]:
    """{class: threshold} from validation scores and multi-hot `targets` (rows × classes); a class with no
    validation examples gets the task's default (DEFAULT_THRESHOLD) and a warning."""
    if target_precision is not None and not 0 < target_precision <= 1:
        raise ValueError(f"target_precision={target_precision}: give a precision in (0, 1]")
    scores = decision_scores(probs, task)
    targets = np.asarray(targets)
    out = {}
    for j, c in enumerate(classes):
        t = calibrate_one(scores[:, j], targets[:, j], target_precision)
        if t is None:
            log.warning(
                "%s: no validation examples to calibrate its threshold on; using %g",
                c,
                DEFAULT_THRESHOLD[task],
            )
            t = DEFAULT_THRESHOLD[task]
        out[c] = round(t, 6)
        if target_precision is not None and targets[:, j].any():
            _, precision, _ = pr_points(scores[:, j], targets[:, j] > 0.5)
            if precision.max() < target_precision:
                log.warning(
                    "%s: no threshold reaches precision %.2f on validation (best %.2f); using the most "
                    "precise one",
                    c,
                    target_precision,
                    precision.max(),
                )
    return out


def threshold_vector(config: dict[str, Any], classes: list[str]) -> np.ndarray:
    """Thresholds from a model's config.json in class order; classes it does not list get the default."""
    task = config.get("task", "single")
    given = config.get("thresholds") or {}
    return np.array([float(given.get(c, DEFAULT_THRESHOLD[task])) for c in classes], dtype=np.float64)


def detected(probs: np.ndarray, classes: list[str], thresholds: np.ndarray, task: str) -> list[str]:
    """The labels a prediction asserts, best first: every class at or above its threshold (multi), or the top
    class when it reaches its threshold (single; [] = none of the known classes)."""
    probs = np.asarray(probs)
    if task == "multi":
        hits = np.flatnonzero(probs >= thresholds)
        return [classes[i] for i in hits[np.argsort(-probs[hits], kind="stable")]]
    top = int(probs.argmax())
    return [classes[top]] if probs[top] >= thresholds[top] else []
