"""Where training's signals live and who crops them: decoded in memory or in the on-disk store
(`learner.data.store`), and crops plus waveform augmentation in DataLoader worker processes when the store
is on disk. The batch transforms (features, SpecAugment) and mixup stay on the device in the main process."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner.config import AudioConfig
from learner.data.box_windows import Window
from learner.data.store import open_store, pick_signals, signal_window
from learner.train.distributed import local_world_size, main_first

log = logging.getLogger(__name__)


def default_store_dir() -> Path:
    """$EARSHOT_STORE, else the user's cache folder (shared by every run on the machine)."""
    if os.environ.get("EARSHOT_STORE"):
        return Path(os.environ["EARSHOT_STORE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earshot" / "signals"


def signals_mode(mode: str, paths: list[str], cfg: AudioConfig, store: str | None) -> str:
    """ "memory" or "disk". Naming a store folder means disk unless memory is asked for."""
    if mode == "auto" and store:
        return "disk"
    return pick_signals(mode, paths, cfg, processes=local_world_size())


def store_signals(
    paths: list[str], cfg: AudioConfig, store: str | None, workers: int | None, progress: bool
) -> tuple[Mapping[str, np.ndarray], dict[str, str]]:
    """The signals from the on-disk store; under a launcher the first process decodes, the others then
    read."""
    root = Path(store) if store else default_store_dir()
    return main_first(lambda: open_store(paths, cfg, root, workers=workers, progress=progress))


def decode_signals(
    args: Any, paths: list[str], cfg: AudioConfig
) -> tuple[Mapping[str, np.ndarray], dict[str, str]]:
    """(signals by path, failures by path → reason): in memory or from the on-disk store, as `args.signals`
    and `args.store` say (a `TrainArgs`)."""
    if signals_mode(args.signals, paths, cfg, args.store) == "memory":
        from learner.data.signals import load_signals

        return load_signals(
            paths, cfg, cache_dir=args.cache_dir, workers=args.workers, progress=args.progress
        )
    return store_signals(paths, cfg, args.store or args.cache_dir, args.workers, args.progress)


def loader_workers(requested: int | None, mode: str) -> int:
    """DataLoader worker processes: as asked; by default none for signals in memory (forked workers would
    copy the dict page by page as they touch its reference counts), one per spare core for the store."""
    if requested is not None:
        return max(0, requested)
    if mode == "memory":
        return 0
    return min(4, max(0, (os.cpu_count() or 1) // max(1, local_world_size()) - 1))


def reseed_worker_transforms() -> None:
    """In each DataLoader worker, at each epoch: new generators for the random crop and augmentation.

    Forked workers would otherwise all start from the main process's generator state, which does not move
    while they work: every worker and every epoch would draw the same crops. torch gives each worker a
    seed that differs per worker and per epoch.
    """
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    dl = getattr(info.dataset.d, "dl", info.dataset.d)  # fastai's DistributedDL wraps the real loader
    for i, tfm in enumerate(getattr(dl.after_item, "fs", [])):
        if isinstance(getattr(tfm, "rng", None), np.random.Generator):
            tfm.rng = np.random.default_rng([info.seed % 2**63, i])


def loader_options(workers: int) -> dict[str, Any]:
    """Keyword arguments for fastai's `dataloaders`: workers, their reseeding, pinned memory on a GPU."""
    return {
        "num_workers": workers,
        "wif": reseed_worker_transforms,
        "pin_memory": torch.cuda.is_available() and workers > 0,
        "persistent_workers": False,
    }


class SignalList:
    """A list-like view of some signals that reads each one only when indexed (the store stays on disk).
    An item is a path, or a `Window` of a long recording (its samples, trimmed as `pipeline` trims)."""

    def __init__(self, paths: list, signals: Mapping[str, np.ndarray], pipeline: Any = None) -> None:
        self.paths, self.signals, self.pipeline = paths, signals, pipeline

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        item = self.paths[i]
        if isinstance(item, Window):
            return self.pipeline.trim(signal_window(self.signals, item.path, item.offset, item.size))
        return self.signals[item]


def numpy_collate(items: list[tuple]) -> tuple:
    """Stack each field with NumPy (fastai restores the types afterwards).

    torch's parallel `stack` of 32 × 5 s clips took 210 ms with 2 threads when the other core was busy and
    1.6 ms with one; `np.stack` takes 1.5 ms either way, so collation never becomes the bottleneck.
    """
    out = []
    for column in zip(*items, strict=True):
        if isinstance(column[0], torch.Tensor):
            out.append(torch.from_numpy(np.stack([np.asarray(t.detach().cpu()) for t in column])))
        else:
            from fastai.data.load import fa_collate

            out.append(fa_collate(list(column)))
    return tuple(out)
