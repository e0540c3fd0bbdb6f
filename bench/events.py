"""Timestamped events on a generated 10-minute recording with 40 known events (issue 14's acceptance).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.events [--task multi|single|both] [--seeds 1,2] [--out DIR]

Trains a small event model from scratch (mfcc_cnn1d, 1 s clips of tone / chirp / clicks over the recording's
background; learner/data/soundscape.py): by default multi-label (sigmoid outputs, BCE; clips hold 0, 1 or 2
overlapping
sounds, labels known), or single-label (softmax with a `background` class), or both side by side. Then, per
recording seed, it finds the events three ways — the Predictor, `jobs.score --windows` and the demo's events
function — and counts events whose onset and offset are both within ±0.5 s of a true one
(`learner.report.event_metrics`).

The rule is fixed (centre boundaries, gap 0.5 s, minimum 0.5 s); the threshold (the model's calibrated ones,
or
one value for every class) is chosen on the FIRST seed only (highest recall − false rate) and then applied
unchanged to the others, which are held out. Results go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.benchkit import parser

THRESHOLDS = ("model", 0.3, 0.4, 0.5, 0.6, 0.7)  # "model" = config.json's per-class thresholds (calibrated)
AUDIO = dict(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)


def _chosen():
    from learner.serve.events import EventRule

    return EventRule(max_gap_s=0.5, min_length_s=0.5)  # what the acceptance run uses in all three paths


def train_event_model(
    root: Path,
    task: str = "multi",
    clips: int = 240,
    epochs: int = 10,
    seed: int = 0,
    arch: str = "mfcc_cnn1d",
) -> Path:
    """A model folder trained on `clips` generated 1 s clips (multi: 0–2 sounds each; single: a quarter per
    class
    of tone / chirp / clicks / background)."""
    from learner.config import AudioConfig
    from learner.data.soundscape import make_event_dataset, make_multilabel_event_dataset
    from learner.train.fit import TrainArgs, train

    if task == "multi":
        data = make_multilabel_event_dataset(root / "clips", n_clips=clips, seed=seed)
    else:
        data = make_event_dataset(root / "clips", n_per_class=clips // 4, seed=seed)
    args = TrainArgs(
        data=str(data),
        out=str(root / "model"),
        epochs=epochs,
        pretrained="none",
        bs=16,
        progress=False,
        seed=seed,
        arch=arch,
        task=task,
        pickle=False,
    )
    return Path(train(args, AudioConfig(**AUDIO)).model_dir)


def _threshold_rule(rule, threshold):
    return rule if threshold == "model" else replace(rule, thresholds=float(threshold))


def choose_threshold(scores: dict) -> str | float:
    """The threshold with the highest recall − false rate (ties: the earlier in THRESHOLDS)."""
    return max(
        THRESHOLDS,
        key=lambda t: (scores[str(t)]["recall"] - scores[str(t)]["false_rate"], -THRESHOLDS.index(t)),
    )


def predictor_pass(pred, rec: Path, truth: list, rules: dict) -> tuple[dict, dict]:
    """Score the recording once in 1 s windows every 0.25 s; events and scores for every rule → (scores,
    events)."""
    import numpy as np

    from learner.report.event_metrics import match_events

    t, cpu = time.perf_counter(), time.process_time()
    pr = pred.predict(rec, window=1.0, hop=0.25)
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    scores, events = {}, {}
    for name, rule in rules.items():
        ev = pred.events(
            np.asarray(pr.window_starts), pr.window_probs, pr.window_s, rule, pr.duration_s, str(rec)
        )
        scores[name] = {
            **match_events(ev, truth).as_dict(),
            "seconds": round(secs, 1),
            "cpu_s": round(cpu, 1),
            "windows": len(pr.window_starts),
        }
        events[name] = ev
    return scores, events


def score_job_pass(model: Path, rec: Path, truth: list, work: Path, threshold) -> tuple[dict, list]:
    """The same through `jobs.score --windows 1,0.25` (events table, Raven and Audacity exports)."""
    from jobs.score import main as score_main
    from learner.report.event_metrics import match_events
    from learner.score.store import read_results
    from learner.serve.events import Event

    rule = _chosen()
    out = work / "scores.parquet"
    argv = [
        str(rec),
        "--model",
        str(model),
        "--out",
        str(out),
        "--windows",
        "1,0.25",
        "--overwrite",
        "--quiet",
        "--event-gap",
        str(rule.max_gap_s),
        "--event-min",
        str(rule.min_length_s),
        "--workers",
        "1",
        "--raven",
        str(work / "raven"),
        "--audacity",
        str(work / "audacity"),
    ]
    if threshold != "model":
        argv += ["--threshold", str(threshold)]
    t, cpu = time.perf_counter(), time.process_time()
    score_main(argv)
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    rows = read_results(out, events=True).to_pylist()
    found = [
        Event(r["path"], r["label"], r["start_s"], r["end_s"], r["max_score"], r["mean_score"]) for r in rows
    ]
    raven = sum(len(f.read_text().splitlines()) - 1 for f in (work / "raven").glob("*.txt"))
    audacity = sum(len(f.read_text().splitlines()) for f in (work / "audacity").glob("*.txt"))
    return {
        **match_events(found, truth).as_dict(),
        "seconds": round(secs, 1),
        "cpu_s": round(cpu, 1),
        "raven_rows": raven,
        "audacity_rows": audacity,
    }, found


def demo_pass(pred, rec: Path, truth: list, threshold) -> tuple[dict, list]:
    """The same through the demo's Events tab function (`/events` API), without drawing."""
    from learner.demo.events import find_events_in
    from learner.report.event_metrics import match_events

    rule = _chosen()
    t, cpu = time.perf_counter(), time.process_time()
    demo = find_events_in(
        pred,
        str(rec),
        threshold=None if threshold == "model" else float(threshold),
        max_gap_s=rule.max_gap_s,
        min_length_s=rule.min_length_s,
        draw=False,
    )
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        **match_events(demo.events, truth).as_dict(),
        "seconds": round(secs, 1),
        "cpu_s": round(cpu, 1),
    }, demo.events


