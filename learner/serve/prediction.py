"""`Prediction`: what `Predictor.predict` answers for one input (labels, scores, windows, events)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from learner.serve.events import Event


@dataclass
class Prediction:
    """Top-k for one input; `probs` over all classes (mean of window probabilities when windowed).

    It carries what the model saw, so nobody cuts the input again: `clip` is the model input that stands
    for the prediction (the prepared clip, or the window where the top class scored highest), and a windowed
    prediction keeps its plan (`window_s`, `hop_s`), each window's start and probabilities.
    """

    labels: list[str]
    scores: list[float]
    probs: np.ndarray
    duration_s: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    decoder: str = ""
    window_starts: list[float] = field(default_factory=list)
    window_probs: np.ndarray | None = None
    clip: np.ndarray | None = None
    window_s: float = 0.0
    hop_s: float = 0.0
    detected: list[str] = field(default_factory=list)  # labels at or above their thresholds, best first
    # windowed only: timestamped events (learner.serve.events)
    events: list[Event] = field(default_factory=list)
    warning: str | None = None  # decoded, but something is off (a file cut short of what its header says)
    # what a person is told (learner.serve.reject): the top class, or a reject answer such as "unknown"
    answer: str = ""
    answer_text: str = ""  # the answer as shown: "not one of the words" for the default model's "unknown"
    rejected: bool = False  # the answer is "none of the classes" (a reject class, or below its threshold)

    @property
    def known(self) -> bool:
        """False when the answer is "none of the known classes": no class reaches its threshold, or the top
        class is a reject class (`unknown`, `silence`)."""
        return bool(self.detected) and not self.rejected

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def score(self) -> float:
        return self.scores[0]

    @property
    def windowed(self) -> bool:
        return self.window_probs is not None

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.scores, strict=True))
