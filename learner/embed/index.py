"""Nearest windows by cosine similarity over an embeddings parquet (`earshot embed`'s output).

Small indexes are searched exactly (NumPy: one matrix-vector product over unit vectors). Past
`EXACT_MAX` rows an approximate index (faiss IVF, vectors as 8-bit scalar codes: chosen by bench/search.py
against usearch, hnswlib and faiss HNSW, which reach the same recall but build 3-7x slower on one core in
3-4x the memory) is built once and stored next to the parquet, in
`OUT.index/` (`emb.parquet` → `emb.index/`), with the fingerprint of the parts it was built from
(names, sizes, mtimes): when the parquet changes (a resumed run added parts) it is rebuilt, never mixed.
Row ids are positions in the parquet read in part order, error rows (no vector) left out: the same ids
whichever way the index is searched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

EXACT_MAX = 50_000  # rows searched exactly; above, the stored approximate index (bench/RESULTS.md)
# inverted lists: 2·√n of them (k-means on 32 vectors a list), `nprobe` lists scanned per query
IVF = {"lists_per_sqrt_n": 2, "train_per_list": 32, "nprobe": 32, "codes": "SQ8"}
INDEX_FILE, INDEX_META, ROWS_FILE = "ivf.faiss", "index.json", "rows.parquet"
META_COLUMNS = ["path", "start_s", "end_s"]


def parts_of(parquet: str | Path) -> list[Path]:
    """The parquet files of an embeddings output: a folder of parts (sorted) or one file."""
    p = Path(parquet)
    if p.is_dir():
        parts = sorted(f for f in p.glob("*.parquet") if not f.name.startswith((".", "_")))
        if not parts:
            raise FileNotFoundError(f"{p}: no parquet parts (not an `earshot embed` output?)")
        return parts
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such embeddings parquet")
    return [p]


def index_folder(parquet: str | Path) -> Path:
    p = Path(parquet)
    return p.with_name(f"{p.stem if p.suffix == '.parquet' else p.name}.index")


def fingerprint(parquet: str | Path) -> str:
    """What the index was built from: every part's name, size and mtime."""
    h = hashlib.sha256()
    for f in parts_of(parquet):
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read(parquet: str | Path, columns: list[str]) -> pa.Table:
    tables = []
    for f in parts_of(parquet):
        t = pq.read_table(f, columns=[*columns, "vector"] if "vector" not in columns else columns)
        tables.append(t.filter(pc.is_valid(t["vector"])))  # error rows carry no vector
    return pa.concat_tables(tables)


def _blocks(parquet: str | Path, rows: int = 65536):
    """(path/time rows, unit vectors) of the rows that have a vector, a row group at a time (`iter_batches`
    read ahead: 2.9 GB for a 2 GB parquet, against 0.7 GB this way)."""
    for f in parts_of(parquet):
        pf = pq.ParquetFile(f)
        for i in range(pf.metadata.num_row_groups):
            group = pf.read_row_group(i, columns=[*META_COLUMNS, "vector"])
            for lo in range(0, group.num_rows, rows):
                t = group.slice(lo, rows)
                t = t.filter(pc.is_valid(t["vector"]))
                if t.num_rows:
                    yield t.select(META_COLUMNS), vectors_of(t)
            del group


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def vectors_of(table: pa.Table) -> np.ndarray:
    """The `vector` column (fixed-size float32 list) as an (n, dim) array, unit length, without copies
    per row."""
    col = table["vector"].combine_chunks()
    dim = col.type.list_size
    return unit_rows(col.values.to_numpy(zero_copy_only=False).reshape(-1, dim))


def write_vectors(path: str | Path, vectors: np.ndarray, paths: list[str] | None = None) -> Path:
    """A parquet of the embeddings schema's core columns (benchmarks and tests: no audio needed)."""
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
    t = pa.table(
        {
            "path": paths or [f"v{i:07d}.wav" for i in range(n)],
            "start_s": np.zeros(n),
            "end_s": np.ones(n),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            "error": pa.nulls(n, pa.string()),
        }
    )
    pq.write_table(t, path, row_group_size=65536)
    return Path(path)


def _ivf(dim: int, n: int) -> Any:
    import faiss

    lists = int(np.clip(IVF["lists_per_sqrt_n"] * np.sqrt(n), 16, 65536))
    return faiss.index_factory(dim, f"IVF{lists},{IVF['codes']}", faiss.METRIC_INNER_PRODUCT)


