"""learner/report/metrics.py: metrics per class, naming the classes not evaluated (issue 25, item 17)."""

from __future__ import annotations

import numpy as np
import pytest

from learner.report.metrics import classification_report, ranks


def test_report_on_a_known_case():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    targets = np.array([0, 1, 1, 2])
    m = classification_report(probs, targets, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.5)
    assert ranks(probs, targets).tolist() == [1, 2, 2, 1]
    assert m["map3"] == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)
    assert m["top3_accuracy"] == 1.0
    assert m["confusion"] == [[1, 0, 0], [1, 0, 1], [0, 0, 1]]
    # precision: a 1/2, b 0 (never predicted), c 1/2; recall: a 1, b 0, c 1
    assert m["macro_precision"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx(2 / 3)
    assert m["per_class"][1]["top3"] == 1.0 and m["per_class"][1]["top1"] == 0.0


def test_empty_input_is_an_error():
    with pytest.raises(ValueError):
        classification_report(np.zeros((0, 2)), np.zeros(0), ["a", "b"])


# --- issue 25, item 17: every class with 2 groups or more is in validation ----------------------------------


def test_metrics_name_the_classes_not_evaluated():
    from learner.report.metrics import classification_report

    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    m = classification_report(probs, np.array([0, 1]), ["a", "b", "c"])
    assert m["not_evaluated"] == ["c"]
