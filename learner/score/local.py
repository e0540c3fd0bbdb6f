"""Batch scoring, the local engine: directories, globs or manifests of audio → one row per file, streamed into
parts.

The steps that touch a file or a row are shared with the Ray engine (`learner.score.ray_engine`): `discover`
lists the input, `load_item` decodes and prepares one file in a worker process under a time limit
(`learner.workers`; a long file comes in parts, scored as they arrive: `learner.score.streamed`),
`score_batch` runs the Predictor and builds the rows, `PartStore` commits them atomically
(`learner.score.store`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learner import __version__
from learner.audio.stream import StreamSizes
from learner.score.discover import Discovery, FileRef, discover
from learner.score.paths import one_line
from learner.score.rows import (
    EVENT_SCHEMA,
    FILE_SCHEMA,
    MIN_DURATION_S,
    WINDOW_SCHEMA,
    Item,
    backend_name,
    error_item,
    item_cost,
    load_item,
    score_items,
)
from learner.score.store import PartStore, events_output, out_of_space, windows_output
from learner.serve.events import EventRule, class_thresholds
from learner.serve.predictor import Predictor


@dataclass
class ScoreOptions:
    """Everything a scoring run needs besides the model and the input (shared by both engines)."""

    output: str
    fmt: str = "parquet"
    window: tuple[float, float] | None = None
    threshold: float | dict[str, float] | None = None  # None: the model's thresholds (config.json), else 0.5
    event_gap_s: float = 0.0  # events of one class closer than this are joined (learner.serve.events)
    event_min_s: float = 0.0  # shorter events are dropped
    top_k: int = 5
    batch_size: int = 32
    workers: int | None = None  # decoding processes (default: CPU count - 1, at least 1)
    decode_timeout_s: float = 120.0
    min_duration_s: float = MIN_DURATION_S  # shorter files are error rows ("too short to classify")
    part_rows: int = 2048
    part_seconds: float = 60.0
    resume: bool = False
    overwrite: bool = False
    retry_errors: bool = False
    progress: bool = True
    stream: StreamSizes = field(default_factory=StreamSizes)  # long files in parts (learner.score.streamed)

    def event_rule(self) -> EventRule:
        return EventRule(self.threshold, max_gap_s=self.event_gap_s, min_length_s=self.event_min_s)


@dataclass
class ScoreSummary:
    output: str
    windows_output: str | None
    events_output: str | None = None
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    dropped: int = 0  # rows replaced because the file changed (or its error is retried)
    discovery: Discovery = field(default_factory=Discovery)
    seconds: float = 0.0
    engine: str = "local"

    @property
    def files_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        d = self.discovery
        out = [
            f"scored {self.scored}, failed {self.failed}, skipped {self.skipped} (already in the output) "
            f"in {self.seconds:.1f} s: {self.files_per_s:.1f} files/s → {self.output}"
            + (f" (+ {self.windows_output}, {self.events_output})" if self.windows_output else "")
        ]
        if self.dropped:
            out.append(f"replaced {self.dropped} earlier row(s) of files that changed or were retried")
        for what, names in (
            ("file(s) without an audio extension ignored", d.ignored),
            ("folder link(s) into folders already walked skipped", d.links_skipped),
            ("folder(s) could not be read", d.unreadable_dirs),
        ):
            if names:
                shown = ", ".join(one_line(n) for n in names[:3])
                out.append(f"{len(names)} {what}: {shown}{' …' if len(names) > 3 else ''}")
        if d.duplicates:
            out.append(f"{d.duplicates} duplicate path(s) in the input scored once")
        return out


# the file each backend computes with: its sha256 tells whether --resume would mix two models
BACKEND_FILES = {
    "torch": "model.safetensors",
    "pickle": "model.pkl",
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
}


def weights_sha256(predictor: Predictor) -> str | None:
    """sha256 of the weights file the predictor's backend runs (None when it has no folder or file)."""
    name = BACKEND_FILES.get(backend_name(predictor) or "")
    path = predictor.folder / name if predictor.folder is not None and name else None
    if path is None or not path.is_file():
        return None
    from learner.serve.onnx_backend import sha256_file

    return sha256_file(path)


