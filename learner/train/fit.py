"""Build the fastai Learner, fit, keep the best epoch, and write the model directory.

The directory holds everything needed to use and judge the model: model.safetensors, config.json
(arch, classes, AudioConfig, training args, versions), metrics.json, history.csv, confusion_matrix.png,
curves.png, and model.pkl (fastai export, for fastai users; never loaded by default).
"""

from __future__ import annotations

import logging
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import learner.train.frozen as frozen
from learner import __version__
from learner.audio import ClipPipeline, crop_pad
from learner.config import AudioConfig
from learner.data.manifest import add_groups, files_digest, load_manifest, split_indices
from learner.data.store import signal_size
from learner.folder import ModelConfig, save_model_dir, strip_local_paths, write_json
from learner.model import create_model, get_arch, n_params
from learner.model.frontend import FrontEnd
from learner.model.pretrained import load_pretrained
from learner.model.registry import ArchSpec, classifier_keys
from learner.report.validation import decide, threshold_rule, write_multilabel_outputs
from learner.train.args import TrainArgs, TrainResult, train_record
from learner.train.distributed import accelerated, check_precision, is_main_process
from learner.train.notes import epoch_line, warn_not_evaluated
from learner.train.pickled import export_pickle
from learner.train.settings import (
    adopt_front_end,
    batch_size,
    epochs_for,
    pick_duration,
    pick_hop,
    pick_sample_rate,
    transfers_from_earshot,
)
from learner.train.versions import versions

log = logging.getLogger(__name__)


def dataset_stats(
    frontend: FrontEnd, signals: list[np.ndarray], cfg: AudioConfig, max_clips: int = 512
) -> tuple[float, float]:
    """Mean and std of the un-normalised features over (up to `max_clips`) centre-cropped training clips."""
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(signals))[:max_clips]
    total, total_sq, count = 0.0, 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(pick), 64):
            batch = np.stack(
                [crop_pad(signals[j], cfg.n_samples, pad=cfg.pad_mode) for j in pick[i : i + 64]]
            )
            feats = frontend.raw(torch.from_numpy(batch).unsqueeze(1)).double()
            total += feats.sum().item()
            total_sq += (feats**2).sum().item()
            count += feats.numel()
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))


def param_groups(model: torch.nn.Module, spec: ArchSpec) -> list[list[torch.nn.Parameter]]:
    """Body and head (the registry's `classifier`: exactly what starting weights leave out), so `fine_tune`
    trains the new head alone first."""
    head = set(classifier_keys(spec, dict(model.named_parameters())))
    params = list(model.named_parameters())
    return [[p for n, p in params if n not in head], [p for n, p in params if n in head]]


def prepare_data(args: TrainArgs, cfg: AudioConfig):
    """Manifest → split → decoded signals. Unreadable files are reported by name and left out."""
    from learner.data.annotations import is_annotations
    from learner.data.labels import check_class_count, resolve_task

    if is_annotations(args.data):
        from learner.train.boxes import prepare_box_data

        return prepare_box_data(args, cfg)
    df = add_groups(load_manifest(args.data), args.group_col, args.group_regex)
    task = resolve_task(df, args.task, args.data)
    check_class_count(df, args.data)  # before decoding: minutes for a large set
    train_idx, valid_idx = split_indices(
        df, valid_pct=args.valid_pct, seed=args.seed, valid_fold=args.valid_fold
    )
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ValueError(
            f"{args.data}: the split left {len(train_idx)} training and {len(valid_idx)} validation files"
        )
    split = {"train_files_sha256": files_digest(df.iloc[train_idx])}  # the split's files, readable or not
    used = df.iloc[np.concatenate([train_idx, valid_idx])].copy()
    used["is_valid"] = [False] * len(train_idx) + [True] * len(valid_idx)
    if args.auto_sample_rate:
        cfg.sample_rate = pick_sample_rate(list(used.loc[~used["is_valid"], "path"]))
    from learner.train.loading import decode_signals

    signals, failures = decode_signals(args, list(used["path"]), cfg)
    if failures:
        lines = "\n".join(f"  {p}: {why}" for p, why in failures.items())
        log.warning("%d file(s) could not be read and are excluded from training:\n%s", len(failures), lines)
        used = used[~used["path"].isin(failures)]
    split.update(n_train=int((~used["is_valid"]).sum()), n_valid=int(used["is_valid"].sum()))  # files used
    from learner.train.multilabel import split_classes

    classes = split_classes(used, task, args.data)
    used = used.reset_index(drop=True)
    used.attrs["split"] = split  # for config.json: lets jobs.evaluate recognise the training data later
    used.attrs["task"] = task
    return used, signals, failures, classes


