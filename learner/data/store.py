"""Decoded signals on disk: every training file decoded once into float16 shards, reused by
every later epoch and run, so a data set larger than memory trains with flat resident memory.

Layout: `<root>/<settings key>/shard-<unique>.f16` (the samples, back to back) and `shard-<unique>.json` (file
key → offset and length, and the files that could not be decoded, with why). The settings key covers what
changes decoding (sample rate, trimming); a file key covers the file's identity (absolute path, size, mtime).

Writers never touch a finished shard: each writes its own uniquely named temporary files and renames them
into place, data first and the index last, so an interrupted run leaves only ignored `.tmp` files (its
finished shards are kept: the next run resumes) and concurrent runs at worst decode a file twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learner.audio import AudioDecodeError, ClipPipeline
from learner.config import AudioConfig
from learner.data.keys import STORE_FORMAT, file_key, settings_key  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

SAMPLE_DTYPE = np.dtype("<f2")  # float16: int16's 2 bytes, but no clipping of decoded peaks above 1.0
SHARD_BYTES = 256 * 2**20  # a finished shard is durable: an interrupted build loses at most this much work
STALE_TMP_S = 24 * 3600  # temporary files older than this are from dead writers and are removed


@dataclass(frozen=True)
class _Entry:
    shard: str  # data file name inside the store folder
    offset: int  # in samples
    length: int  # in samples


class SignalStore(Mapping):
    """Read-only mapping path → float32 signal, read from the shards with `os.pread`.

    Reads, not memory maps: the kernel's page cache still holds what was read, but none of it counts in this
    process's resident memory, which therefore stays flat as an epoch touches every signal. (Memory maps with
    `MADV_DONTNEED` after each read still grew by ~20 KB per clip: the kernel maps the pages around each fault
    as well.) Pickles as paths only, so DataLoader worker processes open their own files.
    """

    def __init__(self, folder: Path, entries: dict[str, _Entry]) -> None:
        self.folder, self.entries = Path(folder), entries
        self._fds: dict[str, int] = {}

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "entries": self.entries}

    def __setstate__(self, state: dict) -> None:
        self.folder, self.entries, self._fds = state["folder"], state["entries"], {}

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass

    def _fd(self, shard: str) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self.folder / shard, os.O_RDONLY)
        return self._fds[shard]

    def __getitem__(self, path: str) -> np.ndarray:
        return self.read(path)

    def read(self, path: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples `start` to `start + length` of one signal (all of it by default): a training window of a
        long recording reads only its own bytes."""
        e = self.entries[str(path)]
        start = min(max(0, start), e.length)
        length = e.length - start if length is None else max(0, min(length, e.length - start))
        size = SAMPLE_DTYPE.itemsize
        raw = os.pread(self._fd(e.shard), length * size, (e.offset + start) * size)
        if len(raw) != length * size:
            raise OSError(
                f"{self.folder / e.shard}: shard shorter than its index says (store damaged: delete "
                f"{self.folder} to rebuild it)"
            )
        return np.frombuffer(raw, dtype=SAMPLE_DTYPE).astype(np.float32)

    def size_of(self, path: str) -> int:
        """Samples of one signal, without reading it."""
        return self.entries[str(path)].length

    def __contains__(self, path: object) -> bool:
        return str(path) in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def signal_size(signals: Mapping, path: str) -> int:
    """Samples of one decoded signal, from a SignalStore (no read) or an in-memory dict."""
    return signals.size_of(path) if isinstance(signals, SignalStore) else signals[path].size


def signal_window(signals: Mapping, path: str, start: int, length: int) -> np.ndarray:
    """Samples `start` to `start + length` of one decoded signal (fewer at its end), from a SignalStore (that
    slice only) or an in-memory dict."""
    if isinstance(signals, SignalStore):
        return signals.read(path, start, length)
    return signals[path][start : start + length]


def _decode(args: tuple[str, AudioConfig]) -> tuple[str, np.ndarray | None, str | None]:
    path, cfg = args
    try:
        return path, ClipPipeline(cfg).load(path).astype(SAMPLE_DTYPE), None
    except AudioDecodeError as e:
        return path, None, e.reason


