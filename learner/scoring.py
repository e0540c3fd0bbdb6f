"""Batch scoring: directories, globs or manifests of audio → one row per file, streamed into parts.

Both engines share every step that touches a file or a row: `discover` lists the input, `load_item`
decodes and prepares one file (in a worker process under a time limit, `learner.scoring_pool`),
`score_batch` runs the Predictor and builds the rows, `PartStore` commits them atomically
(`learner.scoring_store`). The local engine is `score` below; `learner.scoring_ray.score_ray` runs the
same steps on Ray Data.
"""

from __future__ import annotations

import csv
import glob
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from learner import __version__
from learner.audio import AUDIO_EXTENSIONS, SCORE_MAX_BYTES, SCORE_MAX_S, AudioDecodeError, decode
from learner.predictor import Predictor
from learner.scoring_store import PartStore, windows_output

TOP_K = pa.list_(pa.struct([("label", pa.string()), ("score", pa.float32())]))
EVENTS = pa.list_(pa.struct([("label", pa.string()), ("count", pa.int32())]))
FILE_SCHEMA = pa.schema([
    ("path", pa.string()), ("label", pa.string()), ("score", pa.float32()), ("top_k", TOP_K),
    ("duration_s", pa.float64()), ("sample_rate", pa.int32()), ("channels", pa.int32()), ("n_windows", pa.int32()),
    ("events", EVENTS), ("error", pa.string()), ("decoder", pa.string()), ("file_size", pa.int64()),
    ("file_mtime_ns", pa.int64()), ("model_id", pa.string()), ("model_revision", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")), ("backend", pa.string()), ("earshot_version", pa.string()),
])
WINDOW_SCHEMA = pa.schema([("path", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                           ("label", pa.string()), ("score", pa.float32())])
MANIFEST_SUFFIXES = (".csv", ".tsv", ".txt", ".lst")


class FileRef(NamedTuple):
    """A file to score and its resume key (size and mtime; -1 when it cannot be stat'ed)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    """What the input named: files to score, plus what the walk passed over (reported, never silent)."""

    files: list[FileRef] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # walked files without an audio extension
    links_skipped: list[str] = field(default_factory=list)  # directory links back into a folder already walked
    unreadable_dirs: list[str] = field(default_factory=list)
    duplicates: int = 0


def _ref(path: str) -> FileRef:
    try:
        st = os.stat(path)
        return FileRef(path, int(st.st_size), int(st.st_mtime_ns))
    except OSError:
        return FileRef(path, -1, -1)


def _walk(root: str, found: list[str], d: Discovery, seen: set[tuple[int, int]]) -> None:
    """Depth first in name order; follows links, skips hidden names and any folder met before (loops)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                d.links_skipped.append(folder)
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            d.unreadable_dirs.append(f"{folder} ({e.strerror or e})")
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # follows links; a broken link is not a dir
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(e.path)
            elif Path(e.name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append(e.path)
            else:
                d.ignored.append(e.path)
        stack.extend(reversed(subdirs))


def read_manifest(path: Path) -> list[str]:
    """A CSV/TSV with a `path` column, or a plain list (one path a line, # comments); relative to its folder."""
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not rows.fieldnames or "path" not in rows.fieldnames:
                raise ValueError(f"{path}: a manifest needs a 'path' column (found {rows.fieldnames})")
            names = [r["path"] for r in rows if (r.get("path") or "").strip()]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        names = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
    return [n if os.path.isabs(n) else str(path.parent / n) for n in names]


def discover(inputs: list[str | Path]) -> Discovery:
    """Folders (recursive), globs (`**` recursive), manifests or single files → FileRefs, absolute, deduplicated.

    Walked folders and globs keep audio extensions only (others are listed in `ignored`); every entry of
    a manifest and every file named directly is scored, so a bad one becomes an error row.
    """
    d = Discovery()
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for item in map(str, inputs):
        p = Path(item)
        if p.is_dir():
            _walk(item, found, d, seen)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            found += read_manifest(p)
        elif p.exists() or p.is_symlink():
            found.append(item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{item}: the pattern matches nothing")
            for m in matches:
                if os.path.isdir(m):
                    _walk(m, found, d, seen)
                elif Path(m).suffix.lower() in AUDIO_EXTENSIONS:
                    found.append(m)
                else:
                    d.ignored.append(m)
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or manifest")
    uniq = list(dict.fromkeys(os.path.abspath(f) for f in found))
    d.duplicates = len(found) - len(uniq)
    d.files = [_ref(f) for f in uniq]
    return d


# --- one file → an item ready for the model -------------------------------------------------------------


@dataclass
class Item:
    """A decoded file: a prepared `clip`, or the whole `signal` when it is scored in windows, or an `error`."""

    ref: FileRef
    error: str | None = None
    clip: np.ndarray | None = None
    signal: np.ndarray | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    decoder: str | None = None


def uses_windows(n_samples: int, predictor: Predictor, window: tuple[float, float] | None) -> bool:
    """With --windows every file is scored in windows; without, files over twice the clip length are
    (mean of window probabilities), exactly like `Predictor.predict(window="auto")`."""
    return window is not None or n_samples > 2 * predictor.cfg.n_samples


def load_item(ref: FileRef, predictor: Predictor, window: tuple[float, float] | None) -> Item:
    """Decode and prepare one file; never raises (whatever happens becomes the item's `error`)."""
    try:
        d = decode(ref.path, predictor.cfg.sample_rate, max_duration_s=SCORE_MAX_S, max_bytes=SCORE_MAX_BYTES)
    except AudioDecodeError as e:
        return Item(ref, error=e.reason)
    except Exception as e:  # the decoders promise AudioDecodeError; a scorer of millions of files double-checks
        return Item(ref, error=f"{type(e).__name__}: {e}")
    item = Item(ref, duration_s=d.duration_s, sample_rate=d.orig_sample_rate, channels=d.channels, decoder=d.decoder)
    if uses_windows(d.samples.size, predictor, window):
        item.signal = d.samples
    else:
        item.clip = predictor.prepare(d.samples)
    return item


def item_cost(item: Item, predictor: Predictor, window: tuple[float, float] | None) -> int:
    """Model inputs an item will need (clips count 1, windowed files their window count)."""
    if item.clip is not None:
        return 1
    if item.signal is None:
        return 0
    n = (window[0] if window else predictor.cfg.duration) * predictor.cfg.sample_rate
    hop = (window[1] if window else predictor.cfg.duration / 2) * predictor.cfg.sample_rate
    return 1 + max(0, int(np.ceil((item.signal.size - n) / hop)))


# --- items → rows (shared by both engines) ----------------------------------------------------------------


def window_probs(predictor: Predictor, signal: np.ndarray, window_s: float | None, hop_s: float | None,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """`Predictor.windows` + `predict_waves` over a long signal, `chunk` windows at a time (bounded memory).

    Each chunk is the slice that holds exactly its windows, so starts and windows equal one whole-signal call.
    """
    cfg = predictor.cfg
    n = int(round((window_s or cfg.duration) * cfg.sample_rate))
    hop = int(round((hop_s or (window_s or cfg.duration) / 2) * cfg.sample_rate))
    probs, starts, a = [], [], 0
    while True:
        last = signal.size - a <= n + chunk * hop
        seg = signal[a:] if last else signal[a : a + (chunk - 1) * hop + n]
        wins, st = predictor.windows(seg, window_s, hop_s)
        probs.append(predictor.predict_waves(wins))
        starts.append(st + a / cfg.sample_rate)
        if last:
            return np.concatenate(probs), np.concatenate(starts)
        a += chunk * hop


def count_events(top: np.ndarray, score: np.ndarray, n_classes: int, threshold: float) -> np.ndarray:
    """Events per class: runs of consecutive windows whose top class is that class with score ≥ threshold
    (one call spanning overlapping windows counts once)."""
    counts = np.zeros(n_classes, dtype=np.int64)
    prev = -1
    for c, s in zip(top.tolist(), score.tolist()):
        cur = c if s >= threshold else -1
        if cur >= 0 and cur != prev:
            counts[cur] += 1
        prev = cur
    return counts


def score_batch(predictor: Predictor, items: list[Item], *, window: tuple[float, float] | None = None,
                top_k: int = 5, threshold: float = 0.5, scored_at: datetime | None = None,
                chunk: int = 256) -> tuple[pa.Table, pa.Table]:
    """Items → (file rows, window rows) with FILE_SCHEMA / WINDOW_SCHEMA. Both engines build rows only here."""
    scored_at = scored_at or datetime.now(UTC)
    classes = predictor.classes
    win_s, hop_s = window or (None, None)
    # one forward pass for the clips and the windows of every file that is not long (those go in chunks)
    inputs, spans, starts_of, offset = [], {}, {}, 0
    for j, it in enumerate(items):
        if it.clip is not None:
            inputs.append(it.clip[None])
        elif it.signal is not None and item_cost(it, predictor, window) <= chunk:
            wins, starts_of[j] = predictor.windows(it.signal, win_s, hop_s)
            inputs.append(wins)
        else:
            continue
        spans[j] = (offset, len(inputs[-1]))
        offset += len(inputs[-1])
    allp = predictor.predict_waves(np.concatenate(inputs)) if inputs else None
    rows: list[dict[str, Any]] = []
    wrows: dict[str, list] = {k: [] for k in WINDOW_SCHEMA.names}
    k = max(1, min(top_k, len(classes)))
    for j, it in enumerate(items):
        row: dict[str, Any] = dict(path=it.ref.path, file_size=it.ref.size, file_mtime_ns=it.ref.mtime_ns,
                                   error=it.error, duration_s=it.duration_s, sample_rate=it.sample_rate,
                                   channels=it.channels, decoder=it.decoder, model_id=predictor.model_id,
                                   model_revision=predictor.revision or None, scored_at=scored_at,
                                   backend=backend_name(predictor), earshot_version=__version__)
        if it.error is None:
            if it.clip is not None:
                probs, n_win = allp[spans[j][0]], 1
            else:
                if j in spans:
                    wp, starts = allp[spans[j][0] : spans[j][0] + spans[j][1]], starts_of[j]
                else:
                    wp, starts = window_probs(predictor, it.signal, win_s, hop_s, chunk)
                probs, n_win = wp.mean(axis=0), len(wp)
                if window is not None:
                    top, top_s = wp.argmax(axis=1), wp.max(axis=1)
                    ends = np.minimum(starts + window[0], it.duration_s or 0.0)
                    wrows["path"] += [it.ref.path] * n_win
                    wrows["start_s"] += starts.tolist()
                    wrows["end_s"] += np.maximum(ends, starts).tolist()
                    wrows["label"] += [classes[i] for i in top.tolist()]
                    wrows["score"] += top_s.tolist()
                    counts = count_events(top, top_s, len(classes), threshold)
                    row["events"] = [{"label": c, "count": int(n)} for c, n in zip(classes, counts.tolist())]
            order = np.argsort(-probs, kind="stable")[:k]
            row.update(label=classes[order[0]], score=float(probs[order[0]]), n_windows=n_win,
                       top_k=[{"label": classes[i], "score": float(probs[i])} for i in order.tolist()])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=FILE_SCHEMA), pa.table(wrows, schema=WINDOW_SCHEMA)


# --- the local engine ----------------------------------------------------------------------------------


@dataclass
class ScoreOptions:
    """Everything a scoring run needs besides the model and the input (shared by both engines)."""

    output: str
    fmt: str = "parquet"
    window: tuple[float, float] | None = None
    threshold: float = 0.5
    top_k: int = 5
    batch_size: int = 32
    workers: int | None = None  # decoding processes (default: CPU count - 1, at least 1)
    decode_timeout_s: float = 120.0
    part_rows: int = 2048
    part_seconds: float = 60.0
    resume: bool = False
    overwrite: bool = False
    retry_errors: bool = False
    progress: bool = True


@dataclass
class ScoreSummary:
    output: str
    windows_output: str | None
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
        out = [f"scored {self.scored}, failed {self.failed}, skipped {self.skipped} (already in the output) "
               f"in {self.seconds:.1f} s: {self.files_per_s:.1f} files/s → {self.output}"
               + (f" (+ {self.windows_output})" if self.windows_output else "")]
        if self.dropped:
            out.append(f"replaced {self.dropped} earlier row(s) of files that changed or were retried")
        for what, names in (("file(s) without an audio extension ignored", d.ignored),
                            ("folder link(s) into folders already walked skipped", d.links_skipped),
                            ("folder(s) could not be read", d.unreadable_dirs)):
            if names:
                out.append(f"{len(names)} {what}: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}")
        if d.duplicates:
            out.append(f"{d.duplicates} duplicate path(s) in the input scored once")
        return out


# the file each backend computes with: its sha256 tells whether --resume would mix two models
BACKEND_FILES = {"torch": "model.safetensors", "pickle": "model.pkl", "onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def backend_name(predictor: Predictor) -> str | None:
    return getattr(predictor.backend, "name", None)


def weights_sha256(predictor: Predictor) -> str | None:
    """sha256 of the weights file the predictor's backend runs (None when it has no folder or file)."""
    name = BACKEND_FILES.get(backend_name(predictor) or "")
    path = predictor.folder / name if predictor.folder is not None and name else None
    if path is None or not path.is_file():
        return None
    from learner.onnx_backend import sha256_file

    return sha256_file(path)


def run_meta(predictor: Predictor, opts: ScoreOptions) -> dict[str, Any]:
    """What made the rows; `--resume` refuses to add rows made differently (`PartStore._recover`)."""
    return {"format": opts.fmt, "model_id": predictor.model_id, "model_revision": predictor.revision or None,
            "windows": list(opts.window) if opts.window else None, "threshold": opts.threshold if opts.window else None,
            "top_k": opts.top_k, "classes": predictor.classes, "backend": backend_name(predictor),
            "weights_sha256": weights_sha256(predictor), "earshot_version": __version__}


def plan(inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions) -> tuple[list[FileRef], PartStore, ScoreSummary]:
    """Discover the input, open the output (resume/overwrite rules) and decide what is left to score."""
    disc = discover(inputs)
    store = PartStore(opts.output, opts.fmt, FILE_SCHEMA, WINDOW_SCHEMA if opts.window else None,
                      part_rows=opts.part_rows, part_seconds=opts.part_seconds)
    done = store.open(run_meta(predictor, opts), resume=opts.resume, overwrite=opts.overwrite)
    todo, stale = [], set()
    for ref in disc.files:
        prev = done.get(ref.path)
        if prev is not None and prev[:2] == (ref.size, ref.mtime_ns) and not (opts.retry_errors and prev[2]):
            continue
        todo.append(ref)
        if prev is not None:
            stale.add(ref.path)
    summary = ScoreSummary(opts.output, str(windows_output(opts.output)) if opts.window else None,
                           skipped=len(disc.files) - len(todo), discovery=disc)
    summary.dropped = store.drop(stale)
    return todo, store, summary


def _progress(total: int, enabled: bool, unit: str = "file"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc="scoring", disable=not enabled, smoothing=0.1, dynamic_ncols=True)


def score(inputs: list[str | Path], predictor: Predictor, opts: ScoreOptions) -> ScoreSummary:
    """Score every audio file named by `inputs` into `opts.output` with local decoding processes."""
    from learner.scoring_pool import DecodePool

    todo, store, summary = plan(inputs, predictor, opts)
    prep = Predictor(predictor.config, None, model_id=predictor.model_id, revision=predictor.revision)  # no weights
    workers = opts.workers or max(1, (os.cpu_count() or 2) - 1)
    start = time.perf_counter()
    bar = _progress(len(todo), opts.progress)
    ok = False
    try:
        with DecodePool(load_item, (prep, opts.window), workers=workers, timeout_s=opts.decode_timeout_s,
                        buffer=4 * opts.batch_size) as pool:
            for batch in batches(pool.imap_unordered(todo, on_error=_error_item), prep, opts):
                files, wins = score_batch(predictor, batch, window=opts.window, top_k=opts.top_k,
                                          threshold=opts.threshold)
                store.add(files, wins if opts.window else None)
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


def _error_item(ref: FileRef, reason: str) -> Item:
    return Item(ref, error=reason)


def batches(items: Iterator[Item], predictor: Predictor, opts: ScoreOptions) -> Iterator[list[Item]]:
    """Group items until they hold `batch_size` model inputs."""
    batch, cost = [], 0
    for it in items:
        batch.append(it)
        cost += item_cost(it, predictor, opts.window)
        if cost >= opts.batch_size or len(batch) >= 4 * opts.batch_size:
            yield batch
            batch, cost = [], 0
    if batch:
        yield batch
