"""Search cost: latency on one core, recall@10 against exact search, build time and memory of the index.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/search.py libs [--n 100000]
    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/search.py index [--sizes 10000,100000,1000000]
    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/search.py build WORK/v1000000.parquet

The vectors are random but clustered, as embeddings are: 1,000 centres in 512-d, each cluster spread along
its own random 16-d subspace plus a little isotropic noise (real embeddings have low intrinsic dimension;
isotropic 512-d noise has none of the structure an approximate index relies on, and no embedder makes it).
Queries are 200 fresh draws of the same mixture. Recall@10 = share of the exact top 10 (NumPy, cosine) an
index returns. `libs` compares usearch, faiss (HNSW and IVF) and hnswlib on the same data; `index` measures
earshot's own `EmbeddingIndex` (the library and settings chosen from `libs`), whose size threshold decides
exact or approximate. Each measurement runs in its own child process (peak RSS is the child's).
`libs` needs the libraries compared: `.venv/bin/pip install usearch hnswlib` (faiss-cpu is in
requirements.txt); a library that is not installed is reported as an error line and skipped.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit import parser  # first: it puts the checkout on the import path

DIM, CENTRES, RANK, QUERIES, K = 512, 1000, 16, 200, 10


def clustered(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """n unit vectors of the mixture above, made in blocks (10^6 × 512 float32 = 2 GB, made once)."""
    rng = np.random.default_rng(1234)  # the mixture is the same for every call; `seed` draws the points
    centres = rng.standard_normal((CENTRES, dim)).astype(np.float32)
    bases = (rng.standard_normal((CENTRES, RANK, dim)) * (0.6 / np.sqrt(RANK))).astype(np.float32)
    draw = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for a in range(0, n, 50_000):
        b = min(n, a + 50_000)
        c = draw.integers(0, CENTRES, b - a)
        z = draw.standard_normal((b - a, RANK)).astype(np.float32)
        x = centres[c]
        order = np.argsort(c, kind="stable")  # each cluster's own subspace, never a (block, rank, dim) array
        bounds = np.searchsorted(c[order], np.arange(CENTRES + 1))
        for k in range(CENTRES):
            rows = order[bounds[k] : bounds[k + 1]]
            if rows.size:
                x[rows] += z[rows] @ bases[k]
        x += 0.05 * draw.standard_normal(x.shape).astype(np.float32)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    sims = queries @ data.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
    return np.take_along_axis(top, order, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    """Resident memory now (what an index adds: the difference before and after building it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _lib_usearch(data, queries, dtype="f16", m=16, ef_add=128, ef=64):
    from usearch.index import Index

    t0 = time.process_time()
    idx = Index(ndim=data.shape[1], metric="cos", dtype=dtype, connectivity=m, expansion_add=ef_add)
    idx.add(np.arange(len(data)), data, threads=1)
    build = time.process_time() - t0
    idx.expansion_search = ef
    return build, lambda q: idx.search(q, K, threads=1).keys


def _lib_hnswlib(data, queries, m=16, ef_add=128, ef=64):
    import hnswlib

    t0 = time.process_time()
    idx = hnswlib.Index(space="ip", dim=data.shape[1])
    idx.init_index(max_elements=len(data), M=m, ef_construction=ef_add)
    idx.set_num_threads(1)
    idx.add_items(data, np.arange(len(data)))
    build = time.process_time() - t0
    idx.set_ef(ef)
    return build, lambda q: idx.knn_query(q, K)[0]


def _lib_faiss_ivf(data, queries, nlist=None, nprobe=16, sq=True):
    import faiss

    faiss.omp_set_num_threads(1)
    nlist = nlist or int(4 * np.sqrt(len(data)))
    t0 = time.process_time()
    quant = faiss.IndexFlatIP(data.shape[1])
    if sq:
        idx = faiss.IndexIVFScalarQuantizer(
            quant, data.shape[1], nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    else:
        idx = faiss.IndexIVFFlat(quant, data.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    idx.train(data[rng.choice(len(data), min(len(data), 64 * nlist), replace=False)])
    idx.add(data)
    build = time.process_time() - t0
    idx.nprobe = nprobe
    return build, lambda q: idx.search(q, K)[1]


def _lib_faiss_hnsw(data, queries, m=16, ef_add=128, ef=64):
    import faiss

    faiss.omp_set_num_threads(1)
    t0 = time.process_time()
    idx = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = ef_add
    idx.add(data)
    build = time.process_time() - t0
    idx.hnsw.efSearch = ef
    return build, lambda q: idx.search(q, K)[1]


LIBS = {
    "usearch-f16": lambda d, q: _lib_usearch(d, q, "f16"),
    "usearch-i8": lambda d, q: _lib_usearch(d, q, "i8"),
    "hnswlib": _lib_hnswlib,
    "faiss-hnsw": _lib_faiss_hnsw,
    "faiss-ivf-sq8": _lib_faiss_ivf,
}


def _timed_queries(search, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    found, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(np.asarray(search(q[None])).reshape(-1)[:K])
        ms.append(1000 * (time.perf_counter() - t0))
    return np.stack(found), ms


def one_lib(name: str, n: int) -> dict:
    data, queries = clustered(n), clustered(QUERIES, seed=99)
    truth = exact_top(data, queries)
    base = current_mb()
    build, search = LIBS[name](data, queries)
    found, ms = _timed_queries(search, queries)
    return {
        "lib": name,
        "n": n,
        "build_cpu_s": round(build, 1),
        "recall@10": round(recall(found, truth), 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "index_rss_mb": round(current_mb() - base),
        "peak_rss_mb": round(rss_mb()),
    }


def one_index(n: int, work: Path) -> dict:
    """earshot's EmbeddingIndex over a parquet of n vectors: build (once), reload, query."""
    from learner.embed.index import EmbeddingIndex, write_vectors

    data, queries = clustered(n), clustered(QUERIES, seed=99)
    truth = exact_top(data, queries)
    pq_path = work / f"v{n}.parquet"
    write_vectors(pq_path, data)
    exact_ms = []
    for q in queries[:50]:  # what exact NumPy search would cost at this size, for comparison
        t0 = time.perf_counter()
        np.argpartition(-(data @ q), K)[:K]
        exact_ms.append(1000 * (time.perf_counter() - t0))
    del data
    t0, c0 = time.perf_counter(), time.process_time()
    index = EmbeddingIndex.open(pq_path)
    build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - t0
    t0 = time.perf_counter()
    index = EmbeddingIndex.open(pq_path)  # the second open reads what the first one stored
    reopen = time.perf_counter() - t0
    found, ms = _timed_queries(lambda q: index.search(q[0], K)[0], queries)
    sweep = {}
    if index.method == "ivf":  # the same index, fewer or more lists scanned per query
        for nprobe in (8, 16, 64):
            index._ann.nprobe = nprobe
            f, m = _timed_queries(lambda q: index.search(q[0], K)[0], queries)
            sweep[nprobe] = {"recall@10": round(recall(f, truth), 4), "p50_ms": round(float(np.median(m)), 3)}
    return {
        "exact_numpy_p50_ms": round(float(np.median(exact_ms)), 2),
        "nprobe_sweep": sweep,
        "n": n,
        "method": index.method,
        "build_cpu_s": round(build_cpu, 1),
        "build_wall_s": round(build_wall, 1),
        "reopen_s": round(reopen, 2),
        "recall@10": round(recall(found, truth), 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "index_file_mb": round(index.index_bytes() / 2**20),
        "peak_rss_mb": round(rss_mb()),
    }


def build_only(parquet: Path, reopen: bool) -> dict:
    """Peak memory of building the stored index from an existing parquet (no data generated in this
    process), or with `reopen` of opening it and answering 200 queries."""
    import shutil

    from learner.embed.index import EmbeddingIndex, index_folder

    if not reopen:
        shutil.rmtree(index_folder(parquet), ignore_errors=True)
    c0 = time.process_time()
    index = EmbeddingIndex.open(parquet)
    cpu = time.process_time() - c0
    out = {"n": len(index), "what": "reopen + 200 queries" if reopen else "build", "cpu_s": round(cpu, 1)}
    if reopen:
        _, ms = _timed_queries(lambda q: index.search(q[0], K)[0], clustered(QUERIES, seed=99))
        out["p50_ms"] = round(float(np.median(ms)), 3)
    return {**out, "peak_rss_mb": round(rss_mb())}


def _child(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "_one", *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        return {"args": args, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("what", choices=["libs", "index", "build", "_one"])
    p.add_argument("rest", nargs="*")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--libs", default=",".join(LIBS))
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--work", default=None)
    a = p.parse_args()
    if a.what == "_one":
        kind, *rest = a.rest
        if kind == "build":
            r = build_only(Path(rest[0]), rest[1] == "reopen")
        else:
            r = one_lib(rest[0], int(rest[1])) if kind == "lib" else one_index(int(rest[0]), Path(rest[1]))
        print(json.dumps(r))
        return
    print(f"# load before: {os.getloadavg()}", flush=True)
    if a.what == "libs":
        for name in a.libs.split(","):
            print(json.dumps(_child(["lib", name, str(a.n)])), flush=True)
    elif a.what == "build":  # the parquet of `index` at one size: build memory, then search memory
        for step in ("build", "reopen"):
            print(json.dumps(_child(["build", a.rest[0], step])), flush=True)
    else:
        work = Path(a.work or tempfile.mkdtemp(prefix="earshot-search-"))
        work.mkdir(parents=True, exist_ok=True)
        for n in map(int, a.sizes.split(",")):
            print(json.dumps(_child(["index", str(n), str(work)])), flush=True)
    print(f"# load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
