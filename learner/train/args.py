"""`TrainArgs`: what a training run needs besides the `AudioConfig`, and what it returns.

Each field that a job offers as a flag says so in its metadata (`learner.config.flag`: help, flag name,
group), so `jobs._cli` builds the flags from here and every default is declared once. Its own module so
that the settings that pick defaults from the data (`learner.train.settings`) and the fit itself both
import it, and neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learner.config import option, required

if TYPE_CHECKING:
    import pandas as pd


def learning_rate(text: str | float) -> float | str:
    """A learning rate, or "auto" (fastai's lr_find picks it)."""
    return "auto" if str(text).strip() == "auto" else float(text)


SPLIT = "split"
SCALING = "scaling"
BOXES = "annotations"  # training from boxes on long recordings (learner.train.boxes)
RUN = "run"  # what jobs.train offers itself (jobs.compare has its own --archs, --out and --pretrained)


@dataclass
class TrainArgs:
    """What a training run needs besides the AudioConfig. Defaults are the ones the README promises."""

    data: str = required(
        "folder-per-class, CSV manifest (path,label or path,labels[,fold|split|group]), recipe name, or "
        "annotated long recordings (a folder with Raven/Audacity tables, a table, or a box CSV)",
        group="data",
    )
    out: str = required("model directory to write", aliases=("--output",), group=RUN)
    arch: str = option("xresnet18", "architecture (the model registry)", group=RUN)
    epochs: int = option(15, "chosen on held-out real speakers (bench/RESULTS.md)")
    lr: float | str = option(3e-3, "learning rate, or 'auto' for fastai's lr_find", type=learning_rate)
    bs: int = option(32, "batch size")
    pretrained: str = option(
        "imagenet", "imagenet (timm resnet-d weights, needs the network), none, a weights file, or an "
        "earshot model dir/Hub id", group=RUN,
    )
    valid_pct: float = option(0.2, "share held out (random or by group)", group=SPLIT)
    valid_fold: int | None = option(None, "hold out this value of the fold column", type=int, group=SPLIT)
    group_col: str | None = option(
        None, "column naming a speaker/recording; never on both sides", group=SPLIT,
    )
    group_regex: str | None = option(
        None, "regex on the file name; its first group is the group", group=SPLIT,
    )
    seed: int = option(42, "random split and training seed", group=SPLIT)
    min_overlap: float = option(
        0.5, "a window takes a box's label when they overlap by at least this share of the shorter of the "
        "two", metavar="SHARE", group=BOXES,
    )
    background_ratio: float = option(
        1.0, "background windows drawn per labelled window from unannotated stretches",
        metavar="R", group=BOXES,
    )
    fully_annotated: bool = option(
        True, "every sound of a recording with a table is boxed, so its unboxed stretches are background "
        "(--no-fully-annotated: only explicit negative rows are)", group=BOXES,
    )
    window_hop: float | None = option(
        None, "seconds between training windows (default: half a clip, as scoring)",
        type=float, metavar="S", group=BOXES,
    )
    label_column: str | None = option(
        None, "the Raven column holding the label (default: Annotation, Label, Species or Class)",
        metavar="NAME", group=BOXES,
    )
    freeze_epochs: int = option(1, "epochs training only the new head (pretrained runs)")
    label_smoothing: float = option(0.1, "label smoothing ε of the loss")
    min_steps: int = option(
        0, "small training sets get more epochs until they take this many optimiser steps",
    )
    keep_best: bool = option(
        False, "keep the epoch with the lowest validation loss (its validation figures are then optimistic)",
    )
    workers: int | None = option(None, "decoding processes (default: CPU count)", type=int)
    cache_dir: str | None = option(None, "also cache decoded signals on disk here")
    pickle: bool = option(True, "also write the fastai model.pkl export (--no-pickle skips it)", group=RUN)
    progress: bool = True  # progress bars (jobs: off with --quiet)
    auto_duration: bool = False  # pick the clip length from the training data (jobs.train without --duration)
    # the files' own rate, at most 22.05 kHz (jobs.train without --sample-rate)
    auto_sample_rate: bool = False
    auto_hop: bool = False  # a hop that gives a clip ~100 frames (jobs.train without --hop)
    task: str = option(
        "auto", "multi = several labels per clip (sigmoid outputs); auto = multi when a manifest row has "
        "more or fewer than one label (a `labels` column or 0/1 class columns)",
        choices=("auto", "single", "multi"), group=RUN,
    )
    target_precision: float | None = option(
        None, "per-class thresholds that reach precision P on validation (default: maximum F1)",
        type=float, metavar="P", group=RUN,
    )
    signals: str = option(
        "auto", "keep decoded signals in memory or in the on-disk store; auto: disk when they would not fit",
        choices=("auto", "memory", "disk"), group=SCALING,
    )
    store: str | None = option(
        None, "on-disk signal store folder, reused across runs (implies --signals disk; default: "
        "$EARSHOT_STORE or ~/.cache/earshot/signals)", metavar="DIR", group=SCALING,
    )
    loader_workers: int | None = option(
        None, "DataLoader processes that crop and augment (default: 0 in memory, spare cores with the "
        "store)", type=int, group=SCALING,
    )
    head: str = option(
        "auto", "with a backbone arch (aisfx, panns_cnn10): frozen = a linear head on cached embeddings "
        "(seconds), finetune = head first, then the whole network; auto = frozen when inner CV on the "
        "training split shows the backbone helps, else xresnet18 from scratch",
        choices=("auto", "frozen", "finetune"), group=RUN,
    )
    head_views: int = option(1, "frozen head: crops/time shifts embedded per training clip (1-5)", group=RUN)
    precision: str = option(
        "fp32", "mixed precision (GPU only)", choices=("fp32", "fp16", "bf16"), group=SCALING,
    )
    channels_last: bool = option(False, "channels_last memory layout (GPU only)", group=SCALING)
    overwrite: bool = option(
        False, "replace the model an earlier run wrote in --out (a folder earshot did not write is refused)",
        group=RUN,
    )


# not in config.json
MACHINE_ARGS = ("progress", "workers", "out", "cache_dir", "store", "loader_workers", "overwrite")


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    history: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    learner: Any = None


def train_record(args: TrainArgs, learn: Any) -> dict[str, Any]:
    """config.json's `train`: the arguments (no local paths, no machine settings) and how many processes
    trained on `bs` each (`accelerate launch --num_processes N`): what reproduces the run."""
    from dataclasses import asdict

    from learner.folder import strip_local_paths
    from learner.train.distributed import world_size

    record = strip_local_paths({k: v for k, v in asdict(args).items() if k not in MACHINE_ARGS})
    return {**record, "processes": world_size(), "effective_bs": int(learn.dls.bs) * world_size()}
