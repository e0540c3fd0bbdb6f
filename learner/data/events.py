"""`Event`: one labelled span of a recording, whether a model found it (`learner.serve.events`) or a person
drew it (a box in Raven or Audacity), so detections and annotations compare as equals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One sound event: `label` heard from `start_s` to `end_s` (seconds into `path`)."""

    path: str
    label: str
    start_s: float
    end_s: float
    max_score: float
    mean_score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
