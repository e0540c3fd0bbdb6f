"""One file → an `Item` ready for the model, and items → rows: the steps both scoring engines share.

`load_item` runs in decoding processes (local pool or Ray actors) and needs only the model's `ClipPipeline`;
`score_items` runs the Predictor and is the one place rows are built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from learner import __version__
from learner.audio import SCORE_MAX_BYTES, SCORE_MAX_S, AudioDecodeError, ClipPipeline
from learner.audio.limits import too_short
from learner.audio.stream import StreamSizes
from learner.score.columns import schema
from learner.score.discover import FileRef
from learner.score.items import (  # noqa: F401 (re-exported)
    MIN_DURATION_S,
    Item,
    Window,
    error_item,
    file_fields,
    forward_pass,
    item_cost,
    window_plan,
)
from learner.serve.events import EventRule, class_thresholds
from learner.serve.predictor import Predictor


def backend_name(predictor: Predictor) -> str | None:
    return getattr(predictor.backend, "name", None)


FILE_SCHEMA = schema(
    "path label score top_k duration_s sample_rate channels n_windows events error decoder file_size "
    "file_mtime_ns model_id model_revision scored_at backend earshot_version path_hex warning detected "
    "answer rejected"
)
WIDE_PREFIX = "score_"  # `--wide`: one column per class, `score_<class>`, its probability


def pandas_ints(schema: pa.Schema) -> pa.Schema:
    """`schema` with the pandas metadata that makes `pd.read_parquet` give integer columns holding nulls
    (error rows) as nullable integers (Int32 / Int64), not float64."""
    import json

    columns = [
        {
            "name": f.name,
            "field_name": f.name,
            "pandas_type": str(f.type),
            "numpy_type": {pa.int32(): "Int32", pa.int64(): "Int64"}.get(f.type, "object"),
            "metadata": None,
        }
        for f in schema
        if f.type in (pa.int32(), pa.int64())
    ]
    meta = {"index_columns": [], "column_indexes": [], "columns": columns, "pandas_version": "2.0.0"}
    return schema.with_metadata({b"pandas": json.dumps(meta).encode()})


def file_schema(classes: list[str] | None = None) -> pa.Schema:
    """The file rows' schema; with `classes` (`--wide`) one float column per class after the others."""
    wide = [(f"{WIDE_PREFIX}{c}", pa.float32()) for c in classes or []]
    taken = set(FILE_SCHEMA.names) & {n for n, _ in wide}
    if taken:
        raise ValueError(f"wide=True: class column {sorted(taken)[0]!r} clashes with a column of its own")
    return pandas_ints(pa.schema([*FILE_SCHEMA, *wide]))


WINDOW_SCHEMA = schema("path start_s end_s label score")
EVENT_SCHEMA = schema("path label start_s end_s max_score mean_score")


def load_item(
    ref: FileRef,
    pipeline: ClipPipeline,
    window: Window,
    min_duration_s: float = MIN_DURATION_S,
    sizes: StreamSizes | None = None,
    *,
    emit: Callable[[Any], None] | None = None,
) -> Item:
    """Decode and prepare one file; never raises (whatever happens becomes the item's `error`). Files
    holding less than `min_duration_s` of audio are errors ("too short to classify").

    With `window` every file is kept whole for windows; without, only files the pipeline would window
    (longer than twice the clip), exactly like `Predictor.predict(window="auto")`. With `emit` (a decoding
    process of `DecodePool(stream=True)`) a long file goes out in parts (`learner.score.streamed`)."""
    try:
        if emit is not None:
            from learner.score.streamed import decode_in_parts

            d, streamed = decode_in_parts(ref, pipeline, window, sizes or StreamSizes(), emit)
        else:
            d, streamed = (
                pipeline.decode(ref.path, max_duration_s=SCORE_MAX_S, max_bytes=SCORE_MAX_BYTES),
                False,
            )
    except AudioDecodeError as e:
        return Item(ref, error=e.reason)
    # the decoders promise AudioDecodeError; a scorer of millions of files double-checks
    except Exception as e:
        return Item(ref, error=f"{type(e).__name__}: {e}")
    item = Item(
        ref,
        duration_s=d.duration_s,
        sample_rate=d.orig_sample_rate,
        channels=d.channels,
        decoder=d.decoder,
        warning=d.warning,
        streamed=streamed,
    )
    if reason := too_short(d.duration_s, min_duration_s):
        item.error = reason
        return item
    if streamed or pipeline.wants_windows(d.samples.size, forced=window is not None):
        item.signal = d.samples
    else:
        item.clip = pipeline.prepare(d.samples)
    return item


def count_events(
    top: np.ndarray, score: np.ndarray, n_classes: int, threshold: float | np.ndarray
) -> np.ndarray:
    """Events per class: runs of consecutive windows whose top class is that class with score ≥ threshold
    (one value, or one per class; one call spanning overlapping windows counts once)."""
    counts = np.zeros(n_classes, dtype=np.int64)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_classes,))
    prev = -1
    for c, s in zip(top.tolist(), score.tolist()):
        cur = c if s >= thr[c] else -1
        if cur >= 0 and cur != prev:
            counts[cur] += 1
        prev = cur
    return counts