def misses(found: list, truth: list, tolerance_s: float = 0.5) -> dict:
    """Which true events no found event matches (label, onset and offset within the tolerance), and how many
    of them overlap another true event (the case a single-label model cannot hold)."""

    def hit(t):
        return any(
            f.label == t.label
            and abs(f.start_s - t.start_s) <= tolerance_s
            and abs(f.end_s - t.end_s) <= tolerance_s
            for f in found
        )

    missed = [t for t in truth if not hit(t)]
    overlapping = [
        t for t in missed if any(o is not t and o.start_s < t.end_s and t.start_s < o.end_s for o in truth)
    ]
    return {
        "missed": [(t.label, t.start_s, t.end_s) for t in missed],
        "missed_overlapping": len(overlapping),
        "overlapping_true_events": sum(
            any(o is not t and o.start_s < t.end_s and t.start_s < o.end_s for o in truth) for t in truth
        ),
    }


def _rules(threshold="model") -> dict:
    from learner.serve.events import EventRule

    chosen = _threshold_rule(_chosen(), threshold)
    return {
        "centre": _threshold_rule(EventRule(), threshold),
        "union": _threshold_rule(EventRule(boundary="union"), threshold),
        "centre, gap 0.5 s": replace(chosen, min_length_s=0.0),
        "centre, min 0.5 s": replace(chosen, max_gap_s=0.0),
        "centre, gap 0.5 s, min 0.5 s": chosen,
        "union, gap 0.5 s, min 0.5 s": replace(chosen, boundary="union"),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument(
        "--task",
        default="multi",
        choices=["multi", "single", "both"],
        help="the event model(s) to train; with both, the single-label one runs the Predictor path only",
    )
    p.add_argument("--seeds", default="1,2", help="recording seeds: the threshold is chosen on the first")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--events", type=int, default=40)
    p.add_argument("--overlaps", type=int, default=6)
    p.add_argument("--model", default=None, help="an event model folder to use instead of training one")
    p.add_argument("--arch", default="mfcc_cnn1d", help="arch of the model trained when --model is not given")
    p.add_argument("--clips", type=int, default=240, help="training clips")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-seed", type=int, default=0, help="seed of the training clips, split and fit")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    from learner.data.soundscape import write_soundscape
    from learner.serve.predictor import Predictor

    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(args.out or tempfile.mkdtemp(prefix="earshot-events-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "seeds": seeds,
        "train_seed": args.train_seed,
    }
    tasks = ["single", "multi"] if args.task == "both" else [args.task]
    models = {}
    for task in tasks:
        t, cpu = time.perf_counter(), time.process_time()
        models[task] = (
            Path(args.model)
            if args.model
            else train_event_model(work / task, task, args.clips, args.epochs, args.train_seed, args.arch)
        )
        metrics = json.loads((models[task] / "metrics.json").read_text())
        results[f"{task} model"] = {
            "train_s": round(time.perf_counter() - t, 1),
            "train_cpu_s": round(time.process_time() - cpu, 1),
            **{k: metrics.get(k) for k in ("accuracy", "macro_map", "macro_f1", "micro_f1") if k in metrics},
            "thresholds": json.loads((models[task] / "config.json").read_text())["thresholds"],
        }
        print(f"{task} model: {results[f'{task} model']}", flush=True)
    main_task = tasks[-1]
    chosen: dict = {}
    for n, seed in enumerate(seeds):
        rec = work / f"soundscape-seed{seed}.wav"
        truth = write_soundscape(
            rec, duration_s=60 * args.minutes, n_events=args.events, overlaps=args.overlaps, seed=seed
        )
        for task, model in models.items():
            pred = Predictor.from_dir(model)
            tag = f"seed {seed} {task}"
            by_threshold = {str(t): _threshold_rule(_chosen(), t) for t in THRESHOLDS}
            scores, events = predictor_pass(
                pred, rec, truth, {**by_threshold, **{f"rule: {k}": v for k, v in _rules().items()}}
            )
            if n == 0:  # choose on the first seed only
                chosen[task] = choose_threshold(scores)
            results[f"{tag}: thresholds (gap 0.5 s, min 0.5 s)"] = {
                k: scores[str(k)] for k in map(str, THRESHOLDS)
            }
            results[f"{tag}: rules (model's thresholds)"] = {
                k[6:]: v for k, v in scores.items() if k.startswith("rule: ")
            }
            pick = chosen[task]
            results[f"{tag}: chosen threshold {pick}"] = {
                **scores[str(pick)],
                **misses(events[str(pick)], truth),
            }
            print(
                f"{tag}: threshold {pick} ({'chosen here' if n == 0 else f'chosen on seed {seeds[0]}'}): "
                f"{scores[str(pick)]}",
                flush=True,
            )
            if task != main_task:
                continue
            job, found = score_job_pass(model, rec, truth, work / f"score-seed{seed}", pick)
            demo, shown = demo_pass(pred, rec, truth, pick)
            results[f"{tag}: jobs.score --windows 1,0.25 --event-gap 0.5 --event-min 0.5"] = job
            results[f"{tag}: demo find_events_in"] = demo
            key = [
                (e.label, e.start_s, e.end_s) for e in events[str(pick)]
            ]  # parquet stores scores as float32
            results[f"{tag}: same events: predictor == jobs.score == demo"] = (
                key
                == [(e.label, e.start_s, e.end_s) for e in found]
                == [(e.label, e.start_s, e.end_s) for e in shown]
            )
            print(
                f"{tag}: jobs.score {job}\n{tag}: demo {demo}\n{tag}: same events in all three paths: "
                f"{results[f'{tag}: same events: predictor == jobs.score == demo']}",
                flush=True,
            )
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