class _ShardWriter:
    """Appends decoded signals to a temporary shard; `finish` renames data, then index, into place."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.name = folder, f"shard-{uuid.uuid4().hex}"
        self.tmp = folder / f"{self.name}.f16.tmp"
        self.file = open(self.tmp, "wb")
        self.offset, self.signals, self.failures = 0, {}, {}

    def add(self, key: str, x: np.ndarray | None, failure: str | None) -> None:
        if x is None:
            self.failures[key] = failure
            return
        self.file.write(x.tobytes())
        self.signals[key] = [self.offset, int(x.size)]
        self.offset += int(x.size)

    @property
    def bytes(self) -> int:
        return self.offset * SAMPLE_DTYPE.itemsize

    def finish(self) -> None:
        self.file.close()
        if not self.signals and not self.failures:
            self.tmp.unlink()
            return
        os.replace(self.tmp, self.folder / f"{self.name}.f16")
        index_tmp = self.folder / f"{self.name}.json.tmp"
        index_tmp.write_text(
            json.dumps(
                {
                    "format": STORE_FORMAT,
                    "shard": f"{self.name}.f16",
                    "signals": self.signals,
                    "failures": self.failures,
                }
            )
        )
        os.replace(index_tmp, self.folder / f"{self.name}.json")

    def abandon(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _read_indexes(folder: Path) -> tuple[dict[str, _Entry], dict[str, str]]:
    entries: dict[str, _Entry] = {}
    failures: dict[str, str] = {}
    for index in sorted(folder.glob("shard-*.json")):
        try:
            meta = json.loads(index.read_text())
        except (
            OSError,
            json.JSONDecodeError,
        ) as e:  # not ours, or damaged by hand: its files are decoded anew
            log.warning("%s: unreadable store index (%s); its files will be decoded again", index, e)
            continue
        if meta.get("format") != STORE_FORMAT or not (folder / meta["shard"]).is_file():
            continue
        for key, (offset, length) in meta["signals"].items():
            entries[key] = _Entry(meta["shard"], offset, length)
        failures.update(meta.get("failures", {}))
    return entries, failures


def _remove_stale_tmp(folder: Path) -> None:
    for tmp in folder.glob("*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass


def open_store(
    paths: list[str],
    cfg: AudioConfig,
    root: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    shard_bytes: int = SHARD_BYTES,
) -> tuple[SignalStore, dict[str, str]]:
    """The store of `paths` under `root`, decoding (in parallel) only the files it does not hold yet.

    Returns (store, failures by path → reason), like `load_signals`; the caller reports failures by name.
    """
    from tqdm.auto import tqdm

    folder = Path(root) / settings_key(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(folder)
    known, known_failures = _read_indexes(folder)
    uniq = list(dict.fromkeys(str(p) for p in paths))
    keys: dict[str, str] = {}
    failures: dict[str, str] = {}
    for p in uniq:
        try:
            keys[p] = file_key(p)
        except OSError as e:
            failures[p] = f"cannot read: {e.strerror or e}"
    missing = [p for p, k in keys.items() if k not in known and k not in known_failures]
    if missing:
        _decode_into(folder, missing, keys, cfg, workers, progress, shard_bytes, tqdm)
        known, known_failures = _read_indexes(folder)
    entries = {}
    for p, k in keys.items():
        if k in known:
            entries[p] = known[k]
        else:
            failures[p] = known_failures.get(k, "not decoded (the store build was interrupted)")
    log.info("signal store %s: %d file(s), %d decoded now", folder, len(entries), len(missing))
    return SignalStore(folder, entries), failures


def _decode_into(
    folder: Path,
    paths: list[str],
    keys: dict[str, str],
    cfg: AudioConfig,
    workers: int | None,
    progress: bool,
    shard_bytes: int,
    tqdm,
) -> None:
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    jobs = [(p, cfg) for p in paths]
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) >= 64 else None
    results = pool.map(_decode, jobs, chunksize=16) if pool else map(_decode, jobs)
    writer = _ShardWriter(folder)
    try:
        for path, x, failure in tqdm(
            results, total=len(jobs), desc="decoding to store", unit="file", disable=not progress
        ):
            writer.add(keys[path], x, failure)
            if writer.bytes >= shard_bytes:
                writer.finish()
                writer = _ShardWriter(folder)
        writer.finish()
    except BaseException:
        writer.abandon()  # finished shards stay: the next run decodes only what is left
        raise
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)


def available_memory() -> int:
    """Bytes the OS could give this process now (MemAvailable), or the physical total where that is
    unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_decoded_bytes(paths: list[str], cfg: AudioConfig, max_files: int = 100) -> int:
    """float32 bytes of all signals decoded at the model's rate, from the headers of up to `max_files`
    files."""
    from learner.audio import probe

    if not paths:
        return 0
    pick = np.random.default_rng(0).permutation(len(paths))[:max_files]
    seconds = []
    for i in pick:
        try:
            seconds.append(probe(paths[i]).duration_s)
        except (AudioDecodeError, OSError):
            continue  # reported by name when the signals are decoded
    mean_s = float(np.mean(seconds)) if seconds else 0.0
    return int(mean_s * cfg.sample_rate * 4 * len(paths))


def pick_signals(
    mode: str, paths: list[str], cfg: AudioConfig, processes: int = 1, share: float = 0.5
) -> str:
    """ "memory" or "disk": `mode` unless it is "auto"; then memory while the decoded signals of every local
    process fit in `share` of the available memory (in memory is a little faster and needs no disk)."""
    if mode not in ("auto", "memory", "disk"):
        raise ValueError(f"signals={mode}: expected auto, memory or disk")
    if mode != "auto":
        return mode
    need, have = estimate_decoded_bytes(paths, cfg) * max(1, processes), available_memory()
    choice = "memory" if need <= share * have else "disk"
    log.info("decoded signals ≈ %.1f GB, %.1f GB available → %s", need / 1e9, have / 1e9, choice)
    return choice
