"""Timestamped events on a generated 10-minute recording with 40 known events (issue 14's acceptance).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.events [--minutes 10] [--events 40] [--overlaps 6] [--out DIR]

Trains a small event model from scratch (tone, chirp, clicks + background, 1 s clips; tests/soundscape.py),
then finds the events of the recording three ways — the Predictor, `jobs.score --windows` and the demo's
events function — and counts events whose onset and offset are both within ±0.5 s of a true one
(`learner.report.event_metrics`). Side by side in the same run: centre vs union boundaries, hops of 0.25 and
0.5 s. Results go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _chosen():
    from learner.serve.events import EventRule

    return EventRule(max_gap_s=0.5, min_length_s=0.5)  # what the acceptance run uses in all three paths


def train_event_model(root: Path, n_per_class: int = 60, epochs: int = 5, seed: int = 0, arch: str = "xresnet18") -> Path:
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train
    from tests.soundscape import make_event_dataset

    data = make_event_dataset(root / "clips", n_per_class=n_per_class, seed=seed)
    audio = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)
    args = TrainArgs(data=str(data), out=str(root / "model"), epochs=epochs, pretrained="none", bs=16, progress=False,
                     seed=seed, arch=arch)
    result = train(args, audio)
    return Path(result.model_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--events", type=int, default=40)
    p.add_argument("--overlaps", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default=None, help="an event model folder (default: train one)")
    p.add_argument("--arch", default="mfcc_cnn1d", help="arch of the model trained when --model is not given")
    p.add_argument("--clips", type=int, default=60, help="training clips per class")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    import numpy as np

    from jobs.score import main as score_main
    from learner.report.event_metrics import match_events
    from learner.score.store import read_results
    from learner.serve.events import Event, EventRule
    from learner.serve.predictor import Predictor
    from tests.soundscape import write_soundscape

    chosen = _chosen()
    work = Path(args.out or tempfile.mkdtemp(prefix="earshot-events-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = Path(args.model) if args.model else train_event_model(work, args.clips, args.epochs, arch=args.arch)
    t_train = time.perf_counter() - t0
    rec = work / "soundscape.wav"
    truth = write_soundscape(rec, duration_s=60 * args.minutes, n_events=args.events, overlaps=args.overlaps,
                             seed=args.seed)
    pred = Predictor.from_dir(model)
    results = {"train_s": round(t_train, 1), "metrics": json.loads((model / "metrics.json").read_text()).get("accuracy")}
    for hop in (0.25,):
        t = time.perf_counter()
        pr = pred.predict(rec, window=1.0, hop=hop)
        secs = time.perf_counter() - t
        default = pred.events(np.asarray(pr.window_starts), pr.window_probs, pr.window_s, chosen, pr.duration_s, str(rec))
        for name, rule in (("centre", EventRule()), ("union", EventRule(boundary="union")),
                           ("centre, gap 0.5 s", EventRule(max_gap_s=0.5)),
                           ("centre, min 0.5 s", EventRule(min_length_s=0.5)),
                           ("centre, gap 0.5 s, min 0.5 s", chosen),
                           ("union, gap 0.5 s, min 0.5 s", replace(chosen, boundary="union"))):
            ev = pred.events(np.asarray(pr.window_starts), pr.window_probs, pr.window_s, rule, pr.duration_s, str(rec))
            results[f"Predictor hop={hop} {name}"] = {**match_events(ev, truth).as_dict(), "seconds": round(secs, 1)}
            print(f"Predictor hop={hop} {name}: {results[f'Predictor hop={hop} {name}']}", flush=True)
    out = work / "scores.parquet"
    t = time.perf_counter()
    score_main([str(rec), "--model", str(model), "--out", str(out), "--windows", "1,0.25", "--overwrite", "--quiet",
                "--event-gap", str(chosen.max_gap_s), "--event-min", str(chosen.min_length_s),
                "--workers", "1", "--raven", str(work / "raven"), "--audacity", str(work / "audacity")])
    rows = read_results(out, events=True).to_pylist()
    found = [Event(r["path"], r["label"], r["start_s"], r["end_s"], r["max_score"], r["mean_score"]) for r in rows]
    results["jobs.score --windows 1,0.25 --event-gap 0.5 --event-min 0.5"] = {**match_events(found, truth).as_dict(),
                                              "seconds": round(time.perf_counter() - t, 1)}
    print(f"jobs.score: {results['jobs.score --windows 1,0.25 --event-gap 0.5 --event-min 0.5']}", flush=True)
    from learner.serve.demo_events import find_events_in

    t = time.perf_counter()
    demo = find_events_in(pred, str(rec), threshold=None, max_gap_s=chosen.max_gap_s, min_length_s=chosen.min_length_s,
                          draw=False)
    results["demo find_events_in"] = {**match_events(demo.events, truth).as_dict(),
                                      "seconds": round(time.perf_counter() - t, 1)}
    def key(events):  # the parquet table stores scores as float32: compare what and when
        return [(e.label, e.start_s, e.end_s) for e in events]

    results["same events: predictor == jobs.score == demo"] = key(default) == key(found) == key(demo.events)
    print(json.dumps(results, indent=1))
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
