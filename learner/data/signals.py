"""The decoded-signal store: every training file decoded and trimmed once (in parallel, optionally cached
on disk), so epochs only crop. The steps are `ClipPipeline.load`, the same the Predictor runs."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from learner.audio import AudioDecodeError, ClipPipeline
from learner.config import AudioConfig
from learner.data.keys import file_key, settings_key


def _cache_file(cache_dir: str, path: str, cfg: AudioConfig) -> Path:
    """`<cache_dir>/<settings key>/<file key>.npy`: the keys of the on-disk store (`learner.data.keys`)."""
    return Path(cache_dir) / settings_key(cfg) / f"{file_key(path)}.npy"


def load_signal(path: str, cfg: AudioConfig) -> np.ndarray:
    """Decode → mono → resample → trim (`ClipPipeline.load`): everything before the crop, which differs per
    epoch."""
    return ClipPipeline(cfg).load(path)


def _load_one(args: tuple[str, AudioConfig, str | None]) -> tuple[str, np.ndarray | None, str | None]:
    path, cfg, cache_dir = args
    try:
        if cache_dir:
            f = _cache_file(cache_dir, path, cfg)
            if f.is_file():
                return path, np.load(f), None
        x = load_signal(path, cfg)
        if cache_dir:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, x)
            os.replace(tmp, f)
        return path, x, None
    except AudioDecodeError as e:
        return path, None, e.reason


def load_signals(
    paths: list[str],
    cfg: AudioConfig,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode every file once (in parallel; from the disk cache when present).

    Returns (signals by path, failures by path → reason). Nothing is skipped silently: the caller reports
    `failures` by name.
    """
    from tqdm.auto import tqdm

    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    uniq = list(dict.fromkeys(paths))
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    jobs = [(p, cfg, str(cache_dir) if cache_dir else None) for p in uniq]
    signals: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc="decoding", unit="file", disable=not progress)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) >= 64 else None
    results = pool.map(_load_one, jobs, chunksize=16) if pool else map(_load_one, jobs)
    try:
        for path, x, err in results:
            if err is None:
                signals[path] = x
            else:
                failures[path] = err
            bar.update()
    finally:
        if pool:
            pool.shutdown()
    bar.close()
    return signals, failures
