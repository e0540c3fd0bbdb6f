"""What the scorer's decoding workers hand to the model: one `Item` per file (a clip, a whole signal to
window, or an error), and the windows asked for."""

from __future__ import annotations

from collections.abc import Callable
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


def item_cost(item: Item, pipeline: ClipPipeline, window: Window) -> int:
    """Model inputs an item will need (clips count 1, windowed files their window count)."""
    if item.clip is not None:
        return 1
    if item.scored is not None:
        return len(item.scored[1])
    if item.signal is None:
        return 0
    return window_plan(pipeline, window).count(item.signal.size)


def forward_pass(
    score_waves: Callable[[np.ndarray], np.ndarray],
    pipeline: ClipPipeline,
    items: list[Item],
    window: Window,
    chunk: int,
) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """One model call for every clip and every short file's windows (a long file's, over `chunk` windows,
    are the caller's to do in chunks): item index → (outputs (k, ...), window starts in s; None: a clip)."""
    plan = window_plan(pipeline, window)
    inputs, spans, starts_of, offset = [], {}, {}, 0
    for j, it in enumerate(items):
        if it.error is not None:
            continue
        if it.clip is not None:
            inputs.append(it.clip[None])
            starts_of[j] = None
        elif it.signal is not None and item_cost(it, pipeline, window) <= chunk:
            wins, starts_of[j] = pipeline.windows(it.signal, plan)
            inputs.append(wins)
        else:
            continue
        spans[j] = (offset, len(inputs[-1]))
        offset += len(inputs[-1])
    if not inputs:
        return {}
    out = score_waves(np.concatenate(inputs))
    return {j: (out[a : a + n], starts_of[j]) for j, (a, n) in spans.items()}