def _build(parquet: Path, dim: int, folder: Path, stamp: dict[str, Any]) -> None:
    """Two passes over the parts, a block at a time (never every float32 vector at once): a strided sample
    trains the lists, then every vector is added. The folder appears whole (temp folder, then rename), with
    the rows' path and times beside the index."""
    import faiss

    n = sum(pq.ParquetFile(f).metadata.num_rows for f in parts_of(parquet))
    log.info("building the search index of %d rows in %s (once)", n, folder)
    index = _ivf(dim, n)
    stride = max(1, n // (IVF["train_per_list"] * index.nlist))
    # copies: a strided view would keep every block's vectors alive (4.8 GB peak at 10^6 instead of ~1)
    index.train(np.concatenate([v[::stride].copy() for _, v in _blocks(parquet)]))
    rows = []
    for meta, vectors in _blocks(parquet):
        index.add(vectors)
        rows.append(meta)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    faiss.write_index(index, str(tmp / INDEX_FILE))
    pq.write_table(pa.concat_tables(rows), tmp / ROWS_FILE)
    (tmp / INDEX_META).write_text(json.dumps(stamp, indent=2, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


@dataclass
class Hit:
    row: int
    similarity: float
    path: str
    start_s: float | None
    end_s: float | None


class EmbeddingIndex:
    """`EmbeddingIndex.open(parquet)`, then `search(vector, k)` → (row ids, similarities) best first,
    and `hits(...)` with each hit's path and times."""

    def __init__(self, parquet: Path, meta: pa.Table, dim: int, method: str) -> None:
        self.parquet, self.meta, self.dim, self.method = parquet, meta, dim, method
        self._matrix: np.ndarray | None = None
        self._ann: Any = None

    def __len__(self) -> int:
        return self.meta.num_rows

    @classmethod
    def open(cls, parquet: str | Path, exact_max: int = EXACT_MAX) -> EmbeddingIndex:
        """Exact when the parquet holds at most `exact_max` rows; else the stored approximate index (built
        now if missing or made from other parts)."""
        parquet = Path(parquet)
        parts = parts_of(parquet)
        dim = pq.read_schema(parts[0]).field("vector").type.list_size
        if sum(pq.ParquetFile(f).metadata.num_rows for f in parts) <= exact_max:
            t = _read(parquet, META_COLUMNS)
            index = cls(parquet, t.drop_columns(["vector"]), dim, "exact")
            index._matrix = vectors_of(t)
            return index
        stamp = {"fingerprint": fingerprint(parquet), "dim": dim, **IVF}
        folder = index_folder(parquet)
        meta_path = folder / INDEX_META
        if not (meta_path.is_file() and json.loads(meta_path.read_text()) == stamp):
            _build(parquet, dim, folder, stamp)
        import faiss

        index = cls(parquet, pq.read_table(folder / ROWS_FILE), dim, "ivf")
        index._ann = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP)  # lists stay on disk
        index._ann.nprobe = IVF["nprobe"]
        return index

    def index_bytes(self) -> int:
        f = index_folder(self.parquet) / INDEX_FILE
        return f.stat().st_size if self.method == "ivf" and f.is_file() else 0

    def vector(self, row: int) -> np.ndarray:
        """The stored (unit) vector of a row id: a query by example from the index itself."""
        if not 0 <= row < len(self):
            raise ValueError(f"row {row} is not in {self.parquet} (rows 0 to {len(self) - 1})")
        if self._matrix is not None:
            return self._matrix[row]
        if not self._ann.direct_map.type:  # the first query by row: where each id sits in the lists
            self._ann.make_direct_map()
        return unit_rows(self._ann.reconstruct(row))

    def search(self, query: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, cosine similarities) of the `k` nearest rows, best first."""
        q = unit_rows(np.asarray(query, np.float32).reshape(-1))
        if q.size != self.dim:
            raise ValueError(f"query has {q.size} values, the index {self.dim} (another embedder?)")
        k = max(1, min(int(k), len(self)))
        if self._matrix is not None:
            sims = self._matrix @ q
            top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
            top = top[np.argsort(-sims[top], kind="stable")]
            return top, sims[top]
        sims, rows = self._ann.search(q[None], k)
        keep = rows[0] >= 0  # fewer than k vectors in the lists scanned
        return rows[0][keep].astype(np.int64), sims[0][keep]

    def hits(self, query: np.ndarray, k: int = 10, exclude: int | None = None) -> list[Hit]:
        """The nearest rows with their path and times (`exclude`: the query's own row)."""
        rows, sims = self.search(query, k + (exclude is not None))
        out = []
        for r, s in zip(rows.tolist(), sims.tolist()):
            if r == exclude or r < 0:
                continue
            m = self.meta.slice(r, 1).to_pylist()[0]
            out.append(Hit(r, float(s), m["path"], m["start_s"], m["end_s"]))
        return out[:k]
