"""Every column the scoring outputs write, typed once: the file, window, event and embedding schemas are
lists of these names (`schema`), so a column means the same in every table that has it."""

from __future__ import annotations

import pyarrow as pa

TOP_K = pa.list_(pa.struct([("label", pa.string()), ("score", pa.float32())]))
EVENTS = pa.list_(pa.struct([("label", pa.string()), ("count", pa.int32())]))

_BY_TYPE = {
    pa.string(): "path label error warning decoder path_hex backend model_id model_revision embedder "
    "earshot_version answer",
    pa.bool_(): "rejected",
    pa.float32(): "score max_score mean_score",
    pa.float64(): "duration_s start_s end_s",
    pa.int32(): "sample_rate channels n_windows",
    pa.int64(): "file_size file_mtime_ns",
    pa.timestamp("us", tz="UTC"): "scored_at embedded_at",
    TOP_K: "top_k",
    EVENTS: "events",
    pa.list_(pa.string()): "detected",
}
TYPES: dict[str, pa.DataType] = {name: t for t, names in _BY_TYPE.items() for name in names.split()}


def schema(names: str, **types: pa.DataType) -> pa.Schema:
    """The columns `names` (space-separated, in order) with their types from TYPES, or from `types` for
    the ones whose type depends on the run (an embedding's width)."""
    return pa.schema([(n, types[n] if n in types else TYPES[n]) for n in names.split()])