def score_items(
    predictor: Predictor,
    items: list[Item],
    *,
    window: Window = None,
    top_k: int = 5,
    threshold: float | dict[str, float] | None = None,
    events: EventRule | None = None,
    scored_at: datetime | None = None,
    chunk: int = 256,
    wide: bool = False,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Items → (file rows, window rows, event rows) with FILE_SCHEMA / WINDOW_SCHEMA / EVENT_SCHEMA. Both
    engines build rows only here. `threshold` (one value or per class) overrides the model's thresholds
    (config.json, default 0.5) for event counts and events; `events` sets the gap and minimum length.
    `detected` lists the labels at or above the model's thresholds; `wide` adds `score_<class>` columns."""
    scored_at = scored_at or datetime.now(UTC)
    out = _Rows(predictor, window, threshold, replace(events or EventRule(), thresholds=threshold))
    scored = _batched_scores(predictor, items, window, chunk)
    for j, it in enumerate(items):
        row = _file_row(predictor, it, scored_at)
        if it.error is None:
            if it.clip is not None:
                probs, n_win = scored[j], 1
            else:
                wp, starts = (
                    scored.get(j) or it.scored or predictor.predict_windows(it.signal, out.plan, chunk)
                )
                probs, n_win = wp.mean(axis=0), len(wp)
                if window is not None:
                    out.add_windows(row, it, wp, starts)
            order = predictor.pipeline.top_k(probs, top_k)
            classes = predictor.classes
            row.update(
                label=classes[order[0]],
                score=float(probs[order[0]]),
                n_windows=n_win,
                top_k=[{"label": classes[i], "score": float(probs[i])} for i in order.tolist()],
                detected=predictor.detect(probs),
            )
            row["answer"], row["rejected"] = predictor.answer(probs)  # "not one of the words" (serve.reject)
            if wide:
                row.update(zip([f"{WIDE_PREFIX}{c}" for c in classes], probs.tolist()))
        out.files.append(row)
    return (
        pa.Table.from_pylist(out.files, schema=file_schema(predictor.classes if wide else None)),
        pa.table(out.windows, schema=WINDOW_SCHEMA),
        pa.Table.from_pylist(out.events, schema=EVENT_SCHEMA),
    )


def _batched_scores(predictor: Predictor, items: list[Item], window: Window, chunk: int) -> dict[int, Any]:
    """One forward pass for the clips and short files' windows: item index → its clip's scores, or (window
    scores, window starts). Long files' windows go in chunks (`score_items`)."""
    passed = forward_pass(predictor.predict_waves, predictor.pipeline, items, window, chunk)
    return {j: out[0] if starts is None else (out, starts) for j, (out, starts) in passed.items()}


def _file_row(predictor: Predictor, it: Item, scored_at: datetime) -> dict[str, Any]:
    """What a file's row says whatever its scores: the file, how it decoded, which model scored it."""
    return dict(
        file_fields(it),
        model_id=predictor.model_id,
        model_revision=predictor.revision or None,
        scored_at=scored_at,
        backend=backend_name(predictor),
        earshot_version=__version__,
    )


class _Rows:
    """The rows of one batch: files, windows (column lists) and events."""

    def __init__(self, predictor: Predictor, window: Window, threshold: Any, rule: EventRule) -> None:
        self.predictor, self.window, self.rule = predictor, window, rule
        self.thr = class_thresholds(predictor.classes, predictor.config, threshold)
        self.plan = window_plan(predictor.pipeline, window)
        self.files: list[dict[str, Any]] = []
        self.windows: dict[str, list] = {k: [] for k in WINDOW_SCHEMA.names}
        self.events: list[dict[str, Any]] = []

    def add_windows(self, row: dict[str, Any], it: Item, wp: np.ndarray, starts: np.ndarray) -> None:
        """A file's window rows, its per-class event counts (in `row`) and its events."""
        classes, win_s = self.predictor.classes, self.window[0]
        top, top_s = wp.argmax(axis=1), wp.max(axis=1)
        ends = np.minimum(starts + win_s, it.duration_s or 0.0)
        w = self.windows
        w["path"] += [row["path"]] * len(wp)
        w["start_s"] += starts.tolist()
        w["end_s"] += np.maximum(ends, starts).tolist()
        w["label"] += [classes[i] for i in top.tolist()]
        w["score"] += top_s.tolist()
        counts = count_events(top, top_s, len(classes), self.thr)
        row["events"] = [{"label": c, "count": int(n)} for c, n in zip(classes, counts.tolist())]
        found = self.predictor.events(starts, wp, win_s, self.rule, it.duration_s, row["path"])
        self.events += [e.as_dict() for e in found]
