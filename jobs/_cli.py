"""Shared argument groups and error handling for the jobs (argparse lives here, never in learner/)."""

from __future__ import annotations

import argparse
import logging
import re
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


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """What every training job takes besides data, arch and output (jobs.train and jobs.compare)."""
    parser.add_argument("--epochs", type=int, default=10, help="10: best on held-out voices (docs/compare.md)")
    parser.add_argument("--lr", default="3e-3", help="learning rate, or 'auto' for fastai's lr_find")
    parser.add_argument("--bs", type=int, default=32, help="batch size")
    parser.add_argument("--freeze-epochs", type=int, default=1, help="epochs training only the new head (pretrained runs)")
    parser.add_argument("--cache-dir", default=None, help="also cache decoded signals on disk here")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_args(args: argparse.Namespace, **extra: Any):
    """A `TrainArgs` from the parsed fit, split and audio flags; `extra` adds what only one job has."""
    from learner.train.fit import TrainArgs

    return TrainArgs(
        data=args.data, out=args.out, epochs=args.epochs, lr=args.lr if args.lr == "auto" else float(args.lr),
        bs=args.bs, pretrained=args.pretrained, valid_pct=args.valid_pct, valid_fold=args.valid_fold,
        group_col=args.group_col, group_regex=args.group_regex, seed=args.seed, freeze_epochs=args.freeze_epochs,
        workers=args.workers, cache_dir=args.cache_dir, progress=not args.quiet, auto_duration=args.duration is None,
        **extra,
    )


# learner/ names the fields of its calls in errors (`pretrained=none`, `resume=True`); a job says them as flags.
FIELD_FLAGS = {name: flag for flag, (name, _) in AUDIO_FLAGS.items()} | {
    "source": "--from", "data": "--data", "n_folds": "--n-folds", "archs": "--archs", "subset": "--subset",
    "output": "--output", "out": "--out", "windows": "--windows", "resume": "--resume", "overwrite": "--overwrite",
    "pretrained": "--pretrained", "arch": "--arch", "valid_fold": "--valid-fold", "group_col": "--group-col",
    "group_regex": "--group-regex", "token": "--token", "revision": "--revision", "classes": "--classes",
    "verify": "--no-verify", "backend": "--backend", "int8": "--int8",
}
_FIELD = re.compile(r"\b(" + "|".join(sorted(FIELD_FLAGS, key=len, reverse=True)) + r")=(True\b|False\b)?")


def as_flags(message: str) -> str:
    """A library message in command-line words: `pretrained=none` → `--pretrained none`, `resume=True` → `--resume`,
    `n_folds= to` → `--n-folds to`."""
    def flag(m: re.Match) -> str:
        bare = m[2] or m.end() == len(m.string) or m.string[m.end()] in " ,;:)"
        return FIELD_FLAGS[m[1]] + ("" if bare else " ")

    return _FIELD.sub(flag, message)


class _Lines(logging.Handler):
    """learner/ logs; a job prints each record as one `earshot: …` line (warnings to stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        print(f"earshot: {as_flags(record.getMessage())}", file=stream, flush=True)


def log_to_console(quiet: bool = False) -> None:
    """Show learner/'s INFO (progress notes) and WARNING records as lines; `quiet` keeps warnings only."""
    lib = logging.getLogger("learner")
    if not any(isinstance(h, _Lines) for h in lib.handlers):
        lib.addHandler(_Lines())
    lib.setLevel(logging.WARNING if quiet else logging.INFO)
    lib.propagate = False


def run(main: Callable[[], int | None]) -> None:
    """Run a job: user errors become one line on stderr and exit code 1 (no traceback); library messages
    that name fields (`pretrained=none`) are said as flags (`--pretrained none`)."""
    from learner.audio.decode import AudioDecodeError
    from learner.modeldir import ModelDirError

    # learner.data.manifest.ManifestError is a ValueError too; importing it here would load pandas into every job
    # (0.3 s of the ONNX cold start).
    known: tuple[type[BaseException], ...] = (AudioDecodeError, ModelDirError, ValueError,
                                              FileNotFoundError, FileExistsError, RuntimeError)
    log_to_console(quiet="--quiet" in sys.argv)
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        sys.exit(130)
    except known as e:
        print(f"earshot: {as_flags(str(e))}", file=sys.stderr)
        sys.exit(1)
