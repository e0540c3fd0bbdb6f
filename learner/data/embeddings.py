"""Backbone embeddings of training clips, computed once and cached beside the decoded signals.

One `.npy` per (file, decoding settings, backbone weights, clip length, views): the key reuses the signal
store's file identity (`file_key`: path, size, mtime) and settings key, so an edited file or a new rate is
embedded again and nothing else is. The views are fixed crops/time shifts of the clip (view 0 is what the
Predictor feeds the model), so a cached array is the same whatever run asks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from learner.audio import crop_pad
from learner.config import AudioConfig
from learner.data.store import file_key, settings_key

# (crop offset, circular shift as a fraction of the clip): view 0 is the inference view (centre crop)
VIEWS: tuple[tuple[float, float], ...] = ((0.5, 0.0), (0.0, 0.0), (1.0, 0.0), (0.5, 0.25), (0.5, -0.25))


def clip_views(signal: np.ndarray, cfg: AudioConfig, n_views: int) -> np.ndarray:
    """(n_views, n_samples): the centre crop, then crops at the ends and time-shifted copies."""
    n = cfg.n_samples
    out = []
    for offset, shift in VIEWS[:n_views]:
        x = crop_pad(signal, n, offset=offset, pad=cfg.pad_mode)
        out.append(np.roll(x, int(round(shift * n))) if shift else x)
    return np.stack(out).astype(np.float32)


def embedding_key(path: str, cfg: AudioConfig, backbone_tag: str, n_views: int) -> str:
    raw = "|".join(
        map(str, (file_key(path), settings_key(cfg), backbone_tag, cfg.n_samples, cfg.pad_mode, n_views))
    )
    return hashlib.sha1(raw.encode()).hexdigest()


def cached_embeddings(
    paths: list[str],
    signals: Mapping[str, np.ndarray],
    cfg: AudioConfig,
    embed: Callable[[np.ndarray], np.ndarray],
    backbone_tag: str,
    n_views: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(len(paths), n_views, dim) embeddings; `embed` maps (k, n_samples) clips → (k, dim)."""
    from tqdm.auto import tqdm

    folder = Path(cache_dir) if cache_dir else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in tqdm(paths, desc="embedding", unit="file", disable=not progress):
        f = folder / f"{embedding_key(path, cfg, backbone_tag, n_views)}.npy" if folder else None
        if f is not None and f.is_file():
            out.append(np.load(f))
            continue
        e = np.asarray(embed(clip_views(signals[path], cfg, n_views)), dtype=np.float32)
        if f is not None:
            tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, e)
            os.replace(tmp, f)
        out.append(e)
    return np.stack(out)
