"""Shared argument groups and error handling for the jobs (argparse lives here, never in learner/)."""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learner.config import AudioConfig

AUDIO_FLAGS = {  # flag → (AudioConfig field, type)
    "--sample-rate": ("sample_rate", int),
    "--duration": ("duration", float),
    "--n-fft": ("n_fft", int),
    "--hop": ("hop_length", int),
    "--n-mels": ("n_mels", int),
    "--f-min": ("f_min", float),
    "--f-max": ("f_max", float),
    "--top-db": ("top_db", float),
    "--trim-db": ("trim_db", float),
    "--norm": ("norm", str),
    "--mixup": ("mixup", float),
    "--spec-freq-mask": ("spec_freq_mask", int),
    "--spec-time-mask": ("spec_time_mask", int),
    "--spec-masks": ("spec_masks", int),
    "--pad": ("pad_mode", str),
    "--aug-pitch": ("aug_pitch", float),
    "--aug-stretch": ("aug_stretch", float),
    "--aug-gain-db": ("aug_gain_db", float),
}


TOP_K = 5  # labels per file in every job and the demo


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every `--help` shows each option's default; docstrings keep their line breaks.

    A default of None or False says nothing (the help text tells what happens then), so it is not shown.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or action.default == []
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser with earshot's help format: the module docstring's first line as description."""
    return argparse.ArgumentParser(
        prog=prog, description=doc.strip().splitlines()[0], formatter_class=HelpFormatter
    )


@functools.cache
def archs() -> dict[str, str | None]:
    """Architecture name → its ImageNet weights Hub id, read from the `@register(...)` lines of
    learner/model/*.py.

    Read, not imported: the registry module builds torch networks, and importing torch takes seconds,
    while `--help` and `--arch` checks should answer at once. A test keeps this equal to `list_archs()`.
    """
    return {name: kw.get("weights") for name, kw in _registered().items()}


def backbone_archs() -> dict[str, str]:
    """Architecture name → the pretrained audio backbone it wraps (`@register(..., backbone=...)`), read
    like `archs()`: their starting weights are the backbone's, not ImageNet's."""
    return {name: kw["backbone"] for name, kw in _registered().items() if kw.get("backbone")}


def _registered() -> dict[str, dict]:
    import ast
    import importlib.util

    spec = importlib.util.find_spec("learner.model")
    found: dict[str, dict] = {}
    for source in sorted(Path(spec.origin).parent.glob("*.py")):
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register":
                    kw = {
                        k.arg: k.value.value
                        for k in deco.keywords
                        if k.arg and isinstance(k.value, ast.Constant)
                    }
                    first = (
                        deco.args[0].value if deco.args and isinstance(deco.args[0], ast.Constant) else None
                    )
                    found[kw.get("name") or first or node.name] = kw
    if not found:  # an unusual layout: ask the registry itself
        from learner.model import get_arch, list_archs

        found = {a: {"weights": get_arch(a).weights, "backbone": get_arch(a).backbone} for a in list_archs()}
    return dict(sorted(found.items()))


def backends() -> list[str]:
    """`learner.serve.backends.BACKEND_CHOICES`: the backend table plus "auto", without the opt-in pickle."""
    from learner.serve.backends import BACKEND_CHOICES

    return list(BACKEND_CHOICES)


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default="auto",
        choices=backends(),
        help="auto = model.onnx when the folder has it, else torch "
        "(model.int8.onnx when it is the only weights)",
    )


def add_quiet_arg(
    p: argparse.ArgumentParser, what: str = "no progress bars or notes, only results and errors"
) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help=what)


def add_top_k_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top-k", type=int, default=TOP_K, help="labels per file")


def add_inputs_arg(p: argparse.ArgumentParser, what: str) -> None:
    """Audio to read, positional (`jobs.predict a.wav b/`) or with `--input` (the older spelling of
    jobs.score)."""
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=what)
    p.add_argument(
        "--input",
        dest="more_inputs",
        nargs="+",
        action="extend",
        default=[],
        metavar="INPUT",
        help="the same, as an option",
    )


def inputs_of(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    items = [*args.inputs, *args.more_inputs]
    if not items:
        p.error("no input: name audio files, folders, globs or manifests (positional, or --input)")
    return items


def add_audio_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("audio and augmentation (defaults: learner.config.AudioConfig)")
    defaults = AudioConfig()
    for flag, (name, typ) in AUDIO_FLAGS.items():
        default = getattr(defaults, name)
        hint = (
            f"default: {default}"
            if flag != "--duration"
            else "seconds; jobs.train picks it from the data by default"
        )
        g.add_argument(flag, type=typ, default=None, help=hint)
    g.add_argument(
        "--aug-noise-snr",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="additive noise at a random SNR in [LO, HI] dB while training",
    )


def audio_config(args: argparse.Namespace, base: AudioConfig | None = None) -> AudioConfig:
    changes: dict[str, Any] = {
        name: getattr(args, flag[2:].replace("-", "_"))
        for flag, (name, _) in AUDIO_FLAGS.items()
        if getattr(args, flag[2:].replace("-", "_")) is not None
    }
    if args.aug_noise_snr is not None:
        changes["aug_noise_snr"] = tuple(args.aug_noise_snr)
    return (base or AudioConfig()).replace(**changes)


def add_split_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "validation split (first that applies: --valid-fold, split column, groups, random)"
    )
    g.add_argument("--valid-pct", type=float, default=0.2, help="share held out (random or by group)")
    g.add_argument("--valid-fold", type=int, default=None, help="hold out this value of the fold column")
    g.add_argument("--group-col", default=None, help="column naming a speaker/recording; never on both sides")
    g.add_argument("--group-regex", default=None, help="regex on the file name; its first group is the group")
    g.add_argument("--seed", type=int, default=42, help="random split and training seed")


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """What every training job takes besides data, arch and output (jobs.train and jobs.compare)."""
    parser.add_argument(
        "--epochs", type=int, default=15, help="chosen on held-out real speakers (bench/RESULTS.md)"
    )
    parser.add_argument("--lr", default="3e-3", help="learning rate, or 'auto' for fastai's lr_find")
    parser.add_argument("--bs", type=int, default=32, help="batch size")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing ε of the loss")
    parser.add_argument(
        "--min-steps",
        type=int,
        default=0,
        help="small training sets get more epochs until they take this many optimiser steps",
    )
    parser.add_argument(
        "--keep-best",
        action="store_true",
        help="keep the epoch with the lowest validation loss (its validation figures are then optimistic)",
    )
    parser.add_argument(
        "--freeze-epochs", type=int, default=1, help="epochs training only the new head (pretrained runs)"
    )
    parser.add_argument("--cache-dir", default=None, help="also cache decoded signals on disk here")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    g = parser.add_argument_group("scaling up (README: Scaling up)")
    g.add_argument(
        "--signals",
        default="auto",
        choices=["auto", "memory", "disk"],
        help="keep decoded signals in memory or in the on-disk store; auto: disk when they would not fit",
    )
    g.add_argument(
        "--store",
        default=None,
        metavar="DIR",
        help="on-disk signal store folder, reused across runs (implies --signals disk; "
        "default: $EARSHOT_STORE or ~/.cache/earshot/signals)",
    )
    g.add_argument(
        "--loader-workers",
        type=int,
        default=None,
        help="DataLoader processes that crop and augment (default: 0 in memory, spare cores with the store)",
    )
    g.add_argument(
        "--precision", default="fp32", choices=["fp32", "fp16", "bf16"], help="mixed precision (GPU only)"
    )
    g.add_argument(
        "--fp16", dest="precision", action="store_const", const="fp16", help="same as --precision fp16"
    )
    g.add_argument("--channels-last", action="store_true", help="channels_last memory layout (GPU only)")
    add_quiet_arg(parser, "no progress bars")


def train_args(args: argparse.Namespace, **extra: Any):
    """A `TrainArgs` from the parsed fit, split and audio flags; `extra` adds what only one job has."""
    from learner.train.fit import TrainArgs

    return TrainArgs(
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr if args.lr == "auto" else float(args.lr),
        bs=args.bs,
        pretrained=args.pretrained,
        valid_pct=args.valid_pct,
        valid_fold=args.valid_fold,
        group_col=args.group_col,
        group_regex=args.group_regex,
        seed=args.seed,
        freeze_epochs=args.freeze_epochs,
        label_smoothing=args.label_smoothing,
        keep_best=args.keep_best,
        min_steps=args.min_steps,
        workers=args.workers,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
        auto_duration=args.duration is None,
        auto_sample_rate=args.sample_rate is None,
        auto_hop=args.hop is None,
        signals=args.signals,
        store=args.store,
        loader_workers=args.loader_workers,
        precision=args.precision,
        channels_last=args.channels_last,
        **extra,
    )


# learner/ errors name the setting (`field`); a job names its flag instead
FIELD_HINTS = {
    "pretrained": "use --pretrained PATH (a downloaded weights file or an earshot model) "
    "or --pretrained none",
}


def cli_message(e: BaseException) -> str:
    """The one line a job prints for a learner/ error: its `problem` plus the flag that fixes it, if known."""
    hint = FIELD_HINTS.get(getattr(e, "field", None) or "")
    problem = getattr(e, "problem", None)
    return f"{problem}; {hint}" if hint and problem else str(e)


# learner/ names the fields of its calls in errors (`pretrained=none`, `resume=True`); a job says them as
# flags.
FIELD_FLAGS = {name: flag for flag, (name, _) in AUDIO_FLAGS.items()} | {
    "source": "--from",
    "data": "--data",
    "n_folds": "--n-folds",
    "archs": "--archs",
    "subset": "--subset",
    "output": "--output",
    "out": "--out",
    "windows": "--windows",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "pretrained": "--pretrained",
    "arch": "--arch",
    "valid_fold": "--valid-fold",
    "group_col": "--group-col",
    "group_regex": "--group-regex",
    "token": "--token",
    "revision": "--revision",
    "classes": "--classes",
    "verify": "--no-verify",
    "backend": "--backend",
    "int8": "--int8",
    "task": "--task",
    "target_precision": "--target-precision",
    "signals": "--signals",
    "precision": "--precision",
}
_FIELD = re.compile(r"\b(" + "|".join(sorted(FIELD_FLAGS, key=len, reverse=True)) + r")=(True\b|False\b)?")


def as_flags(message: str) -> str:
    """A library message in command-line words: `pretrained=none` → `--pretrained none`, `resume=True` →
    `--resume`,
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

    # learner.data.manifest.ManifestError is a ValueError too; importing it here would load pandas into every
    # job
    # (0.3 s of the ONNX cold start).
    known: tuple[type[BaseException], ...] = (
        AudioDecodeError,
        ModelDirError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        RuntimeError,
    )
    log_to_console(quiet="--quiet" in sys.argv)
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        sys.exit(130)
    except known as e:
        print(f"earshot: {as_flags(cli_message(e))}", file=sys.stderr)
        sys.exit(1)
