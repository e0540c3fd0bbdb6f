"""Score folders, globs or manifests of audio into parquet (or CSV / JSONL): one row per file, resumable.

    python -m jobs.score INPUT... --model DIR|USER/NAME[@rev] --out OUT.parquet
                         [--windows WIN,HOP [--threshold 0.5|CLASS=V,...] [--raven DIR] [--audacity DIR]]
                         [--format parquet|csv|jsonl]
                         [--resume | --overwrite] [--engine local|ray [--ray-address ADDR]]

INPUT is a folder (recursive), a glob, a manifest or a file (`--input` and `--output` still work). OUT is a
folder of parts (part-00000.parquet, …), each renamed into place when complete; per-window rows go to
OUT.windows.parquet, timestamped events to OUT.events.parquet (and, if asked, one Raven selection table
and/or Audacity label file per input). `--resume` refuses an OUT made with another model, weights, backend or
settings.
See docs/scoring.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jobs._cli import (
    add_backend_arg,
    add_inputs_arg,
    add_quiet_arg,
    add_top_k_arg,
    inputs_of,
    options_of,
    run,
)
from jobs._cli import parser as new_parser
from learner.score.event_writers import EVENT_WRITERS

MAX_WINDOW_S = 600.0  # the longest model input (learner.folder.schema.MAX_CLIP_S)
MIN_HOP_S = 0.001  # a millisecond: finer hops are a typo (or a million windows per second)
DEFAULT_THRESHOLD = 0.5  # when the model's config.json has no thresholds (learner.serve.events)


def _windows(text: str) -> tuple[float | None, float]:
    """WIN,HOP in seconds; WIN `clip` is the model's clip length (shorter windows are refused)."""
    try:
        first, second = text.split(",")
        win, hop = None if first.strip() == "clip" else float(first), float(second)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIN,HOP in seconds (e.g. clip,0.5 or 5,2.5), got {text!r}"
        ) from None
    if not (MIN_HOP_S <= hop and (win is None or 0 < win <= MAX_WINDOW_S)):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"window must be from 0 to {MAX_WINDOW_S:g} s and hop at least {MIN_HOP_S:g} s, got {text!r}"
        )
    return win, hop


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 up, got {text!r}")
    return value


def _threshold(text: str) -> float | dict[str, float]:
    from learner.serve.events import parse_thresholds

    try:
        return parse_thresholds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def at_least_zero(what: str) -> Callable[[str], float]:
    """An argparse type: a number ≥ 0, else one line saying it is `what` that is expected."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = -1.0
        if v < 0:
            raise argparse.ArgumentTypeError(f"expected {what} ≥ 0, got {text!r}")
        return v

    return parse


_seconds = at_least_zero("seconds")


def parser() -> argparse.ArgumentParser:
    p = new_parser("python -m jobs.score", __doc__)
    add_inputs_arg(
        p,
        "folder (recursive), glob ('**' recursive), manifest (.csv/.tsv with a path column, "
        "or .txt one path a line) or file",
    )
    p.add_argument("--model", required=True, help="model directory or Hub id")
    p.add_argument(
        "--out", "--output", dest="out", required=True, help="output folder of parts, e.g. scores.parquet"
    )
    p.add_argument("--format", dest="fmt", default="parquet", choices=["parquet", "csv", "jsonl"])
    add_windows_arg(
        p,
        "score every file in windows of WIN s (at least the model's clip; `clip`: exactly it) every HOP s; "
        "writes OUT.windows.*, OUT.events.* and event counts",
    )
    e = p.add_argument_group("events (need --windows; docs/scoring.md)")
    e.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="V|CLASS=V,...",
        help="window score that makes an event: one value for every class, or per class (the rest keep "
        f"the model's); default: the model's config.json thresholds, else {DEFAULT_THRESHOLD}",
    )
    e.add_argument(
        "--event-gap",
        dest="event_gap_s",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="join events of one class less than S s apart",
    )
    e.add_argument(
        "--event-min",
        dest="event_min_s",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="drop events shorter than S s",
    )
    for writer in EVENT_WRITERS.values():  # one flag per event format
        e.add_argument(
            f"--{writer.name}",
            dest=_dest(writer.name),
            default=None,
            metavar="FILE" if writer.combined else "DIR",
            help=f"also write {writer.help} here",
        )
    add_time_args(p)
    add_top_k_arg(p)
    p.add_argument(
        "--wide",
        action="store_true",
        help="also one score_<class> column per class: every class's probability (docs/scoring.md)",
    )
    add_run_args(p, "scored")
    add_backend_arg(p)
    add_quiet_arg(p, "no progress bar")
    return p


def add_time_args(p: argparse.ArgumentParser) -> None:
    """Where each file's start (UTC) comes from: its name, a pattern, a deployments CSV."""
    t = p.add_argument_group("field recorders: start_utc on window and event rows (docs/field-recorders.md)")
    t.add_argument(
        "--start-times",
        action="store_true",
        help="read each file's start from its name (AudioMoth YYYYMMDD_HHMMSS, Song Meter "
        "PREFIX_YYYYMMDD_HHMMSS, …)",
    )
    t.add_argument(
        "--time-regex",
        default=None,
        metavar="REGEX",
        help="the start in the file name by named groups year, month, day, hour, minute[, second]",
    )
    t.add_argument(
        "--timezone", default=None, metavar="TZ", help="zone the names are in (default UTC; e.g. +02:00)"
    )
    t.add_argument(
        "--deployments",
        default=None,
        metavar="CSV",
        help="path (file or folder), site, start_utc, timezone per row: overrides the names",
    )


