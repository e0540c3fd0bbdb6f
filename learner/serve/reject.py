"""Rejection: the answer a person sees, which may be "not one of the words" instead of the top class.

A model that hears everything (a live microphone, a folder of field recordings) must be able to say that a
sound is none of its words. Two things say it, both recorded in the model's config.json:

- **reject classes** (`"reject": {"classes": [...]}`): classes trained on purpose to catch the rest, such as
  `unknown` (other words) and `silence` (background noise). When one of them is the top class, the answer is
  that class, shown by its name in `"reject": {"names": {...}}`;
- **thresholds** (`"thresholds": {class: t}`, calibrated on held-out speakers): a top class whose probability
  is below its threshold is answered as `"reject": {"answer": ...}` (default `unknown`).

A folder without a `reject` record (every folder written before it) answers its top class as before, and
"none of the known classes" when that class is below its threshold. The Predictor applies this rule, so the
Classify tab, the live mode, `jobs.predict` and the API all say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "unknown"
UNKNOWN_TEXT = "none of the known classes"


@dataclass(frozen=True)
class Rejection:
    """How a model answers when it should not name a class (see the module docstring)."""

    classes: tuple[str, ...] = ()
    answer: str = UNKNOWN  # what a top class below its threshold is answered as
    names: Mapping[str, str] = field(default_factory=dict)  # answer → what a person reads

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Rejection:
        """The config's `reject` record; absent or null → no reject classes (older folders)."""
        record = config.get("reject") or {}
        return cls(
            classes=tuple(record.get("classes") or ()),
            answer=str(record.get("answer") or UNKNOWN),
            names=dict(record.get("names") or {}),
        )

    def decide(self, top: str, score: float, threshold: float) -> str:
        """The answer for top class `top` with probability `score` against its `threshold`."""
        if top in self.classes:
            return top
        return top if score >= threshold else self.answer

    def rejects(self, answer: str) -> bool:
        """True when `answer` says "none of the classes" (a reject class or the below-threshold answer)."""
        return answer in self.classes or answer == self.answer

    def text(self, answer: str) -> str:
        """What a person reads for `answer`: its recorded name, else the class itself ("none of the known
        classes" for the below-threshold answer of a model without names)."""
        if answer in self.names:
            return self.names[answer]
        return UNKNOWN_TEXT if answer == self.answer and answer not in self.classes else answer


def reject_record(
    classes: Sequence[str], answer: str = UNKNOWN, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """config.json's `reject` record for a model whose `classes` catch what is none of its words."""
    return {"classes": list(classes), "answer": answer, "names": dict(names or {})}
