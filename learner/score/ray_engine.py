"""The Ray Data engine: the local engine's steps on a cluster, with the same rows.

    from_items(files) → map_batches(_Decode, actor pool: decoding under a time limit, CPU)
                      → map_batches(_Score, actor pool of model actors, GPUs when the cluster has them)
                      → write_parquet(OUT/.ray-staging-…) → committed into OUT's parts by the driver

The driver lists the files and owns the output (`PartStore`): staged files are turned into parts with the
same commit protocol as the local engine (so `--resume` and `--format` work alike), `chunk` files per Ray
run, so a killed driver loses at most one chunk's work. Decoding reads paths, so every node must see the
input at the same path (a shared file system); the model directory too (or give a Hub id).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from learner.audio import ClipPipeline
from learner.config import AudioConfig
from learner.score.discover import FileRef
from learner.score.kinds import kind_of
from learner.score.local import ScoreOptions, ScoreSummary, plan
from learner.score.paths import clean_text, original_path, path_hex, stored_path
from learner.score.rows import EVENT_SCHEMA, WINDOW_SCHEMA, Item, error_item, load_item
from learner.score.store import PartStore
from learner.serve.predictor import Predictor

_ITEM_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # as stored (`learner.score.paths`): valid UTF-8 whatever the name's bytes
        ("path_hex", pa.string()),  # the exact bytes of a name that is not UTF-8 (else null)
        ("file_size", pa.int64()),
        ("file_mtime_ns", pa.int64()),
        ("error", pa.string()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int32()),
        ("decoder", pa.string()),
        ("warning", pa.string()),
        ("kind", pa.int8()),
        ("samples", pa.large_list(pa.float32())),  # kind: 0 error, 1 prepared clip, 2 signal
    ]
)
_NESTED = {
    "_windows": WINDOW_SCHEMA,
    "_events": EVENT_SCHEMA,
}  # side rows ride in a list column of their file's row


@dataclass
class RayOptions:
    address: str | None = None  # None: start Ray on this machine (or use the session already started)
    actors: int | None = None
    decoders: int | None = None
    chunk: int = 20000
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    actor_cpus: float = 1.0


def items_to_arrow(items: list[Item]) -> pa.Table:
    """Decoded items as one Arrow table (samples as a large list column: zero-copy back to NumPy)."""
    arrays = [
        it.clip if it.clip is not None else it.signal if it.signal is not None else np.zeros(0, np.float32)
        for it in items
    ]
    offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int64)
    values = np.concatenate(arrays).astype(np.float32, copy=False) if arrays else np.zeros(0, np.float32)
    cols = {
        "path": [stored_path(it.ref.path) for it in items],
        "path_hex": [path_hex(it.ref.path) for it in items],
        "file_size": [it.ref.size for it in items],
        "file_mtime_ns": [it.ref.mtime_ns for it in items],
        "error": [clean_text(it.error) for it in items],
        "duration_s": [it.duration_s for it in items],
        "sample_rate": [it.sample_rate for it in items],
        "channels": [it.channels for it in items],
        "decoder": [clean_text(it.decoder) for it in items],
        "warning": [clean_text(it.warning) for it in items],
        "kind": [0 if it.error is not None else 1 if it.clip is not None else 2 for it in items],
    }
    t = pa.table({k: pa.array(v, _ITEM_SCHEMA.field(k).type) for k, v in cols.items()})
    return t.append_column("samples", pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values)))


def file_record(ref: FileRef) -> dict[str, Any]:
    """What Ray carries for one file: its name as UTF-8 text plus the exact bytes of a name that is not
    (Arrow refuses the lone surrogates Python uses for them), so a decoder opens the very same file."""
    return {
        "path": stored_path(ref.path),
        "path_hex": path_hex(ref.path),
        "file_size": ref.size,
        "file_mtime_ns": ref.mtime_ns,
    }


def arrow_to_items(t: pa.Table) -> list[Item]:
    samples = t["samples"].combine_chunks()
    offsets = samples.offsets.to_numpy()
    values = samples.values.to_numpy(zero_copy_only=False)
    c = {k: t[k].to_pylist() for k in _ITEM_SCHEMA.names if k != "samples"}
    items = []
    for i, kind in enumerate(c["kind"]):
        x = values[offsets[i] : offsets[i + 1]]
        items.append(
            Item(
                FileRef(
                    original_path(c["path"][i], c["path_hex"][i]), c["file_size"][i], c["file_mtime_ns"][i]
                ),
                error=c["error"][i],
                clip=x if kind == 1 else None,
                signal=x if kind == 2 else None,
                duration_s=c["duration_s"][i],
                sample_rate=c["sample_rate"][i],
                channels=c["channels"][i],
                decoder=c["decoder"][i],
                warning=c["warning"][i],
            )
        )
    return items


def _nested_type(schema: pa.Schema) -> pa.DataType:
    return pa.list_(pa.struct([f for f in schema if f.name != "path"]))


def nest_windows(files: pa.Table, windows: pa.Table, events: pa.Table | None = None) -> pa.Table:
    """Window (and event) rows as list columns of their file's row, so one Ray table carries all three."""
    paths = files["path"].to_pylist()
    for column, rows in (
        ("_windows", windows),
        ("_events", events if events is not None else EVENT_SCHEMA.empty_table()),
    ):
        by_path: dict[str, list[dict[str, Any]]] = {}
        for r in rows.to_pylist():
            by_path.setdefault(r.pop("path"), []).append(r)
        files = files.append_column(
            column, pa.array([by_path.get(p, []) for p in paths], _nested_type(_NESTED[column]))
        )
    return files


