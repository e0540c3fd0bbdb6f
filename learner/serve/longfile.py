"""`Predictor.predict` on a long file in bounded memory: decoded, resampled and windowed block by block.

Whole, a 3-hour file costs gigabytes (its samples at the file's rate, resampled, then every window twice).
Here `stream_decode` hands blocks at the model's rate to `WindowStream` (the chunks of
`Predictor.predict_windows`), each chunk is scored as it is complete, and only the window where each class
scored highest so far is kept (the prediction's `clip` is one of them). The result equals the whole-file
path's; a file that is not long (up to `stream_threshold` samples at the model's rate) takes the whole-file
path on its decoded samples.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from learner.audio.pipeline import WindowPlan
from learner.audio.stream import StreamSizes, WindowStream, stream_decode, stream_threshold, window_group
from learner.serve.events import EventRule

if TYPE_CHECKING:
    from learner.audio.decode import Source
    from learner.serve.predictor import Prediction, Predictor


class _Windows:
    """Sink of `stream_decode`: holds samples while the file may be short, then scores chunk by chunk and
    keeps, per class, the window where it scored highest (the first such, as `argmax` picks)."""

    def __init__(self, predictor: Predictor, plan: WindowPlan, threshold: int, chunk: int) -> None:
        self.predictor, self.plan, self.threshold, self.chunk = predictor, plan, threshold, chunk
        self.held: list[np.ndarray] | None = []
        self.n_held = 0
        self.stream: WindowStream | None = None
        self.probs: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        n_classes = len(predictor.classes)
        self.best_score = np.full(n_classes, -np.inf)
        self.best_index = np.zeros(n_classes, dtype=np.int64)
        self.kept: dict[int, np.ndarray] = {}  # window index → prepared window (one per class at most)
        self.n_windows = 0

    def __call__(self, x: np.ndarray) -> None:
        if self.stream is None:
            self.held.append(x)
            self.n_held += x.size
            if self.n_held <= self.threshold:
                return
            self.stream = WindowStream(
                self.predictor.pipeline, self.plan, window_group(self.chunk, self.predictor.batch_size)
            )
            held, self.held = self.held, None
            while held:  # piece by piece: never all that was held in one more copy
                self._push(held.pop(0))
            return
        self._push(x)

    def _push(self, x: np.ndarray) -> None:
        for wins, starts in self.stream.push(x):
            self._score(wins, starts)

    def whole(self) -> np.ndarray:
        """Everything decoded, when it never passed the threshold."""
        return np.concatenate(self.held) if self.held else np.zeros(0, np.float32)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._score(*self.stream.finish())
        return np.concatenate(self.probs), np.concatenate(self.starts)

    def _score(self, wins: np.ndarray, starts: np.ndarray) -> None:
        p = self.predictor.predict_waves(wins)
        self.probs.append(p)
        self.starts.append(starts)
        at, top = p.argmax(axis=0), p.max(axis=0)
        for c in np.flatnonzero(top > self.best_score):
            self.best_score[c], self.best_index[c] = top[c], self.n_windows + at[c]
            self.kept.setdefault(int(self.best_index[c]), wins[at[c]].copy())
        wanted = set(self.best_index.tolist())
        self.kept = {k: w for k, w in self.kept.items() if k in wanted}
        self.n_windows += len(p)


def predict_long(
    predictor: Predictor,
    src: Source,
    top_k: int,
    window: str | float,
    hop: float | None,
    max_duration_s: float | None,
    max_bytes: int | None,
    events: EventRule | None,
    sizes: StreamSizes = StreamSizes(),
) -> Prediction:
    """The prediction for a file (path or bytes): decoded block by block at the model's rate, so even a file
    short in seconds but high in rate × channels never sits whole in memory at its own rate."""
    pipe, sr = predictor.pipeline, predictor.cfg.sample_rate
    plan = pipe.window_plan(None if window == "auto" else float(window), hop)
    threshold = stream_threshold(pipe, plan, sizes.chunk)
    sink = _Windows(predictor, plan, threshold, sizes.chunk)
    d = stream_decode(src, sr, sink, max_duration_s=max_duration_s, max_bytes=max_bytes, block=sizes.block)
    path = str(src) if isinstance(src, (str, Path)) else ""
    if sink.stream is None:
        return predictor.predict_decoded(replace(d, samples=sink.whole()), top_k, window, hop, events, path)
    wp, starts = sink.finish()
    return predictor.windowed(d, plan, wp, starts, sink.kept.__getitem__, top_k, events, path)
