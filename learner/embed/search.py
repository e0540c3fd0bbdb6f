"""Search by example: a query clip (a file, optionally from `start_s` to `end_s`, or audio in memory) or a
row of the index → the nearest windows, and those hits as a manifest to label and train on.

The query is embedded by the embedder that made the index (its name is in the parquet's metadata), the way
`earshot embed` embeds one file without windows: one clip, or the mean of its windows when it is longer
than twice the clip.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from learner.embed.embedder import Embedder
from learner.embed.index import EmbeddingIndex, Hit
from learner.embed.load import load_embedder

RUN_META = "_earshot_score.json"  # written by the scorer beside the parts (learner.score.ownership)
MANIFEST_COLUMNS = ["path", "label", "start_s", "end_s", "similarity", "row"]


def index_meta(parquet: str | Path) -> dict[str, Any]:
    """What made the vectors (embedder name, dim, windows), or {} for a parquet written otherwise."""
    f = Path(parquet) / RUN_META
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def embedder_of(parquet: str | Path, **kw: Any) -> Embedder:
    """The embedder that made `parquet`, to embed queries the same way."""
    name = index_meta(parquet).get("embedder")
    if not name:
        raise ValueError(f"{parquet}: no embedder recorded (not an `earshot embed` output); query by row")
    return load_embedder(name, **kw)


def embed_query(
    embedder: Embedder,
    src: Any,
    start_s: float | None = None,
    end_s: float | None = None,
    sample_rate: int | None = None,
) -> np.ndarray:
    """One vector for a file, bytes or (rate, array) signal, cut to [start_s, end_s) when given."""
    from learner.audio.decode import decode_array

    pipe = embedder.pipeline
    if isinstance(src, tuple) and len(src) == 2:
        d = decode_array(src[1], int(src[0]), embedder.sample_rate)
    elif isinstance(src, np.ndarray):
        d = decode_array(src, sample_rate, embedder.sample_rate)
    else:
        d = pipe.decode(src)
    x = d.samples
    sr = embedder.sample_rate
    a = int(round((start_s or 0.0) * sr))
    b = x.size if end_s is None else int(round(end_s * sr))
    if not 0 <= a < b <= x.size + sr // 100:  # a rounding hair past the end is fine
        raise ValueError(
            f"start_s={start_s}, end_s={end_s}: outside the query's {d.duration_s:.2f} s (or empty)"
        )
    x = x[a:b]
    if pipe.wants_windows(x.size):
        wins, _ = pipe.windows(x, pipe.window_plan())
        return embedder.predict_waves(wins).mean(axis=0)
    return embedder.predict_waves(pipe.prepare(x)[None])[0]


def search(
    index: EmbeddingIndex,
    query: str | int | Any,
    k: int = 10,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """Hits for `query`: an int (or digits) is a row id of the index (that row itself left out), anything
    else audio to embed (`embedder`, default: the one that made the index)."""
    if isinstance(query, (int, np.integer)) or (isinstance(query, str) and query.isdigit()):
        row = int(query)
        if not Path(str(query)).exists():
            return index.hits(index.vector(row), k, exclude=row)
    embedder = embedder or embedder_of(index.parquet)
    return index.hits(embed_query(embedder, query, start_s, end_s), k)


def write_manifest(hits: list[Hit], out: str | Path, label: str = "") -> Path:
    """Hits as a CSV manifest: path,label,start_s,end_s (+ similarity, row): fill in `label` to train."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another name (nothing was overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(MANIFEST_COLUMNS)
        for h in hits:
            w.writerow([h.path, label, h.start_s, h.end_s, f"{h.similarity:.6f}", h.row])
    return out