def add_windows_arg(p: argparse.ArgumentParser, what: str) -> None:
    """`--windows WIN,HOP` (ScoreOptions.window): what windows mean to the job is `what`."""
    p.add_argument("--windows", dest="window", type=_windows, default=None, metavar="WIN,HOP", help=what)


def _dest(name: str) -> str:
    return name.replace("-", "_")


def file_times_of(args: argparse.Namespace):
    """The FileTimes the flags ask for, or None (no start_utc columns)."""
    if not (args.start_times or args.time_regex or args.timezone or args.deployments):
        return None
    from learner.data.recorders import file_times

    return file_times(args.time_regex, args.timezone, args.deployments)


def _say_unknown_starts(out: str, times) -> None:
    """One line naming the files whose start nothing gives (their start_utc is empty), never silence."""
    from learner.score.store import read_results

    files = read_results(out).to_pylist()
    unknown = [r["path"] for r in files if r["error"] is None and times.start_utc(r["path"]) is None]
    if unknown:
        shown = ", ".join(unknown[:3]) + (" …" if len(unknown) > 3 else "")
        print(
            f"earshot: {len(unknown)} file(s) with no start time in the name or --deployments, start_utc "
            f"left empty: {shown} (--time-regex or --deployments gives it)"
        )


def add_run_args(p: argparse.ArgumentParser, done: str) -> None:
    """Resume, batching, decoding, parts and engine flags: every job on the scorer takes them (score,
    embed)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--resume", action="store_true", help=f"continue OUT: skip files already {done} (path, size, mtime)"
    )
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument(
        "--retry-errors", action="store_true", help="with --resume: try files that failed before again"
    )
    p.add_argument("--batch-size", type=_positive_int, default=32, help="model inputs per forward pass")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count - 1)")
    p.add_argument("--decode-timeout", type=float, default=120.0, help="seconds one file may take to decode")
    p.add_argument(
        "--min-duration",
        type=float,
        default=0.05,
        help="seconds of audio a file needs; shorter files get an error row ('too short to classify')",
    )
    p.add_argument(
        "--part-rows", type=int, default=2048, help="rows per part file (a kill loses at most one part)"
    )
    p.add_argument("--part-seconds", type=float, default=60.0, help="commit a part at least this often")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    r = p.add_argument_group("ray engine")
    r.add_argument("--ray-address", default=None, help="cluster address (default: start Ray locally)")
    r.add_argument(
        "--actors", type=int, default=None, help="model actors (default: GPUs, else CPUs - decoders)"
    )
    r.add_argument(
        "--decoders", type=int, default=None, help="decoding actors (default: CPUs / 4, at least 1)"
    )
    r.add_argument(
        "--ray-chunk", type=int, default=20000, help="files per Ray Dataset run (a kill loses at most one)"
    )


def run_options(args: argparse.Namespace, **given: Any):
    """The ScoreOptions of the parsed flags (a flag's dest is its field, but for the few named here), plus
    `given`; checked together: --retry-errors needs --resume."""
    from learner.score.local import ScoreOptions

    if args.retry_errors and not args.resume:
        raise ValueError("--retry-errors needs --resume")
    named = dict(output=args.out, decode_timeout_s=args.decode_timeout, min_duration_s=args.min_duration)
    return options_of(args, ScoreOptions, **named, progress=not args.quiet, **given)


def ray_options(args: argparse.Namespace):
    from learner.score.ray_engine import RayOptions

    backend = getattr(args, "backend", "torch")
    return options_of(args, RayOptions, address=args.ray_address, chunk=args.ray_chunk, backend=backend)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    inputs = inputs_of(p, args)
    opts = run_options(args)
    for flag, given in (
        ("--threshold", args.threshold is not None),
        ("--event-gap", args.event_gap_s > 0),
        ("--event-min", args.event_min_s > 0),
        *((f"--{name}", getattr(args, _dest(name))) for name in EVENT_WRITERS),
    ):
        if given and args.window is None:
            raise ValueError(f"{flag} needs --windows WIN,HOP (events are found over windows)")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    opts.times = file_times_of(args)
    if args.engine == "ray":
        from learner.score.ray_engine import score_ray

        summary = score_ray(inputs, args.model, opts, ray_options(args))
    else:
        from learner.score.local import score
        from learner.serve.predictor import Predictor

        predictor = Predictor.from_pretrained(
            args.model,
            backend=args.backend,
            device=args.device,
            threads=args.threads,
            batch_size=args.batch_size,
        )
        summary = score(inputs, predictor, opts)
    for line in summary.lines():
        print(f"earshot: {line}")
    if opts.times is not None:
        _say_unknown_starts(args.out, opts.times)
    dirs = {name: getattr(args, _dest(name)) for name in EVENT_WRITERS if getattr(args, _dest(name))}
    if dirs:
        from learner.score.event_writers import export_events

        ex = export_events(args.out, dirs, opts.times)
        where = " and ".join(str(d) for d in dirs.values())
        print(f"earshot: exported {ex.events} event(s) of {ex.files} file(s) → {where}")
    return 0


if __name__ == "__main__":
    run(main)
