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
