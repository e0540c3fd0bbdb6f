"""Long files through the scorer in bounded memory, with the rows of the whole-file path.

A decoding process (`DecodePool(stream=True)`) decodes with `learner.audio.stream.stream_decode`: it holds
the samples while the file could still be a short one (up to `stream_threshold`: exactly the files the
whole-file path scores in one go), then sends them to the main process in `Part`s as they come. The main
process (`StreamedFiles`) cuts each file's windows as its parts arrive (`WindowStream`: the chunks of
`Predictor.predict_windows`), scores them, and hands on the file's last item with its window
probabilities in `scored`; its rows (file, windows, events) are then built by `score_items` like any
other, all at once, so a file is committed whole or not at all (resume as before). A decoding error or a
time-out part way drops what was scored of the file and gives its error row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from learner.audio import SCORE_MAX_BYTES, SCORE_MAX_S, ClipPipeline, Decoded
from learner.audio.stream import StreamSizes, stream_decode, stream_threshold
from learner.score.discover import FileRef
from learner.score.items import Item, Window, window_plan
from learner.serve.predictor import Predictor
from learner.serve.windows import WindowScorer


@dataclass
class Part:
    """Consecutive samples (model rate) of the long file at `path`, in order."""

    path: str
    samples: np.ndarray


def decode_in_parts(
    ref: FileRef, pipeline: ClipPipeline, window: Window, sizes: StreamSizes, emit: Callable[[Part], None]
) -> tuple[Decoded, bool]:
    """Decode `ref` at the model's rate; past `stream_threshold` samples send them on as `Part`s.

    Returns (the `Decoded` with the samples not sent, whether any part was sent)."""
    threshold = stream_threshold(pipeline, window_plan(pipeline, window), sizes.chunk)
    held: list[np.ndarray] = []
    state = {"held": 0, "sent": False}

    def on_samples(x: np.ndarray) -> None:
        held.append(x)
        state["held"] += x.size
        if state["held"] <= (sizes.part if state["sent"] else threshold):
            return
        # parts of about `sizes.part` samples (never all that was held in one copy)
        group: list[np.ndarray] = []
        for i, y in enumerate(held):
            group.append(y)
            if sum(g.size for g in group) >= sizes.part or i == len(held) - 1:
                emit(Part(ref.path, np.concatenate(group)))
                group = []
        held.clear()
        state["held"], state["sent"] = 0, True

    d = stream_decode(
        ref.path,
        pipeline.cfg.sample_rate,
        on_samples,
        max_duration_s=SCORE_MAX_S,
        max_bytes=SCORE_MAX_BYTES,
        block=sizes.block,
    )
    rest = np.concatenate(held) if len(held) > 1 else held[0] if held else np.zeros(0, np.float32)
    return replace(d, samples=rest), state["sent"]


def _scorer(predictor: Predictor, window: Window, chunk: int) -> WindowScorer:
    """One long file in the main process: its windows scored chunk by chunk as its parts arrive."""
    plan = window_plan(predictor.pipeline, window)
    return WindowScorer(predictor.pipeline, plan, predictor.predict_waves, chunk, predictor.batch_size)


class StreamedFiles:
    """Between the decoding pool and the batches: scores the parts of long files as they come and yields
    only whole items (a long file's with `scored` filled, ready for `score_items`)."""

    def __init__(self, predictor: Predictor, window: Window, chunk: int = StreamSizes.chunk) -> None:
        self.predictor, self.window, self.chunk = predictor, window, chunk
        self.open: dict[str, WindowScorer] = {}

    def items(self, results: Iterator[Item | Part]) -> Iterator[Item | None]:
        """Whole items; None after each part of a long file (a tick: what waits for the output may be
        committed while the file streams, which can take minutes)."""
        for r in results:
            if isinstance(r, Part):
                if r.path not in self.open:
                    self.open[r.path] = _scorer(self.predictor, self.window, self.chunk)
                self.open[r.path].push(r.samples)
                yield None
                continue
            scoring = self.open.pop(r.ref.path, None)  # an error part way (decoder, time-out) drops it
            if r.streamed and r.error is None:
                scoring = scoring or _scorer(self.predictor, self.window, self.chunk)
                scoring.push(r.signal if r.signal is not None else np.zeros(0, np.float32))
                r.scored, r.signal = scoring.finish(), None
            yield r