def check_start(args: TrainArgs) -> None:
    """Make sure the starting weights can be had before any audio is decoded (minutes, for a large set):
    a backbone's own weights (`frozen.check_backbone_weights`), else those `pretrained` names
    (`check_pretrained`: ImageNet from the cache or downloaded now; an offline machine fails fast)."""
    if frozen.check_backbone_weights(args):
        return
    from learner.model.pretrained import check_pretrained

    check_pretrained(args.pretrained, get_arch(args.arch))


def build_learner(
    args: TrainArgs, cfg: AudioConfig, used: pd.DataFrame, signals: dict, classes: list[str], out: Path
):
    import fastai.callback.schedule  # noqa: F401  (adds fit_one_cycle, fine_tune, lr_find to Learner)
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import Learner

    from learner.train.loading import SignalList

    spec = get_arch(args.arch)
    frontend = FrontEnd(cfg, spec.input)
    if cfg.norm == "dataset" and spec.input != "waveform" and not transfers_from_earshot(args.pretrained):
        train_sigs = SignalList(_items(used.loc[~used["is_valid"]], cfg), signals, ClipPipeline(cfg))
        cfg.norm_stats = dataset_stats(frontend, train_sigs, cfg)
        frontend = FrontEnd(cfg, spec.input)
    dls, loss, metrics = _dataloaders(args, cfg, frontend, used, signals, classes)
    net = create_model(args.arch, len(classes), cfg)
    loaded = load_pretrained(net, spec, args.pretrained)
    learn = Learner(
        dls,
        net,
        loss_func=loss,
        metrics=metrics,
        path=out,
        model_dir=".checkpoints",
        splitter=partial(param_groups, spec=spec),
    )
    if not args.progress:
        learn.remove_cb(ProgressCallback)
        learn.logger = partial(epoch_line, learn)  # fastai would print each epoch as a raw Python list
    return learn, frontend, loaded


def _items(used: pd.DataFrame, cfg: AudioConfig) -> list:
    """The training items of `used`: file paths, or `Window`s of long recordings (training from boxes)."""
    if not used.attrs.get("windows"):
        return list(used["path"])
    from learner.data.box_windows import WindowReader

    read = WindowReader(cfg.n_samples)
    return [read(r) for _, r in used.iterrows()]


