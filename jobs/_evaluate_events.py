"""`jobs.evaluate --boxes`: the flags and the run of event-level evaluation on annotated recordings."""

from __future__ import annotations

import argparse
import json
import sys

from jobs.score import _seconds, _threshold, _windows, at_least_zero


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text!r}")
    return v


_rate = at_least_zero("false alarms per hour")


def add_event_args(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("events on annotated long recordings (docs/evaluating.md)")
    e.add_argument(
        "--boxes",
        default=None,
        metavar="ANNOTATIONS",
        help="Raven / Audacity tables, a path,start_s,end_s,label CSV, or a folder of recordings "
        "with their tables: evaluate events against these boxes",
    )
    e.add_argument(
        "--events",
        default=None,
        metavar="OUT",
        help="a jobs.score --windows output to evaluate (instead of scoring with --model)",
    )
    e.add_argument(
        "--windows",
        type=_windows,
        default=(None, 0.25),
        metavar="WIN,HOP",
        help="windows the model scores each recording in (default clip,0.25)",
    )
    e.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="V|CLASS=V,...",
        help="thresholds to report figures at (default: the model's)",
    )
    e.add_argument("--event-gap", type=_seconds, default=0.0, metavar="S", help="join events < S s apart")
    e.add_argument(
        "--event-min", type=_seconds, default=0.0, metavar="S", help="drop events shorter than S s"
    )
    e.add_argument(
        "--match",
        default="onset",
        choices=["onset", "overlap"],
        help="an event finds a box when their onsets are within --tolerance (onset), or when it "
        "covers --min-overlap of the box (overlap)",
    )
    e.add_argument("--tolerance", type=_seconds, default=0.5, metavar="S", help="onset tolerance (s)")
    e.add_argument("--min-overlap", type=_share, default=0.5, metavar="SHARE", help="share of a box covered")
    add_target_args(e)


def add_target_args(e) -> None:
    """The recommendation's target (precision or false alarms per hour) and writing it to the model."""
    g = e.add_mutually_exclusive_group()
    g.add_argument(
        "--target-precision",
        type=_share,
        default=None,
        metavar="P",
        help="recommend per-class thresholds reaching this precision",
    )
    g.add_argument(
        "--max-false-per-hour",
        type=_rate,
        default=None,
        metavar="N",
        help="recommend per-class thresholds with at most N false alarms per hour",
    )
    e.add_argument(
        "--write-thresholds",
        action="store_true",
        help="write the recommended thresholds into the model's config.json",
    )


def _durations(out: str) -> dict[str, float]:
    from learner.score.store import read_results

    files = read_results(out).to_pandas()
    ok = files[files["error"].isna()]
    return dict(zip(ok["path"].astype(str), ok["duration_s"].astype(float), strict=True))


def _run_rule(out: str):
    """The event rule a scoring run recorded (its gap and minimum length), for the report."""
    from pathlib import Path

    from learner.score.ownership import read_meta
    from learner.serve.events import EventRule

    events = (read_meta(Path(out)) or {}).get("events") or {}
    return EventRule(
        max_gap_s=float(events.get("gap_s", 0.0)), min_length_s=float(events.get("min_length_s", 0.0))
    )


def _summary(m: dict) -> list[str]:
    lines = []
    for label, f in {**m["per_class"], "all": m["overall"]}.items():
        p, r = f["precision"], f["recall"]
        lines.append(
            f"{label}: precision {'-' if p is None else f'{p:.3f}'}"
            f" · recall {'-' if r is None else f'{r:.3f}'}"
            f" · {f['false_alarms']} false alarm(s) ({f['false_per_hour']}/h) · {f['misses']} miss(es)"
        )
    return lines


def _report(result, args: argparse.Namespace, predictor) -> None:
    """Files, notes and figures of an event evaluation; the recommended thresholds written when asked."""
    from learner.score.event_report import chosen_thresholds, write_outputs

    if args.out:
        written = write_outputs(result, args.out)
        print(f"earshot: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    for label, n in result.ignored_labels.items():
        print(
            f"earshot: {n} box(es) labelled {label!r}: not a class the model finds, left out", file=sys.stderr
        )
    for path, why in result.failures.items():
        print(f"earshot: {path} could not be read: {why}")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for line in _summary(result.metrics):
            print(f"earshot: {line}")
    if result.recommended:
        rec = result.recommended
        print(
            f"earshot: recommended (gap {rec['gap_s']:g} s, minimum {rec['min_length_s']:g} s): "
            + ", ".join(f"{c}={v['threshold']}" for c, v in rec["classes"].items())
        )
        for c, v in rec["classes"].items():
            if why := v.get("reason") or v.get("note"):
                print(f"earshot: {c}: {why}")
        if args.write_thresholds:
            from learner.folder import write_thresholds

            target = ", ".join(f"{k} {v}" for k, v in rec["target"].items())
            chosen = chosen_thresholds(rec)
            write_thresholds(predictor.folder, chosen, source=f"event evaluation on {args.boxes} ({target})")
            print(f"earshot: wrote {len(chosen)} threshold(s) to {predictor.folder / 'config.json'}")


def evaluate_events_main(args: argparse.Namespace) -> int:
    from learner.report.event_metrics import MatchRule
    from learner.score.event_report import evaluate_on_boxes, load_boxes
    from learner.serve.events import EventRule

    if (args.model is None) == (args.events is None):
        raise ValueError("--boxes needs --model (score the recordings) or --events OUT (a scoring run)")
    if args.write_thresholds and (
        args.model is None or (args.target_precision is None and args.max_false_per_hour is None)
    ):
        raise ValueError("--write-thresholds needs --model and --target-precision or --max-false-per-hour")
    boxes = load_boxes(args.boxes)
    rule = EventRule(args.threshold, max_gap_s=args.event_gap, min_length_s=args.event_min)
    match = MatchRule(args.match, args.tolerance, args.min_overlap)
    kw = dict(
        rule=rule,
        match=match,
        target_precision=args.target_precision,
        max_false_per_hour=args.max_false_per_hour,
        progress=not args.quiet,
    )
    predictor = None
    if args.model is not None:
        from learner.serve.predictor import Predictor

        predictor = Predictor.from_pretrained(args.model, backend=args.backend)
        result = evaluate_on_boxes(boxes, predictor=predictor, window=args.windows, **kw)
    else:
        from learner.score.store import read_results

        events = read_results(args.events, events=True).to_pandas()
        kw["rule"] = _run_rule(args.events)  # the run's own gap and minimum: its events are taken as they are
        result = evaluate_on_boxes(boxes, events=events, durations_s=_durations(args.events), **kw)
    _report(result, args, predictor)
    return 0
