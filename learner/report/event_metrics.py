"""How well found events match the true ones: one-to-one matches of the same label whose onset and offset
both lie within a tolerance (sed_eval's event-based rule, with the offset held to the same collar)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class EventScore:
    n_true: int
    n_found: int
    matched: int
    onset_errors: list[float]
    offset_errors: list[float]

    @property
    def recall(self) -> float:
        """Share of true events found with onset and offset within the tolerance."""
        return self.matched / self.n_true if self.n_true else 1.0

    @property
    def false_rate(self) -> float:
        """Share of found events that match no true event."""
        return (self.n_found - self.matched) / self.n_found if self.n_found else 0.0

    def as_dict(self) -> dict[str, Any]:
        import numpy as np

        on, off = np.abs(self.onset_errors), np.abs(self.offset_errors)
        return {
            "n_true": self.n_true,
            "n_found": self.n_found,
            "matched": self.matched,
            "recall": round(self.recall, 4),
            "false_rate": round(self.false_rate, 4),
            "onset_mae_s": round(float(on.mean()), 3) if on.size else None,
            "offset_mae_s": round(float(off.mean()), 3) if off.size else None,
            "onset_bias_s": round(float(np.mean(self.onset_errors)), 3) if on.size else None,
            "offset_bias_s": round(float(np.mean(self.offset_errors)), 3) if off.size else None,
        }


def match_events(found: Sequence[Any], truth: Sequence[Any], tolerance_s: float = 0.5) -> EventScore:
    """Greedy one-to-one matching (closest pairs first) of events with `label`, `start_s`, `end_s` attributes.
    A pair counts when the labels are equal and |Δonset| ≤ tolerance and |Δoffset| ≤ tolerance; errors are
    signed (found − true) over the matched pairs."""
    pairs = []
    for i, t in enumerate(truth):
        for j, f in enumerate(found):
            if f.label != t.label:
                continue
            d_on, d_off = f.start_s - t.start_s, f.end_s - t.end_s
            if abs(d_on) <= tolerance_s and abs(d_off) <= tolerance_s:
                pairs.append((abs(d_on) + abs(d_off), i, j, d_on, d_off))
    used_t, used_f, on, off = set(), set(), [], []
    for _, i, j, d_on, d_off in sorted(pairs):
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        on.append(d_on)
        off.append(d_off)
    return EventScore(len(truth), len(found), len(used_t), on, off)


# --- detections against annotated boxes, per class (event-level evaluation) -------------------------------

MATCH_BY = ("onset", "overlap")


@dataclass(frozen=True)
class MatchRule:
    """When a found event counts as one annotated box: `onset` — same label and onsets within
    `tolerance_s`; `overlap` — same label and the event covers at least `min_overlap` of the box. Each box
    and each event is used at most once (closest / most overlapping pairs first)."""

    by: str = "onset"
    tolerance_s: float = 0.5
    min_overlap: float = 0.5

    def __post_init__(self) -> None:
        if self.by not in MATCH_BY:
            raise ValueError(f"match by {' or '.join(MATCH_BY)}, got {self.by!r}")
        if self.tolerance_s < 0 or not 0 < self.min_overlap <= 1:
            raise ValueError(
                f"tolerance must be ≥ 0 s and min_overlap in (0, 1], got "
                f"{self.tolerance_s}, {self.min_overlap}"
            )


def count_matches(
    found: Sequence[tuple[float, float]], boxes: Sequence[tuple[float, float]], rule: MatchRule
) -> int:
    """How many (start, end) events of one label in one recording match its boxes one to one. Only events
    near a box are compared (sorted starts), so a long recording's thousands of events cost n log n."""
    import numpy as np

    if not found or not boxes:
        return 0
    order = sorted(range(len(found)), key=lambda j: found[j][0])
    f0 = np.array([found[j][0] for j in order])
    f1 = np.array([found[j][1] for j in order])
    longest = float((f1 - f0).max())
    pairs = []
    for i, (b0, b1) in enumerate(boxes):
        if rule.by == "onset":
            lo, hi = (
                np.searchsorted(f0, b0 - rule.tolerance_s),
                np.searchsorted(f0, b0 + rule.tolerance_s, "right"),
            )
        else:
            lo, hi = np.searchsorted(f0, b0 - longest), np.searchsorted(f0, b1)
        for j in range(lo, hi):
            if rule.by == "onset":
                pairs.append((abs(f0[j] - b0), i, j))
            else:
                share = (min(f1[j], b1) - max(f0[j], b0)) / max(b1 - b0, 1e-9)
                if share >= rule.min_overlap:
                    pairs.append((-share, i, j))
    used_b, used_f = set(), set()
    for _, i, j in sorted(pairs):
        if i not in used_b and j not in used_f:
            used_b.add(i)
            used_f.add(j)
    return len(used_b)


def class_figures(tp: int, fp: int, fn: int, hours: float) -> dict[str, Any]:
    """Precision (None when nothing was found), recall (None when there was nothing to find), F1, false
    alarms per hour of audio and misses, from one class's counts."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {
        "true_events": tp + fn,
        "found": tp + fp,
        "matched": tp,
        "false_alarms": fp,
        "misses": fn,
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": None if f1 is None else round(f1, 4),
        "false_per_hour": round(fp / hours, 3) if hours > 0 else None,
    }
