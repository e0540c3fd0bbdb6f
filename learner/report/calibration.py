"""Calibration from review: per class, a logistic fit of "the reviewer said yes" against the model's score,
and the score at which a detection is right with a wanted probability (BirdNET-Analyzer's Review tab;
Wood & Kahl 2024, J. Ornithol., "Guidelines for appropriate use of BirdNET scores").

The fit is on the logit of the score (Wood & Kahl's form: scores pile up near 0 and 1, their logits do not),
`P(yes | s) = 1 / (1 + exp(-(a + b·logit(s))))`. The threshold for precision p is where that curve reaches
p: a detection at the threshold is right with probability p, and every detection above it more often, so
the precision of all detections above it is at least p (the fit permitting). Answers: yes → 1, no and
other (a different sound) → 0, unsure → left out. A class needs both kinds of answer to be fitted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EPS = 1e-4  # scores are clipped to [EPS, 1 - EPS] before the logit
C = 55.0  # the inverse regularisation BirdNET-Analyzer's review tab fits with (almost none)
TARGETS = (0.85, 0.9, 0.95, 0.99)  # the precisions the plot marks


def logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(s, dtype=np.float64), EPS, 1 - EPS)
    return np.log(s / (1 - s))


@dataclass
class Calibration:
    """One class's fit: `p_yes(scores)` and `threshold_for(precision)`."""

    label: str
    n: int
    n_yes: int
    intercept: float
    slope: float

    def p_yes(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.intercept + self.slope * logit(scores))))

    def threshold_for(self, precision: float) -> float | None:
        """The score where P(yes) reaches `precision`; None when the fit never gets there within (0, 1)
        (yes does not grow with the score, or only above the top)."""
        if not 0 < precision < 1:
            raise ValueError(f"precision {precision}: give a value strictly between 0 and 1")
        if self.slope <= 0:
            return None
        z = (np.log(precision / (1 - precision)) - self.intercept) / self.slope
        t = float(1.0 / (1.0 + np.exp(-z)))
        return t if EPS <= t <= 1 - EPS else None

    def as_dict(self) -> dict:
        return asdict(self)


def fit_calibration(label: str, scores: np.ndarray, yes: np.ndarray) -> Calibration | None:
    """Logistic regression of `yes` (bool) on logit(score); None without both yes and no answers."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(yes, dtype=bool)
    if y.all() or not y.any():
        return None
    x = logit(scores)[:, None]
    clf = LogisticRegression(C=C, max_iter=1000).fit(x, y.astype(int))
    return Calibration(label, int(len(y)), int(y.sum()), float(clf.intercept_[0]), float(clf.coef_[0, 0]))


def answers_by_class(review: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Latest answers (`read_review`) → {label: (scores, said yes)}, unsure left out."""
    sure = review.loc[review["answer"].isin(["yes", "no", "other"])]
    return {
        str(label): (g["score"].to_numpy(float), (g["answer"] == "yes").to_numpy())
        for label, g in sure.groupby("label", sort=True)
    }


def calibrate_review(review: pd.DataFrame, precision: float = 0.9) -> dict[str, dict]:
    """{label: {threshold, n, n_yes, intercept, slope, reason}} for every reviewed class; `threshold` is
    None (with the reason) when the class cannot be fitted or never reaches `precision`."""
    out = {}
    for label, (scores, yes) in answers_by_class(review).items():
        cal = fit_calibration(label, scores, yes)
        if cal is None:
            kind = "yes" if yes.all() else "no"
            out[label] = {"threshold": None, "n": len(yes), "n_yes": int(yes.sum()),
                          "reason": f"every answer is {kind}: review some of the other kind"}  # fmt: skip
            continue
        t = cal.threshold_for(precision)
        reason = None if t is not None else f"the fit never reaches precision {precision:g} below score 1"
        out[label] = {"threshold": None if t is None else round(t, 4), **cal.as_dict(), "reason": reason}
    return out


def plot_calibration(
    review: pd.DataFrame, path: str | Path | None = None, targets: tuple[float, ...] = TARGETS
):
    """One panel per class: the answers (0/1, jittered) against score, the fitted curve, and the threshold
    of each target precision; saved to `path` (PNG) when given. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = answers_by_class(review)
    n = max(1, len(data))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    grid = np.linspace(EPS, 1 - EPS, 400)
    rng = np.random.default_rng(0)
    for ax, (label, (scores, yes)) in zip(axes[0], data.items()):
        ax.scatter(scores, yes + rng.uniform(-0.03, 0.03, len(yes)), s=8, alpha=0.6, color="k")
        cal = fit_calibration(label, scores, yes)
        if cal is not None:
            ax.plot(grid, cal.p_yes(grid), color="tab:red", label="P(yes | score)")
            for p, color in zip(targets, ("tab:blue", "tab:purple", "tab:orange", "tab:green")):
                t = cal.threshold_for(p)
                if t is not None:
                    ax.vlines(t, 0, p, color=color, ls="--", lw=0.8, label=f"p={p:g}: score ≥ {t:.3f}")
                    ax.hlines(p, 0, t, color=color, ls="--", lw=0.8)
            ax.legend(fontsize=6, loc="center right")
        ax.set(xlim=(0, 1), ylim=(-0.08, 1.08), xlabel="score", title=f"{label} ({len(yes)} answers)")
        ax.set_yticks([0, 1], ["no", "yes"])
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
