"""Batch scoring, the local engine: directories, globs or manifests of audio → one row per file, streamed into
parts.

The steps that touch a file or a row are shared with the Ray engine (`learner.score.ray_engine`): `discover`
lists the input, `load_item` decodes and prepares one file in a worker process under a time limit
(`learner.workers`; a long file comes in parts, scored as they arrive: `learner.score.streamed`),
`score_items` runs the Predictor and builds the rows, `PartStore` commits them atomically
(`learner.score.store`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from learner.audio.stream import StreamSizes
from learner.data.recorders import FileTimes
from learner.score.discover import Discovery, FileRef, discover
from learner.score.kinds import BACKEND_FILES, kind_of, run_meta, weights_sha256  # noqa: F401 (re-exported)
from learner.score.paths import one_line
from learner.score.rows import MIN_DURATION_S, Item, error_item, item_cost, load_item
from learner.score.store import PartStore, events_output, out_of_space, windows_output
from learner.serve.events import EventRule
from learner.serve.predictor import Predictor


@dataclass
class ScoreOptions:
    """Everything a scoring run needs besides the model and the input (shared by both engines)."""

    output: str
    fmt: str = "parquet"
    window: tuple[float, float] | None = None  # (window s, hop s); window None: the model's clip length
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
    wide: bool = False  # one `score_<class>` column per class (every class's probability)
    kind: str = "scores"  # what is written: "scores" or "embeddings" (learner.score.kinds)
    times: FileTimes | None = None  # start_utc on window and event rows (learner.data.recorders)

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


def _check_same_width(opts: ScoreOptions) -> None:
    """`resume` adds rows only as wide (or narrow) as those already written (`wide` in the run's record)."""
    from learner.score.ownership import META

    record = Path(opts.output) / META
    if not opts.resume or not record.is_file():
        return
    try:
        old = bool(json.loads(record.read_text()).get("wide", False))
    except (OSError, ValueError):
        return  # the store says what is wrong with its record
    if old != opts.wide:
        raise ValueError(
            f"{opts.output} was made with wide={old}, this run has wide={opts.wide}; resume with the same "
            "settings or pass overwrite=True"
        )


def plan(
    inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions
) -> tuple[list[FileRef], PartStore, ScoreSummary]:
    """Discover the input, open the output (resume/overwrite rules) and decide what is left to score.
    `predictor` is whatever `opts.kind` runs (a Predictor for scores, an Embedder for embeddings)."""
    kind = kind_of(opts.kind)
    kind.check(predictor, opts)  # an unknown class, windows shorter than the clip: refused before any work
    disc = discover(inputs)
    _check_same_width(opts)
    file_schema, window_schema, event_schema = kind.schemas(predictor, opts)
    store = PartStore(
        opts.output,
        opts.fmt,
        file_schema,
        window_schema,
        part_rows=opts.part_rows,
        part_seconds=opts.part_seconds,
        event_schema=event_schema,
    )
    done = store.open(kind.meta(predictor, opts), resume=opts.resume, overwrite=opts.overwrite)
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
        str(windows_output(opts.output)) if window_schema else None,
        str(events_output(opts.output)) if event_schema else None,
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
            rows = kind_of(opts.kind).rows
            for batch in batches(items, predictor, opts):
                if not batch:  # a long file is streaming: commit the part in flight once its time is up
                    store.tick()
                    continue
                store.add(*rows(predictor, batch, opts))
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


def batches(items: Iterator[Item | None], predictor: Predictor, opts: ScoreOptions) -> Iterator[list[Item]]:
    """Group items until they hold `batch_size` model inputs. On a tick (None: a long file is streaming)
    the batch waiting since `part_seconds` is handed on, else an empty one, so the output's parts keep
    being committed on time."""
    batch, cost, since = [], 0, time.monotonic()
    for it in items:
        if it is None:
            due = batch and time.monotonic() - since >= opts.part_seconds
            yield batch if due else []
            if due:
                batch, cost = [], 0
            continue
        if not batch:
            since = time.monotonic()
        batch.append(it)
        cost += item_cost(it, predictor.pipeline, opts.window)
        if cost >= opts.batch_size or len(batch) >= 4 * opts.batch_size:
            yield batch
            batch, cost = [], 0
    if batch:
        yield batch
