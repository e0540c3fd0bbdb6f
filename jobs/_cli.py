"""Shared argument groups and error handling for the jobs (argparse lives here, never in learner/)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learner.config import AudioConfig

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


#: how the user ran the job: "python" (`python -m jobs.JOB`, `python app.py`) or "earshot" (`earshot JOB`,
#: set by jobs.cli), so that usage lines show the command that was typed
COMMAND = "python"


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser with earshot's help format: the module docstring's first paragraph as description,
    and the usage named as the user ran it (`earshot train`, or `python -m jobs.train`)."""
    if COMMAND == "earshot":
        prog = "earshot demo" if prog == "python app.py" else prog.replace("python -m jobs.", "earshot ")
    import textwrap

    first = " ".join(doc.strip().split("\n\n")[0].split())
    return Parser(prog=prog, description=textwrap.fill(first, 100), formatter_class=HelpFormatter)


class Parser(argparse.ArgumentParser):
    """argparse with the checks every job shares: an output is a path, never `-` (standard output: the jobs
    write folders and tables, so `--out -` would quietly make a folder named `-`)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns = super().parse_args(args, namespace)
        for dest in ("out", "output"):
            if getattr(ns, dest, None) == "-":
                self.error(f"--{dest} -: earshot writes files, not standard output; name a path")
        return ns


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


GROUPS = {  # group name in a field's `flag(...)` metadata → its title in --help ("" = the job's own options)
    "": "",
    "data": "",
    "run": "",
    "split": "validation split (first that applies: --valid-fold, split column, groups, random)",
    "scaling": "scaling up (README: Scaling up)",
    "annotations": "training from annotations of long recordings (docs/annotations.md)",
    "audio": "audio and augmentation (defaults: learner.config.AudioConfig)",
}


def flag_fields(cls: type) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    """The fields of a settings dataclass that a job offers as flags, with their `flag(...)` metadata."""
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]


def flag_name(f: dataclasses.Field, spec: dict[str, Any]) -> str:
    return spec.get("name") or "--" + f.name.replace("_", "-")


def add_field_args(
    parser: argparse.ArgumentParser,
    cls: type,
    groups: tuple[str, ...],
    *,
    unset: bool = False,
    extra: dict[str, dict[str, Any]] | None = None,
) -> None:
    """One flag per field of `cls` whose metadata group is in `groups` (`extra`: argparse settings known
    only at run time, by field). With `unset`, every flag defaults to None ("not given": the dataclass
    default, or what the job picks from the data, applies)."""
    titled: dict[str, Any] = {}
    for f, spec in flag_fields(cls):
        group = spec.get("group", "")
        if group not in groups:
            continue
        target = parser
        if GROUPS.get(group):
            target = titled.setdefault(group, parser.add_argument_group(GROUPS[group]))
        kw = {k: v for k, v in spec.items() if k not in ("name", "group", "aliases", "auto")}
        kw.update((extra or {}).get(f.name, {}))
        default = None if f.default is dataclasses.MISSING else f.default
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        elif isinstance(default, bool) and not unset:
            kw["action"] = argparse.BooleanOptionalAction if default else "store_true"
        elif "type" not in kw and default is not None and "choices" not in kw:
            kw["type"] = type(default)
        if unset and "auto" not in spec and default is not None:
            kw["help"] = f"{kw['help']} (default: {default})"
        kw["default"] = None if unset else default
        target.add_argument(flag_name(f, spec), *spec.get("aliases", ()), dest=f.name, **kw)


def field_values(args: argparse.Namespace, cls: type, *, given_only: bool = False) -> dict[str, Any]:
    """The parsed flags of `cls`'s fields (only those given on the command line, with `given_only`)."""
    values = {f.name: getattr(args, f.name) for f, _ in flag_fields(cls) if hasattr(args, f.name)}
    if given_only:
        values = {k: v for k, v in values.items() if v is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def options_of(args: argparse.Namespace, cls: type, **given: Any) -> Any:
    """A `cls` (a dataclass) from the parsed flags whose `dest` is one of its fields, so the flags declare
    the mapping once; `given` adds what no flag says (and wins)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **given})


def add_audio_args(parser: argparse.ArgumentParser) -> None:
    add_field_args(parser, AudioConfig, ("audio",), unset=True)


def audio_config(args: argparse.Namespace, base: AudioConfig | None = None) -> AudioConfig:
    return (base or AudioConfig()).replace(**field_values(args, AudioConfig, given_only=True))


def add_split_args(parser: argparse.ArgumentParser) -> None:
    from learner.train.args import TrainArgs

    add_field_args(parser, TrainArgs, ("split", "annotations"))


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """What every training job takes besides data, arch and output (jobs.train and jobs.compare)."""
    from learner.train.args import TrainArgs

    add_field_args(parser, TrainArgs, ("", "scaling"))
    parser.add_argument(
        "--fp16", dest="precision", action="store_const", const="fp16", help="same as --precision fp16"
    )
    add_quiet_arg(parser, "no progress bars")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """What jobs.train offers itself: --data, --out, --arch, --pretrained, --pickle, --task, ..."""
    from learner.train.args import TrainArgs

    add_field_args(parser, TrainArgs, ("data", "run"), extra={"arch": {"choices": list(archs())}})


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """The fit, split and audio flags of every training job (jobs.train and jobs.compare)."""
    add_fit_args(parser)
    add_split_args(parser)
    add_audio_args(parser)


def train_args(args: argparse.Namespace, **extra: Any):
    """A `TrainArgs` from the parsed flags; `extra` adds or overrides what only one job has."""
    from learner.train.args import TrainArgs

    values = field_values(args, TrainArgs)
    values.update(
        progress=not args.quiet,
        auto_duration=args.duration is None,
        auto_sample_rate=args.sample_rate is None,
        auto_hop=args.hop_length is None,
        **extra,
    )
    return TrainArgs(**values)


# learner/ errors name the setting (`field`); a job names its flag instead
FIELD_HINTS = {
    "pretrained": "use --pretrained PATH (a downloaded weights file or an earshot model) "
    "or --pretrained none",
    # no job unpickles (there is no --allow-pickle flag): say how, if the user trusts the file
    "allow_pickle": "no job unpickles (there is no flag for it): retrain or re-export to get "
    "model.safetensors, or, trusting the file, load it in Python with "
    "Predictor.from_dir(folder, backend='pickle', allow_pickle=True)",
}


def cli_message(e: BaseException) -> str:
    """The one line a job prints for a learner/ error: its `problem` plus the flag that fixes it, if known."""
    hint = FIELD_HINTS.get(getattr(e, "field", None) or "")
    problem = getattr(e, "problem", None)
    return f"{problem}; {hint}" if hint and problem else str(e)


# learner/ names the fields of its calls in errors (`pretrained=none`, `resume=True`); a job says them as
# flags.
FIELD_FLAGS = {f.name: flag_name(f, spec) for f, spec in flag_fields(AudioConfig)} | {
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
    from learner.audio.errors import AudioDecodeError
    from learner.folder import ModelDirError

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
    log_to_console(quiet=bool({"--quiet", "-q"} & set(sys.argv)))
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        sys.exit(130)
    except known as e:
        print(f"earshot: {as_flags(cli_message(e))}", file=sys.stderr)
        sys.exit(1)