def _dataloaders(
    args: TrainArgs, cfg: AudioConfig, frontend: FrontEnd, used: pd.DataFrame, signals: dict, classes: list
) -> tuple[Any, Any, list]:
    """The fastai DataLoaders of the manifest's split, with the loss and metrics that suit the task."""
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import ColReader, ColSplitter

    from learner.data.store import SignalStore
    from learner.train.loading import loader_options, loader_workers, numpy_collate
    from learner.train.transforms import AudioBlock

    block = AudioBlock(cfg, frontend, signals, seed=args.seed)
    if used.attrs.get("task") == "multi":
        from learner.train.multilabel import multi_label_parts

        y_block, get_y, loss, metrics = multi_label_parts(classes)
    else:
        y_block, get_y = CategoryBlock(vocab=classes), ColReader("label")
        loss, metrics = _single_label_loss(args.label_smoothing, len(classes))
    if used.attrs.get("windows"):  # training from boxes: a row is a window of a long recording
        from learner.data.box_windows import WindowReader

        get_x = WindowReader(cfg.n_samples)
    else:
        get_x = ColReader("path")
    dblock = DataBlock(blocks=(block, y_block), get_x=get_x, get_y=get_y, splitter=ColSplitter("is_valid"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = loader_workers(args.loader_workers, "disk" if isinstance(signals, SignalStore) else "memory")
    dls = dblock.dataloaders(
        used,
        bs=batch_size(args.bs, int((~used["is_valid"]).sum())),
        device=device,
        shuffle=True,
        drop_last=True,
        create_batch=numpy_collate,
        **loader_options(workers),
    )
    return dls, loss, metrics


def _single_label_loss(label_smoothing: float, n_classes: int) -> tuple[Any, list]:
    from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropyFlat
    from fastai.metrics import accuracy, top_k_accuracy

    k3 = min(3, n_classes)

    def top3(inp, targ):
        return top_k_accuracy(inp, targ, k=k3)

    loss = LabelSmoothingCrossEntropyFlat(eps=label_smoothing) if label_smoothing else CrossEntropyLossFlat()
    return loss, [accuracy, top3]


def train(args: TrainArgs, cfg: AudioConfig | None = None) -> TrainResult:
    """Train one model into `args.out`: a new folder, or (`overwrite`) one an earlier run wrote; a failed run
    leaves no partial model folder behind (`learner.train.outdir`)."""
    from learner.train.outdir import owned_output

    out = Path(args.out).absolute()  # fastai joins its own paths to learn.path: a relative out would nest
    with owned_output(out, args.overwrite, is_main_process()):  # only the first process writes the folder
        return _train(args, cfg, out)


def _train(args: TrainArgs, cfg: AudioConfig | None, out: Path) -> TrainResult:
    from fastai.torch_core import set_seed

    check_precision(args.precision, args.channels_last)  # --fp16 on a CPU: refused before any folder
    # a copy: norm_stats and a picked duration are this run's, not the caller's
    cfg = (cfg or AudioConfig()).replace()
    out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed, reproducible=True)
    check_start(args)
    asked = (args, cfg.replace())
    args, cfg = adopt_front_end(args, cfg)
    used, signals, failures, classes = prepare_data(args, cfg)
    _settings_from_data(args, cfg, used, signals)
    if frozen.uses_frozen_head(args, used):  # a backbone arch: a head on frozen embeddings, or scratch
        return frozen.run(args, cfg, used, signals, failures, classes, asked, lambda a, c: _train(a, c, out))
    learn, frontend, loaded = build_learner(args, cfg, used, signals, classes, out)
    (probs, targets), timing = _fit(learn, args, cfg, used, out)
    task = used.attrs["task"]
    thresholds, metrics = decide(task, probs.numpy(), targets.numpy(), classes, args.target_precision)
    metrics.update(
        split="valid",
        **timing,
        n_train=int((~used["is_valid"]).sum()),
        n_valid=int(used["is_valid"].sum()),
        excluded_files=failures,
    )
    warn_not_evaluated(metrics, classes)
    if not is_main_process():  # only the first process writes the model directory
        return TrainResult(out, metrics, pd.DataFrame(), failures, learn)
    history = pd.read_csv(out / "history.csv")
    metrics["best_epoch"] = int(history["valid_loss"].idxmin())
    config = model_config(args, cfg, learn, used, classes, loaded, thresholds)
    learn.model.eval()
    save_model_dir(out, learn.model.state_dict(), config.to_dict())
    write_json(out / "metrics.json", metrics)
    if task == "multi":
        from learner.report.plots import plot_curves

        write_multilabel_outputs(out, metrics, probs.numpy(), targets.numpy(), classes, thresholds)
        plot_curves(history, out / "curves.png")
    else:
        _plots(out, metrics, history, classes)
    if args.pickle:
        export_pickle(learn, out)
    shutil.rmtree(out / ".checkpoints", ignore_errors=True)
    return TrainResult(out, metrics, history, failures, learn)


def _settings_from_data(args: TrainArgs, cfg: AudioConfig, used: pd.DataFrame, signals: dict) -> None:
    """The clip length, hop and rate a job left to the data (`auto_*`), picked from the training split."""
    if args.auto_duration and not used.attrs.get("windows"):  # windows: picked from the boxes already
        lengths = [signal_size(signals, p) / cfg.sample_rate for p in used.loc[~used["is_valid"], "path"]]
        cfg.duration = pick_duration(lengths)
        log.info("clip length %g s (90th percentile of the trimmed training sounds)", cfg.duration)
    if args.auto_hop:
        cfg.hop_length = pick_hop(cfg)
    if args.auto_sample_rate or args.auto_hop:
        log.info(
            "%d Hz, hop %d → %d frames per clip (from the data)",
            cfg.sample_rate,
            cfg.hop_length,
            cfg.n_frames,
        )


def _fit(learn: Any, args: TrainArgs, cfg: AudioConfig, used: pd.DataFrame, out: Path) -> tuple:
    """Fit (fine-tune from pretrained weights, else one cycle from scratch); then the validation
    predictions from every process (the whole validation set) and the time it took."""
    from fastai.callback.mixup import MixUp
    from fastai.callback.progress import CSVLogger
    from fastai.callback.tracker import SaveModelCallback

    lr = args.lr
    if lr == "auto":
        lr = float(learn.lr_find(show_plot=False).valley)
        log.info("lr_find suggests %.2e", lr)
    lr = float(lr)
    # one history, by the first process
    cbs = [CSVLogger(fname=str(out / "history.csv"))] if is_main_process() else []
    if args.keep_best:  # opt-in: picking the epoch on the validation split makes its figures optimistic
        cbs.append(SaveModelCallback(monitor="valid_loss", fname="best"))
    if cfg.mixup > 0:
        cbs.append(MixUp(cfg.mixup))
    epochs = epochs_for(args.epochs, int((~used["is_valid"]).sum()), args.bs, args.min_steps)
    if epochs != args.epochs:
        log.info("%d epochs (a small set: at least %d optimiser steps)", epochs, args.min_steps)
    start, start_cpu = time.time(), time.process_time()
    with accelerated(learn, args.precision, args.channels_last):
        if args.pretrained != "none":
            learn.fine_tune(epochs, base_lr=lr, freeze_epochs=args.freeze_epochs, cbs=cbs)
        else:
            learn.fit_one_cycle(epochs, lr, cbs=cbs)
        timing = dict(
            train_time_s=round(time.time() - start, 3), train_cpu_s=round(time.process_time() - start_cpu, 3)
        )
        # softmax, or sigmoid for multi-label (the loss's activation)
        return learn.get_preds(ds_idx=1), timing


def model_config(
    args: TrainArgs,
    cfg: AudioConfig,
    learn: Any,
    used: pd.DataFrame,
    classes: list[str],
    loaded: str,
    thresholds: dict[str, float],
) -> ModelConfig:
    """config.json of the trained model: no local paths (it is published with the model)."""
    return ModelConfig(
        earshot_version=__version__,
        arch=args.arch,
        input=get_arch(args.arch).input,
        classes=classes,
        task=used.attrs["task"],
        thresholds=thresholds,
        thresholds_rule=threshold_rule(args.target_precision),
        audio=cfg,
        params=n_params(learn.model),
        pretrained=strip_local_paths(loaded),
        split=used.attrs.get("split"),
        train=train_record(args, learn),
        versions=versions(),
        backbone=frozen.fine_tuned_record(args),
    )


def _plots(out: Path, metrics: dict, history: pd.DataFrame, classes: list[str]) -> None:
    from learner.report.plots import plot_confusion, plot_curves

    plot_confusion(
        metrics["confusion"],
        classes,
        out / "confusion_matrix.png",
        title=f"validation · accuracy {metrics['accuracy']:.3f}",
    )
    plot_curves(history, out / "curves.png")
