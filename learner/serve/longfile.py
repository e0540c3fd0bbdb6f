"""`Predictor.predict` on a long file in bounded memory: decoded, resampled and windowed block by block.

Whole, a 3-hour file costs gigabytes (its samples at the file's rate, resampled, then every window twice).
Here `stream_decode` hands blocks at the model's rate to the one streaming window scorer
(`learner.serve.windows.WindowScorer`), and only the window where each class scored highest so far is kept
(the prediction's `clip` is one of them). The result equals the whole-file path's; a file that is not long
(up to `stream_threshold` samples at the model's rate) comes back decoded whole, for the whole-file path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from learner.audio.decode import Decoded, Source
from learner.audio.pipeline import ClipPipeline, WindowPlan
from learner.audio.stream import StreamSizes, stream_decode, stream_threshold
from learner.serve.windows import ScoreWaves, WindowScorer

Scored = tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]  # window probs, starts (s), kept windows


class _Windows:
    """Sink of `stream_decode`: holds samples while the file may be short, then scores them as they come."""

    def __init__(self, threshold: int, make_scorer: Callable[[], WindowScorer]) -> None:
        self.threshold, self.make_scorer = threshold, make_scorer
        self.held: list[np.ndarray] | None = []
        self.n_held = 0
        self.scorer: WindowScorer | None = None

    def __call__(self, x: np.ndarray) -> None:
        if self.scorer is not None:
            self.scorer.push(x)
            return
        self.held.append(x)
        self.n_held += x.size
        if self.n_held <= self.threshold:
            return
        self.scorer = self.make_scorer()
        held, self.held = self.held, None
        while held:  # piece by piece: never all that was held in one more copy
            self.scorer.push(held.pop(0))

    def whole(self) -> np.ndarray:
        """Everything decoded, when it never passed the threshold."""
        return np.concatenate(self.held) if self.held else np.zeros(0, np.float32)


def stream_windows(
    pipeline: ClipPipeline,
    score_waves: ScoreWaves,
    src: Source,
    plan: WindowPlan,
    max_duration_s: float | None,
    max_bytes: int | None,
    batch_size: int,
    sizes: StreamSizes = StreamSizes(),
) -> tuple[Decoded, Scored | None]:
    """Decode `src` block by block at the model's rate. A long file is scored in `plan`'s windows as it is
    decoded: (its `Decoded` without samples, (window probs, starts, kept windows)); a short one comes back
    whole: (its `Decoded`, None). Even a file short in seconds but high in rate × channels never sits whole
    in memory at its own rate."""
    threshold = stream_threshold(pipeline, plan, sizes.chunk)

    def make_scorer() -> WindowScorer:
        return WindowScorer(pipeline, plan, score_waves, sizes.chunk, batch_size, keep_best=True)

    sink = _Windows(threshold, make_scorer)
    sr = pipeline.cfg.sample_rate
    d = stream_decode(src, sr, sink, max_duration_s=max_duration_s, max_bytes=max_bytes, block=sizes.block)
    if sink.scorer is None:
        return replace(d, samples=sink.whole()), None
    probs, starts = sink.scorer.finish()
    return d, (probs, starts, sink.scorer.kept)
