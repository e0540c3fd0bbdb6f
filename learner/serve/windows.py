"""The one streaming window scorer: windows of a long signal scored a model batch at a time as its samples
arrive, for `Predictor.predict` on a long file (`learner.serve.longfile`) and for the batch scorer's long
files (`learner.score.streamed`). Cut by `WindowStream` (the chunks of `Predictor.predict_windows`), so the
window probabilities equal the whole-signal path's."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from learner.audio.pipeline import ClipPipeline, WindowPlan
from learner.audio.stream import WindowStream, window_group

ScoreWaves = Callable[[np.ndarray], np.ndarray]  # (n, samples) prepared windows → (n, classes) scores


class WindowScorer:
    """Push samples, then `finish()` → (window probabilities, window starts in s). With `keep_best`, also
    keeps per class the window where it scored highest (the first such, as `argmax` picks) in `kept`
    (window index → prepared window), so a prediction can show what the model heard."""

    def __init__(
        self,
        pipeline: ClipPipeline,
        plan: WindowPlan,
        score_waves: ScoreWaves,
        chunk: int,
        batch_size: int,
        keep_best: bool = False,
    ) -> None:
        self.score_waves, self.keep_best = score_waves, keep_best
        self.stream = WindowStream(pipeline, plan, window_group(chunk, batch_size))
        self.probs: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.best_score: np.ndarray | None = None
        self.best_index: np.ndarray | None = None
        self.kept: dict[int, np.ndarray] = {}
        self.n_windows = 0

    def push(self, samples: np.ndarray) -> None:
        for wins, starts in self.stream.push(samples):
            self._score(wins, starts)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._score(*self.stream.finish())
        return np.concatenate(self.probs), np.concatenate(self.starts)

    def _score(self, wins: np.ndarray, starts: np.ndarray) -> None:
        p = self.score_waves(wins)
        self.probs.append(p)
        self.starts.append(starts)
        if self.keep_best and len(p):
            self._keep(wins, p)
        self.n_windows += len(p)

    def _keep(self, wins: np.ndarray, p: np.ndarray) -> None:
        if self.best_score is None:
            self.best_score = np.full(p.shape[1], -np.inf)
            self.best_index = np.zeros(p.shape[1], dtype=np.int64)
        at, top = p.argmax(axis=0), p.max(axis=0)
        for c in np.flatnonzero(top > self.best_score):
            self.best_score[c], self.best_index[c] = top[c], self.n_windows + at[c]
            self.kept.setdefault(int(self.best_index[c]), wins[at[c]].copy())
        wanted = set(self.best_index.tolist())
        self.kept = {k: w for k, w in self.kept.items() if k in wanted}
