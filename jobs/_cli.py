"""Shared argument groups and error handling for the jobs (argparse lives here, never in learner/)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from learner.config import AudioConfig

AUDIO_FLAGS = {  # flag → (AudioConfig field, type)
    "--sample-rate": ("sample_rate", int), "--duration": ("duration", float), "--n-fft": ("n_fft", int),
    "--hop": ("hop_length", int), "--n-mels": ("n_mels", int), "--f-min": ("f_min", float),
    "--f-max": ("f_max", float), "--top-db": ("top_db", float), "--trim-db": ("trim_db", float),
    "--norm": ("norm", str), "--mixup": ("mixup", float), "--spec-freq-mask": ("spec_freq_mask", int),
    "--spec-time-mask": ("spec_time_mask", int), "--spec-masks": ("spec_masks", int), "--pad": ("pad_mode", str),
    "--aug-pitch": ("aug_pitch", float),
    "--aug-stretch": ("aug_stretch", float), "--aug-gain-db": ("aug_gain_db", float),
}


def add_audio_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("audio and augmentation (defaults: learner.config.AudioConfig)")
    defaults = AudioConfig()
    for flag, (name, typ) in AUDIO_FLAGS.items():
        default = getattr(defaults, name)
        hint = f"default {default}" if flag != "--duration" else "seconds; jobs.train picks it from the data by default"
        g.add_argument(flag, type=typ, default=None, help=hint)
    g.add_argument("--aug-noise-snr", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="additive noise at a random SNR in [LO, HI] dB while training")


def audio_config(args: argparse.Namespace, base: AudioConfig | None = None) -> AudioConfig:
    changes: dict[str, Any] = {name: getattr(args, flag[2:].replace("-", "_"))
                               for flag, (name, _) in AUDIO_FLAGS.items()
                               if getattr(args, flag[2:].replace("-", "_")) is not None}
    if args.aug_noise_snr is not None:
        changes["aug_noise_snr"] = tuple(args.aug_noise_snr)
    return (base or AudioConfig()).replace(**changes)


def add_split_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("validation split (first that applies: --valid-fold, split column, groups, random)")
    g.add_argument("--valid-pct", type=float, default=0.2, help="share held out (random or by group)")
    g.add_argument("--valid-fold", type=int, default=None, help="hold out this value of the fold column")
    g.add_argument("--group-col", default=None, help="column naming a speaker/recording; never on both sides")
    g.add_argument("--group-regex", default=None, help="regex on the file name; its first group is the group")
    g.add_argument("--seed", type=int, default=42)


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """What every training job takes besides data, arch and output (jobs.train and jobs.compare)."""
    parser.add_argument("--epochs", type=int, default=15, help="chosen on held-out real speakers (bench/RESULTS.md)")
    parser.add_argument("--lr", default="3e-3", help="learning rate, or 'auto' for fastai's lr_find")
    parser.add_argument("--bs", type=int, default=32, help="batch size")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing ε of the loss")
    parser.add_argument("--min-steps", type=int, default=0,
                        help="small training sets get more epochs until they take this many optimiser steps")
    parser.add_argument("--keep-best", action="store_true",
                        help="keep the epoch with the lowest validation loss (its validation figures are then optimistic)")
    parser.add_argument("--freeze-epochs", type=int, default=1, help="epochs training only the new head (pretrained runs)")
    parser.add_argument("--cache-dir", default=None, help="also cache decoded signals on disk here")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_args(args: argparse.Namespace, **extra: Any):
    """A `TrainArgs` from the parsed fit, split and audio flags; `extra` adds what only one job has."""
    from learner.train import TrainArgs

    return TrainArgs(
        data=args.data, out=args.out, epochs=args.epochs, lr=args.lr if args.lr == "auto" else float(args.lr),
        bs=args.bs, pretrained=args.pretrained, valid_pct=args.valid_pct, valid_fold=args.valid_fold,
        group_col=args.group_col, group_regex=args.group_regex, seed=args.seed, freeze_epochs=args.freeze_epochs,
        label_smoothing=args.label_smoothing, keep_best=args.keep_best, min_steps=args.min_steps,
        workers=args.workers, cache_dir=args.cache_dir, progress=not args.quiet, auto_duration=args.duration is None,
        auto_sample_rate=args.sample_rate is None, auto_hop=args.hop is None,
        **extra,
    )


def run(main: Callable[[], int | None]) -> None:
    """Run a job: user errors become one line on stderr and exit code 1 (no traceback)."""
    from learner.audio import AudioDecodeError
    from learner.modeldir import ModelDirError

    # learner.data.ManifestError is a ValueError too; importing it here would load pandas into every job
    # (0.3 s of the ONNX cold start).
    known: tuple[type[BaseException], ...] = (AudioDecodeError, ModelDirError, ValueError,
                                              FileNotFoundError, FileExistsError, RuntimeError)
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        sys.exit(130)
    except known as e:
        print(f"earshot: {e}", file=sys.stderr)
        sys.exit(1)
