"""Event figures against the threshold (one row per event rule, threshold and class), the thresholds they
recommend for a wanted precision or false-alarm rate, and their picture. Pure pandas: the curve itself is
computed from window scores in `learner.score.event_evaluation`.

The recommendation takes, per class, the threshold with the most recall among those where the target holds
on the curve SMOOTHED over each threshold and its two neighbours on the grid (their counts pooled, so a point
weighs as many events as it found; ties: the lower threshold). Read raw, one false alarm among the three
events of a high threshold sinks its precision to 0.67, and a lucky point picks a threshold that does not
carry to another recording. The curve is not assumed monotone: with onset matching, a higher threshold can
shorten events until their onsets fall outside the tolerance, so precision may FALL as the threshold rises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CURVE_COLUMNS = (
    "gap_s",
    "min_length_s",
    "threshold",
    "label",
    "true_events",
    "found",
    "matched",
    "false_alarms",
    "misses",
    "precision",
    "recall",
    "f1",
    "false_per_hour",
)


NOTE_ABOVE = 0.05  # a class this far over its target at the lowest threshold gets a note: it cannot come down


def smoothed(rows: pd.DataFrame, column: str, radius: int = 1) -> np.ndarray:
    """`column` ("precision" or "false_per_hour") at each threshold (rows sorted by it) from the counts
    pooled over it and its `radius` neighbours each side."""
    matched = rows["matched"].to_numpy(dtype=np.float64)
    found = rows["found"].to_numpy(dtype=np.float64)
    rate = rows["false_per_hour"].fillna(0.0).to_numpy(dtype=np.float64)
    out = np.empty(len(rows))
    for i in range(len(rows)):
        lo, hi = max(0, i - radius), min(len(rows), i + radius + 1)
        if column == "precision":
            out[i] = matched[lo:hi].sum() / found[lo:hi].sum() if found[lo:hi].sum() else np.nan
        else:
            out[i] = rate[lo:hi].mean()
    return out


def _pick(
    rows: pd.DataFrame, target_precision: float | None, max_false_per_hour: float | None
) -> tuple[pd.Series | None, str | None]:
    """(the row of one class and rule with the most recall where the target holds on the smoothed curve
    (module docstring), or None; why there is none, or a note when precision is more than NOTE_ABOVE over
    the target at the lowest threshold tried: no threshold brings it down to the target)."""
    rows = rows.sort_values("threshold").reset_index(drop=True)
    rows["smoothed_precision"] = smoothed(rows, "precision").round(4)
    rows["smoothed_false_per_hour"] = smoothed(rows, "false_per_hour").round(3)
    found = rows["found"].to_numpy() > 0
    ok = found.copy()
    if target_precision is not None:
        ok &= rows["smoothed_precision"].fillna(0.0).to_numpy() >= target_precision - 1e-9
    if max_false_per_hour is not None:
        ok &= rows["smoothed_false_per_hour"].to_numpy() <= max_false_per_hour + 1e-9
    if not ok.any():
        return None, _why_none(rows[found], target_precision)
    feasible = rows[ok]
    best = feasible["recall"].fillna(0.0).max()
    row = feasible[feasible["recall"].fillna(0.0) >= best - 1e-12].iloc[0]
    note = None
    above = target_precision is not None and row["smoothed_precision"] > target_precision + NOTE_ABOVE
    if above and row.name == 0:
        note = (
            f"precision {row['smoothed_precision']:.2f} already at the lowest threshold tried "
            f"({row['threshold']:g}): no threshold brings it down to {target_precision:g}"
        )
    return row, note


def _why_none(rows: pd.DataFrame, target_precision: float | None) -> str:
    """What the class reaches at best, for the "no threshold" answer."""
    if rows.empty:
        return "no threshold meets the target on this data: the model finds no event of it"
    if target_precision is not None:
        best = rows.loc[rows["smoothed_precision"].fillna(0.0).idxmax()]
        return (
            f"no threshold meets the target on this data: precision at most {best['smoothed_precision']:.2f} "
            f"(threshold {best['threshold']:g}, {int(best['found'])} events found)"
        )
    best = rows.loc[rows["smoothed_false_per_hour"].idxmin()]
    return (
        f"no threshold meets the target on this data: at least {best['smoothed_false_per_hour']:g} false "
        f"alarms an hour (threshold {best['threshold']:g})"
    )


def recommend_thresholds(
    curve: pd.DataFrame, target_precision: float | None = None, max_false_per_hour: float | None = None
) -> dict[str, Any]:
    """Per-class thresholds (and one event gap / minimum length for all) meeting the target with the most
    recall: {"gap_s", "min_length_s", "target", "classes": {label: {"threshold", precision, recall, …} or
    {"threshold": None, "reason": what the class reaches at best}}}, with a "note" on a class whose
    precision stays well above the target even at the lowest threshold. Of the event rules in the curve, the
    one with the highest summed recall over the classes wins (ties: the smaller gap, then the smaller
    minimum)."""
    if (target_precision is None) == (max_false_per_hour is None):
        raise ValueError("give one target: a precision, or a number of false alarms per hour")
    if target_precision is not None and not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    if max_false_per_hour is not None and max_false_per_hour < 0:
        raise ValueError(f"false alarms per hour must be ≥ 0, got {max_false_per_hour}")
    best: tuple[float, float, float, dict] | None = None
    for (gap, least), rule_rows in curve.groupby(["gap_s", "min_length_s"], sort=True):
        chosen, total = {}, 0.0
        for label, rows in rule_rows.groupby("label", sort=True):
            row, why = _pick(rows, target_precision, max_false_per_hour)
            if row is None:
                chosen[label] = {"threshold": None, "reason": why}
                continue
            chosen[label] = {
                "threshold": float(row["threshold"]),
                **{
                    k: _plain(row[k])
                    for k in (*CURVE_COLUMNS[4:], "smoothed_precision", "smoothed_false_per_hour")
                },
                **({"note": why} if why else {}),
            }
            total += float(row["recall"] or 0.0)
        if best is None or total > best[0] + 1e-12:
            best = (total, float(gap), float(least), chosen)
    if best is None:
        raise ValueError("the curve is empty: no recordings, classes or thresholds to choose from")
    target = {"precision": target_precision} if target_precision is not None else {}
    if max_false_per_hour is not None:
        target["false_per_hour"] = max_false_per_hour
    return {"gap_s": best[1], "min_length_s": best[2], "target": target, "classes": best[3]}


def _plain(v: Any) -> Any:
    """numpy scalars and NaN → JSON's numbers and null."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if hasattr(v, "item") else v


def plot_event_curve(curve: pd.DataFrame, path: Path, gap_s: float, min_length_s: float) -> Path:
    """Precision, recall and false alarms per hour against the threshold, one line per class, for one event
    rule (gap and minimum length): `path` (PNG)."""
    from learner.report.plots import _finish, plt

    rows = curve[(curve["gap_s"] == gap_s) & (curve["min_length_s"] == min_length_s)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, r in rows.groupby("label", sort=True):
        r = r.sort_values("threshold")
        for ax, col in zip(axes, ("precision", "recall", "false_per_hour"), strict=True):
            ax.plot(r["threshold"], r[col], marker=".", label=str(label))
    for ax, title in zip(axes, ("precision", "recall", "false alarms per hour"), strict=True):
        ax.set_xlabel("threshold")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"events against the threshold (gap {gap_s:g} s, minimum {min_length_s:g} s)")
    path = Path(path)
    _finish(fig, path)
    return path
