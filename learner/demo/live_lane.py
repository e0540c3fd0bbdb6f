"""The live lane: streamed windows scored in a worker process of their own, not in the server.

A streaming microphone is a chunk every 0.1 s (Gradio's audio recorder sends that often, whatever
`stream_every` says), each costing the server Gradio's share plus the model on its windows. The model's
share is moved here: `LiveLane.submit` is the `score` a `LiveStream` is given. It returns at once with a
Future, and a thread of the lane runs `score_windows` in the lanes' live worker (`Lanes.live_worker`, a
`LaneWorker` with the demo model's recipe, one thread, nice `LIVE_NICE`: below the short lane, above long
uploads). The stream's state (its buffer, windows, events) stays in the server, one per listener; only the
samples of the new windows travel, and their scores back.

So a chunk's handler never waits for the model (at most `live.WAIT_S`, to show quick scores at once): Gradio
drops a chunk that arrives while the previous one is still being handled, so a handler waiting on a busy
worker would lose audio; scores that come late are shown with the next chunk.

A model not loaded from a folder, a worker still starting, or one that failed scores in the server instead
(logged), so a stream never waits seconds for a worker to load torch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from learner.demo.lanes import Lanes, LaneWorker
from learner.demo.live import score_windows
from learner.serve.predictor import Predictor

_log = logging.getLogger(__name__)


class LiveLane:
    """`score(predictor, samples, starts, size)` → the windows' scores, computed in `worker` when it runs
    (None: always here)."""

    def __init__(self, worker: LaneWorker | None) -> None:
        self.worker = worker
        self._starting = threading.Lock()
        self.remote = self.local = 0  # chunks scored in the worker / here (tests and benches read them)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="earshot-live")

    def _model(self, predictor: Predictor) -> dict[str, Any] | None | bool:
        """None: the worker's own model; a recipe: another folder (a taught model); False: none (score
        here)."""
        recipe = Lanes.recipe(predictor)
        if recipe is None:
            return False
        if recipe["folder"] == self.worker.recipe["folder"]:
            return None
        return recipe

    def score(
        self, predictor: Predictor, samples: np.ndarray, starts: Sequence[int], size: int
    ) -> np.ndarray:
        model = self._model(predictor) if self.worker is not None else False
        if model is not False and self._running():
            try:
                probs = self.worker.call(
                    "live", samples, (list(starts), size), {"model": model}, name="a live chunk"
                )
                self.remote += 1
                return probs
            except Exception as e:  # the worker died or overran: this chunk is scored here, the next there
                _log.warning("live lane: %s; scoring in the server", e)
        self.local += 1
        return score_windows(predictor, samples, starts, size)

    def submit(self, predictor: Predictor, samples: np.ndarray, starts: Sequence[int], size: int) -> Future:
        """`score` in a thread of the lane: the caller (a chunk's handler) goes on at once."""
        return self._pool.submit(self.score, predictor, samples, starts, size)

    def _running(self) -> bool:
        """Whether the worker is up; if not, start it in the background (the stream goes on here)."""
        if self.worker.pid is not None:
            return True
        if self._starting.acquire(blocking=False):
            threading.Thread(target=self._start, daemon=True).start()
        return False

    def _start(self) -> None:
        try:
            self.worker.warm()
        finally:
            self._starting.release()

    @property
    def pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    def __repr__(self) -> str:
        return f"LiveLane(pid={self.pid}, remote={self.remote}, local={self.local}, server={os.getpid()})"
