"""`TrainArgs`: what a training run needs besides the `AudioConfig`, and what it returns.

Its own module so that the settings that pick defaults from the data (`learner.train.settings`) and the
fit itself both import it, and neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class TrainArgs:
    """What a training run needs besides the AudioConfig. Defaults are the ones the README promises."""

    data: str
    out: str
    arch: str = "xresnet18"
    epochs: int = 15
    lr: float | str = 3e-3
    bs: int = 32
    pretrained: str = "imagenet"
    valid_pct: float = 0.2
    valid_fold: int | None = None
    group_col: str | None = None
    group_regex: str | None = None
    seed: int = 42
    freeze_epochs: int = 1
    label_smoothing: float = 0.1
    min_steps: int = 0  # small sets train for more epochs until they take this many optimiser steps
    keep_best: bool = False  # keep the lowest-valid-loss epoch instead of the last one
    workers: int | None = None
    cache_dir: str | None = None
    pickle: bool = True
    progress: bool = True
    auto_duration: bool = False  # pick the clip length from the training data (jobs.train without --duration)
    auto_sample_rate: bool = (
        False  # the training files' own rate, at most 22.05 kHz (jobs.train without --sample-rate)
    )
    auto_hop: bool = False  # a hop that gives a clip ~100 frames (jobs.train without --hop)
    task: str = "auto"  # "single", "multi" (sigmoid outputs, BCE), or "auto": multi when a row has ≠ 1 label
    target_precision: float | None = None  # thresholds: precision to reach per class instead of maximum F1
    signals: str = "auto"  # decoded signals in "memory" or in the "disk" store; auto: by size vs free memory
    store: str | None = None  # the on-disk store's folder (default: learner.train.loading.default_store_dir)
    loader_workers: int | None = (
        None  # DataLoader processes that crop (default: 0 in memory, spare cores on disk)
    )
    precision: str = "fp32"  # fp16 / bf16 mixed precision (GPU only)
    channels_last: bool = False  # GPU memory layout for the 2-D convolutions


MACHINE_ARGS = ("progress", "workers", "out", "cache_dir", "store", "loader_workers")  # not in config.json


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    history: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    learner: Any = None
