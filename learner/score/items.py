"""What the scorer's decoding workers hand to the model: one `Item` per file (a clip, a whole signal to
window, or an error), and the windows asked for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.audio import ClipPipeline, WindowPlan
from learner.audio.limits import MIN_DURATION_S  # noqa: F401 (the one too-short rule lives there)
from learner.score.discover import FileRef
from learner.score.paths import clean_text, path_hex, stored_path

Window = tuple[float, float] | None  # (window s, hop s) to score every file in windows; None: only long files


@dataclass
class Item:
    """A decoded file: a prepared `clip`, or the whole `signal` when it is scored in windows, or an `error`.

    A long file comes in parts (`learner.score.streamed`): its item then holds the last samples in `signal`
    with `streamed` set, and the main process fills `scored` (window probabilities, starts in s)."""

    ref: FileRef
    error: str | None = None
    clip: np.ndarray | None = None
    signal: np.ndarray | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    decoder: str | None = None
    warning: str | None = None  # decoded, but something is off (a file cut short of what its header says)
    streamed: bool = False
    scored: tuple[np.ndarray, np.ndarray] | None = None


def error_item(ref: FileRef, reason: str) -> Item:
    return Item(ref, error=reason)


def window_plan(pipeline: ClipPipeline, window: Window) -> WindowPlan:
    return pipeline.window_plan(*(window or (None, None)))


def file_fields(it: Item) -> dict:
    """What every output row says about its file, whatever was computed from it: the file (as stored and as
    bytes), its size and time, and how it decoded (or why it did not)."""
    return dict(
        path=stored_path(it.ref.path),
        path_hex=path_hex(it.ref.path),
        file_size=it.ref.size,
        file_mtime_ns=it.ref.mtime_ns,
        error=clean_text(it.error),
        warning=clean_text(it.warning),
        duration_s=it.duration_s,
        sample_rate=it.sample_rate,
        channels=it.channels,
        decoder=it.decoder,
    )
