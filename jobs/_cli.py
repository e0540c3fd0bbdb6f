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
    "--spec-time-mask": ("spec_time_mask", int), "--aug-pitch": ("aug_pitch", float),
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
