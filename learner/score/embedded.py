"""Rows of the "embeddings" output kind: decoded items → one vector per file, or per window.

Without `window` a file is one row (start 0, end its duration): its clip's vector, or for a file the
pipeline windows (longer than twice the clip) the mean of its windows' vectors. With `window` every window
is a row. A file that failed is one row with its `error` and no vector. All rows of a file come from one
batch, so a part holds a file whole or not at all (`--resume` as for scores).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from learner import __version__
from learner.score.columns import schema
from learner.score.items import Item, Window, file_fields, forward_pass, window_plan


def embed_schema(dim: int) -> pa.Schema:
    return schema(
        "path start_s end_s vector error warning duration_s sample_rate channels decoder file_size "
        "file_mtime_ns path_hex embedder embedded_at earshot_version",
        vector=pa.list_(pa.float32(), dim),
    )


def _vectors_of(embedder: Any, items: list[Item], window: Window, chunk: int) -> dict[int, tuple]:
    """Item index → (vectors (k, dim), window starts s or None for a clip), one forward pass for all clips
    and short files' windows; long files' windows in chunks (or already computed while streaming)."""
    pipe = embedder.pipeline
    plan = window_plan(pipe, window)
    passed = forward_pass(embedder.predict_waves, pipe, items, window, chunk)
    out: dict[int, tuple] = {}
    for j, it in enumerate(items):
        if it.error is not None:
            continue
        if j in passed:
            out[j] = passed[j]
        elif it.scored is not None:
            out[j] = it.scored
        elif it.signal is not None:
            vs, sts = zip(*((embedder.predict_waves(w), s) for w, s in pipe.chunks(it.signal, plan, chunk)))
            out[j] = (np.concatenate(vs), np.concatenate(sts))
    return out


def embed_items(embedder: Any, items: list[Item], window: Window = None, chunk: int = 256) -> pa.Table:
    """Items → rows with `embed_schema(embedder.dim)` (both engines build embedding rows only here)."""
    embedded_at = datetime.now(UTC)
    vectors = _vectors_of(embedder, items, window, chunk)
    cols: dict[str, list] = {k: [] for k in embed_schema(embedder.dim).names}
    flat: list[np.ndarray] = []
    for j, it in enumerate(items):
        common = dict(
            file_fields(it), embedder=embedder.name, embedded_at=embedded_at, earshot_version=__version__
        )
        if j not in vectors:  # an error row: no vector
            spans = [(None, None, None)]
        else:
            vecs, starts = vectors[j]
            duration = it.duration_s or 0.0
            if window is None:
                spans = [(0.0, duration, vecs.mean(axis=0))]
            else:
                ends = np.maximum(np.minimum(starts + window[0], duration), starts)
                spans = list(zip(starts.tolist(), ends.tolist(), vecs))
        for start, end, vec in spans:
            for k, v in common.items():
                cols[k].append(v)
            cols["start_s"].append(start)
            cols["end_s"].append(end)
            flat.append(vec)
    return _table(cols, flat, embedder.dim)


def _table(cols: dict[str, list], flat: list[np.ndarray | None], dim: int) -> pa.Table:
    """The columns with `vector` as a fixed-size float32 list (nulls for error rows), built without a
    Python float per value."""
    schema = embed_schema(dim)
    valid = np.array([v is not None for v in flat], dtype=bool)
    values = np.zeros((len(flat), dim), np.float32)
    for i, v in enumerate(flat):
        if v is not None:
            values[i] = v
    mask = pa.array(~valid) if len(flat) and not valid.all() else None
    vector = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dim, mask=mask)
    arrays = [
        vector if f.name == "vector" else pa.array(cols[f.name], f.type) for f in schema if f.name in cols
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
