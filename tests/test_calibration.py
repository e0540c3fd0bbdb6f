"""Issue 23, item 4: calibration from review. A logistic fit of "the reviewer said yes" against the logit
of the score recovers a known curve, its threshold for a wanted precision holds on fresh answers, classes
that cannot be fitted say why, the plot is drawn, and `jobs.review calibrate --write` puts the thresholds
in the model's config.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from learner.data.review import Candidate, append_answer, read_review
from learner.report.calibration import calibrate_review, fit_calibration, logit, plot_calibration

A, B = -1.0, 1.5  # the true curve: P(yes | s) = sigmoid(A + B·logit(s))


def answers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.01, 0.99, n)
    p = 1 / (1 + np.exp(-(A + B * logit(s))))
    return s, rng.random(n) < p


def test_the_fit_recovers_the_curve_and_its_threshold():
    s, yes = answers(3000, 0)
    cal = fit_calibration("owl", s, yes)
    assert cal.slope == pytest.approx(B, rel=0.15) and cal.intercept == pytest.approx(A, abs=0.2)
    true_t = 1 / (1 + np.exp(-((np.log(9) - A) / B)))  # P(yes) = 0.9
    assert cal.threshold_for(0.9) == pytest.approx(true_t, abs=0.03)
    # on fresh answers, detections at or above the threshold are right at least 90 % of the time
    s2, yes2 = answers(20000, 1)
    assert yes2[s2 >= cal.threshold_for(0.9)].mean() >= 0.9
    assert cal.threshold_for(0.5) < cal.threshold_for(0.9) < cal.threshold_for(0.99)


def test_a_class_that_cannot_be_fitted_says_why():
    s, yes = answers(200, 2)
    rows = [("owl", x, "yes" if y else "no") for x, y in zip(s, yes)]
    rows += [("frog", 0.3, "yes"), ("frog", 0.8, "yes"), ("bat", 0.9, "unsure")]
    review = pd.DataFrame(rows, columns=["label", "score", "answer"])
    found = calibrate_review(review, 0.9)
    assert set(found) == {"owl", "frog"}  # unsure answers are left out
    assert found["frog"]["threshold"] is None and "every answer is yes" in found["frog"]["reason"]
    assert 0 < found["owl"]["threshold"] < 1 and found["owl"]["n"] == 200
    never = fit_calibration("x", np.array([0.1, 0.9, 0.5, 0.6]), np.array([True, False, False, True]))
    assert never.threshold_for(0.99) is None  # flat or falling: no score gives 99 %
    with pytest.raises(ValueError, match="strictly between"):
        never.threshold_for(1.0)


def test_the_plot_and_the_job_write_thresholds_into_the_model(tmp_path, capsys):
    from jobs.review import main
    from tests.conftest import save_untrained

    f = tmp_path / "r.csv"
    s, yes = answers(150, 3)
    for i, (x, y) in enumerate(zip(s, yes)):
        append_answer(f, Candidate("rec.wav", i, i + 1, "tone", float(x)), "yes" if y else "no")
    append_answer(f, Candidate("rec.wav", 0, 1, "chirp", 0.4), "other", "tone")
    fig = plot_calibration(read_review(f), tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5000 and len(fig.axes) == 2
    model = save_untrained(tmp_path / "m", ["chirp", "tone"])
    before = json.loads((model / "config.json").read_text())
    argv = ["calibrate", str(f), "--precision", "0.8", "--model", str(model), "--write"]
    assert main([*argv, "--plot", str(tmp_path / "d.png")]) == 0
    config = json.loads((model / "config.json").read_text())
    expected = calibrate_review(read_review(f), 0.8)["tone"]["threshold"]
    assert config["thresholds"] == {"tone": expected} and "review" in config["thresholds_rule"]
    assert config["thresholds_history"][-1]["thresholds"] == {}  # learner.folder keeps what it replaced
    assert {k: v for k, v in config.items() if not k.startswith("thresholds")} == before
    assert "every answer is no" in capsys.readouterr().out  # chirp: one "other" is no answer to fit
    with pytest.raises(ValueError, match="--write needs --model"):
        main(["calibrate", str(f), "--write"])