def _unnest(t: pa.Table, column: str) -> pa.Table:
    nested = t[column].combine_chunks()
    flat = pc.list_flatten(nested)
    paths = pc.take(t["path"], pc.list_parent_indices(nested))
    return pa.table(
        [paths] + [pc.struct_field(flat, [i]) for i in range(flat.type.num_fields)], schema=_NESTED[column]
    )


def unnest_windows(t: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(file rows, window rows, event rows) of a table `nest_windows` made."""
    return t.drop_columns(list(_NESTED)), _unnest(t, "_windows"), _unnest(t, "_events")


class _Decode:
    """Decoding actor: one child process per actor, so a stuck decoder can be killed (time limit)."""

    def __init__(
        self,
        config: dict[str, Any],
        window: tuple[float, float] | None,
        timeout_s: float,
        min_duration_s: float,
    ) -> None:
        from learner.workers import DecodePool

        pipeline = ClipPipeline(AudioConfig.from_dict(config["audio"]))
        self.pool = DecodePool(load_item, (pipeline, window, min_duration_s), workers=1, timeout_s=timeout_s)
        self.pool.__enter__()

    def __call__(self, batch: pa.Table) -> pa.Table:
        refs = [
            FileRef(original_path(p, raw), size, mtime)
            for p, raw, size, mtime in zip(
                *(batch[c].to_pylist() for c in ("path", "path_hex", "file_size", "file_mtime_ns"))
            )
        ]
        return items_to_arrow(list(self.pool.imap_unordered(refs, on_error=error_item)))


class _Score:
    """Model actor: loads the model of the output kind once (a Predictor, an Embedder); rows come from the
    same function as in the local engine (`learner.score.kinds`)."""

    def __init__(
        self, folder: str, model_id: str, revision: str, ropts: RayOptions, opts: ScoreOptions
    ) -> None:
        self.p = kind_of(opts.kind).load(
            folder,
            opts,
            backend=ropts.backend,
            device=ropts.device,
            threads=ropts.threads,
            model_id=model_id,
            revision=revision,
            batch_size=opts.batch_size,
        )
        self.opts = opts

    def __call__(self, batch: pa.Table) -> pa.Table:
        files, wins, events = kind_of(self.opts.kind).rows(self.p, arrow_to_items(batch), self.opts)
        return nest_windows(files, wins, events) if wins is not None else files


def _init_ray(address: str | None) -> Any:
    import ray

    if not ray.is_initialized():
        import learner
        from learner.score import ray_reaper

        # ship earshot's code to the nodes
        env = {"py_modules": [os.path.dirname(learner.__file__)]} if address else None
        before = ray_reaper.children_of(os.getpid())
        ray.init(address=address, runtime_env=env, include_dashboard=False, logging_level="WARNING")
        started = ray_reaper.children_of(os.getpid()) - before  # GCS, raylet, …: what ray.init started here
        if address is None and started:  # Ray is ours: its processes and staging go if this driver is killed
            ray_reaper.start(sorted(started))
    return ray


def _quiet(ray: Any, progress: bool) -> None:
    """Ray Data's progress bars and info logs follow `--progress`, like the local engine's bar."""
    ray.data.DataContext.get_current().enable_progress_bars = progress
    if not progress:
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)


def _pool_sizes(ray: Any, ropts: RayOptions) -> tuple[int, int, int]:
    """(decoding actors, model actors, GPUs): a quarter of the CPUs decode unless told, the model takes the
    rest (or one actor per GPU)."""
    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
    decoders = ropts.decoders or max(1, cpus // 4)
    actors = ropts.actors or (gpus or max(1, int((cpus - decoders) // ropts.actor_cpus)))
    return decoders, actors, gpus


def _chunk_dataset(
    ray: Any,
    chunk: list[FileRef],
    predictor: Predictor,
    folder: str,
    opts: ScoreOptions,
    ropts: RayOptions,
    sizes: tuple[int, int, int],
) -> Any:
    """One chunk's lazy Ray pipeline: file refs → decoding actors → model actors (rows, nested side rows)."""
    decoders, actors, gpus = sizes
    ds = ray.data.from_items(
        [file_record(r) for r in chunk],
        override_num_blocks=max(1, min(len(chunk) // 16, 4 * (decoders + actors))),
    )
    ds = ds.map_batches(
        _Decode,
        fn_constructor_args=(
            predictor.config,
            opts.window,
            opts.decode_timeout_s,
            opts.min_duration_s,
        ),
        batch_size=16,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=decoders),
        num_cpus=1,
    )
    return ds.map_batches(
        _Score,
        fn_constructor_args=(folder, _model_id(predictor), getattr(predictor, "revision", ""), ropts, opts),
        batch_size=opts.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else ropts.actor_cpus,
    )


def _add_staged(
    staging: Path, store: PartStore, summary: ScoreSummary, window: tuple[float, float] | None
) -> None:
    """Hands the staged Parquet files to the store as parts and counts scored and failed files."""
    for f in sorted(staging.glob("*.parquet")):
        t = pq.read_table(f)
        files, wins, events = unnest_windows(t) if "_windows" in t.column_names else (t, None, None)
        n_err = pc.sum(pc.is_valid(files["error"]).cast(pa.int64())).as_py() or 0
        summary.failed += n_err  # a failed file is one row; a file embedded per window is many
        summary.scored += pc.count_distinct(files.filter(pc.is_null(files["error"]))["path"]).as_py()
        store.add(files, wins if window else None, events if window else None)


def _model_id(model: Any) -> str:
    """What rows name the model by: a Predictor's model id, an Embedder's name."""
    return getattr(model, "model_id", None) or model.name


def score_ray(
    inputs: list[str | Path], model_ref: str, opts: ScoreOptions, ropts: RayOptions | None = None
) -> ScoreSummary:
    """Score like `learner.score.local.score`, with decoding and the model spread over a Ray cluster."""
    ropts = ropts or RayOptions()
    predictor = kind_of(opts.kind).load(
        model_ref, opts, backend=ropts.backend, device="cpu", batch_size=opts.batch_size
    )
    # actors load from here (a path every node sees, or the HF cache; a backbone by its name)
    folder = str(predictor.folder.resolve()) if getattr(predictor, "folder", None) else model_ref
    todo, store, summary = plan(inputs, predictor, opts)
    summary.engine = "ray"
    ray = _init_ray(ropts.address)
    _quiet(ray, opts.progress)
    sizes = _pool_sizes(ray, ropts)
    staging = store.out / f".ray-staging-{uuid.uuid4().hex[:8]}"
    store.claim(staging.name)  # listed before it exists: --overwrite / --resume may then remove it
    from learner.score import ray_reaper

    reaper = ray_reaper.current()
    if reaper is not None:
        reaper.watch(staging)  # removed by the watcher if this driver is killed
    start = time.perf_counter()
    try:
        for lo in range(0, len(todo), max(1, ropts.chunk)):
            chunk = todo[lo : lo + ropts.chunk]
            _chunk_dataset(ray, chunk, predictor, folder, opts, ropts, sizes).write_parquet(str(staging))
            _add_staged(staging, store, summary, opts.window)
            store.commit()
            shutil.rmtree(staging)
    except BaseException:
        store.abandon()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if reaper is not None:
            reaper.forget(staging)
        summary.seconds = time.perf_counter() - start
    return summary