def run_meta(predictor: Predictor, opts: ScoreOptions) -> dict[str, Any]:
    """What made the rows; `--resume` refuses to add rows made differently (`PartStore._recover`)."""
    return {
        "format": opts.fmt,
        "model_id": predictor.model_id,
        "model_revision": predictor.revision or None,
        "windows": list(opts.window) if opts.window else None,
        "threshold": opts.threshold if opts.window else None,
        "events": {"gap_s": opts.event_gap_s, "min_length_s": opts.event_min_s} if opts.window else None,
        "top_k": opts.top_k,
        "classes": predictor.classes,
        "backend": backend_name(predictor),
        "weights_sha256": weights_sha256(predictor),
        "earshot_version": __version__,
    }


def plan(
    inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions
) -> tuple[list[FileRef], PartStore, ScoreSummary]:
    """Discover the input, open the output (resume/overwrite rules) and decide what is left to score."""
    # an unknown class fails before any work
    class_thresholds(predictor.classes, predictor.config, opts.threshold)
    disc = discover(inputs)
    store = PartStore(
        opts.output,
        opts.fmt,
        FILE_SCHEMA,
        WINDOW_SCHEMA if opts.window else None,
        part_rows=opts.part_rows,
        part_seconds=opts.part_seconds,
        event_schema=EVENT_SCHEMA if opts.window else None,
    )
    done = store.open(run_meta(predictor, opts), resume=opts.resume, overwrite=opts.overwrite)
    todo, stale = [], set()
    for ref in disc.files:
        prev = done.get(ref.path)
        if prev is not None and prev[:2] == (ref.size, ref.mtime_ns) and not (opts.retry_errors and prev[2]):
            continue
        todo.append(ref)
        if prev is not None:
            stale.add(ref.path)
    summary = ScoreSummary(
        opts.output,
        str(windows_output(opts.output)) if opts.window else None,
        str(events_output(opts.output)) if opts.window else None,
        skipped=len(disc.files) - len(todo),
        discovery=disc,
    )
    summary.dropped = store.drop(stale)
    return todo, store, summary


def _progress(total: int, enabled: bool, unit: str = "file"):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit=unit, desc="scoring", disable=not enabled, smoothing=0.1, dynamic_ncols=True
    )


def score(inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions) -> ScoreSummary:
    """Score every audio file named by `inputs` into `opts.output` with local decoding processes.
    A full disk is one RuntimeError; committed parts stay and `resume` continues exactly."""
    try:
        return _score(inputs, predictor, opts)
    except OSError as e:
        full = out_of_space(opts.output, e)
        if full is None:
            raise
        raise full from e


def _score(inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions) -> ScoreSummary:
    from learner.score.streamed import StreamedFiles
    from learner.workers import DecodePool

    todo, store, summary = plan(inputs, predictor, opts)
    workers = opts.workers or max(1, (os.cpu_count() or 2) - 1)
    start = time.perf_counter()
    bar = _progress(len(todo), opts.progress)
    ok = False
    try:
        decode_args = (predictor.pipeline, opts.window, opts.min_duration_s, opts.stream)
        long_files = StreamedFiles(predictor, opts.window, opts.stream.chunk)
        with DecodePool(
            load_item,
            decode_args,
            workers=workers,
            timeout_s=opts.decode_timeout_s,
            buffer=4 * opts.batch_size,
            stream=True,
        ) as pool:
            items = long_files.items(pool.imap_unordered(todo, on_error=error_item))
            for batch in batches(items, predictor, opts):
                files, wins, events = score_items(
                    predictor,
                    batch,
                    window=opts.window,
                    top_k=opts.top_k,
                    threshold=opts.threshold,
                    events=opts.event_rule(),
                    chunk=opts.stream.chunk,
                )
                store.add(files, wins if opts.window else None, events if opts.window else None)
                n_err = sum(it.error is not None for it in batch)
                summary.failed += n_err
                summary.scored += len(batch) - n_err
                bar.update(len(batch))
                bar.set_postfix(failed=summary.failed, refresh=False)
        ok = True
    except KeyboardInterrupt:
        ok = True  # rows already written are complete: keep them, then stop
        raise
    finally:
        bar.close()
        store.commit() if ok else store.abandon()
        summary.seconds = time.perf_counter() - start
    return summary


def batches(items: Iterator[Item], predictor: Predictor, opts: ScoreOptions) -> Iterator[list[Item]]:
    """Group items until they hold `batch_size` model inputs."""
    batch, cost = [], 0
    for it in items:
        batch.append(it)
        cost += item_cost(it, predictor.pipeline, opts.window)
        if cost >= opts.batch_size or len(batch) >= 4 * opts.batch_size:
            yield batch
            batch, cost = [], 0
    if batch:
        yield batch
