"""Active review, simulated with the known truth as the reviewer (issue 23's acceptance): do two rounds of 50
uncertainty-picked windows raise event F1 on a held-out recording by at least 0.05 more than 100 randomly
picked windows?

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.review_active [--seeds 20] [--devsets] [--out DIR]

Recordings: generated soundscapes (learner/data/soundscape.py: tone / chirp / clicks events of 1.5–4 s over
steady noise, some overlapping); two 4-minute ones are the pool the reviewer answers windows of, a third
(another seed) is held out; with `--devsets`, 8 classes of real clips (frog-dev, esc-dev, speech-dev) over
real field background at 0–15 dB SNR (bench/soundscape.py: the pool from the train split, the held-out
recording from the valid split). Windows of 1 s every 0.5 s are embedded once by the aisfx backbone (cached);
the model is a logistic head on those embeddings (learner.train.heads.fit_linear, softmax over the three
classes and `background`), fitted in a fraction of a second, so it is refitted after every round.

The start: 2 labelled windows per class (and 2 of background) from the pool, at random per seed. A
candidate is a pool window with the model's best non-background class as its label and that class's
probability as its score (what `jobs.score --windows` would write). The simulated reviewer answers with the
truth (the class covering at least half of the window, else background): yes, no (background), or other
(another class); the answers go through the real review file (`append_answer` → `read_review` →
`review_boxes`) and become training windows: yes → the label, other → the class heard, no → background.
Strategies: `uncertain` (2 rounds of 50, the model refitted between them), `random` (100 at once), and for
reference `top` and `balanced` (2 rounds of 50). Event F1 on the held-out recording: `find_events`
(threshold 0.5, gap 0.5 s, minimum 0.5 s) matched to the truth within ±0.5 s of onset and offset
(learner.report.event_metrics). Results go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("tone", "chirp", "clicks", "background")
WINDOW_S, HOP_S = 1.0, 0.5
POOL_SEEDS, HELD_OUT_SEED = (11, 12), 13
RECORDING = dict(duration_s=240.0, n_events=24, overlaps=4)
C = 0.1  # the head's regularisation, fixed (no inner CV: the point is the data, not the head)


def recordings(root: Path, devsets: bool) -> dict[int, tuple[Path, list]]:
    """Seed → (recording, its true events): generated, or built from devset clips (bench/soundscape.py:
    the pool from the devsets' train split, the held-out recording from their valid split)."""
    if devsets:
        return devset_recordings(root)
    from learner.data.soundscape import write_soundscape

    out = {}
    for seed in (*POOL_SEEDS, HELD_OUT_SEED):
        path = root / f"rec_{seed}.wav"
        truth = write_soundscape(path, seed=seed, **RECORDING)
        out[seed] = (path, truth)
    return out


def devset_recordings(root: Path) -> dict[int, tuple[Path, list]]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from soundscape import build

    from learner.data.events import Event

    minutes, events = RECORDING["duration_s"] / 60, RECORDING["n_events"]
    pool = build(root / "pool", split="train", recordings=len(POOL_SEEDS), minutes=minutes, events=events)
    held = build(
        root / "held", split="valid", recordings=1, minutes=minutes, events=events, seed=HELD_OUT_SEED
    )
    paths = sorted(set(pool["path"]))
    out = {}
    for seed, path, truth in [*zip(POOL_SEEDS, paths, [pool[pool["path"] == p] for p in paths]),
                              (HELD_OUT_SEED, sorted(set(held["path"]))[0], held)]:  # fmt: skip
        rows = truth.itertuples(index=False)
        out[seed] = (Path(path), [Event(str(path), r.label, r.start_s, r.end_s, 1.0, 1.0) for r in rows])
    global CLASSES
    CLASSES = (*sorted(set(pool["label"]) | set(held["label"])), "background")
    return out


def window_truth(starts: np.ndarray, truth: list) -> np.ndarray:
    """Class index per window: the event class covering at least half of it (the most), else background."""
    labels = np.full(len(starts), CLASSES.index("background"))
    best = np.zeros(len(starts))
    for e in truth:
        share = np.clip(np.minimum(starts + WINDOW_S, e.end_s) - np.maximum(starts, e.start_s), 0, None)
        share /= WINDOW_S
        take = (share >= 0.5) & (share > best)
        labels[take], best[take] = CLASSES.index(e.label), share[take]
    return labels


def embed(path: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(window starts, aisfx embeddings) of one recording, cached beside it."""
    if cache.exists():
        z = np.load(cache)
        return z["starts"], z["emb"]
    from learner.audio.decode import decode
    from learner.model.backbones import load_backbone
    from learner.train.heads import backbone_embedder

    backbone = load_backbone("aisfx")
    x = decode(str(path), int(backbone.sample_rate)).samples
    sr, n = int(backbone.sample_rate), int(round(WINDOW_S * backbone.sample_rate))
    starts = np.arange(0, x.size / sr - WINDOW_S + 1e-9, HOP_S)
    clips = np.stack([x[int(round(s * sr)) : int(round(s * sr)) + n] for s in starts]).astype(np.float32)
    emb = backbone_embedder(backbone, batch=16)(clips)
    np.savez(cache, starts=starts, emb=emb)
    return starts, emb


def fit(x: np.ndarray, y: np.ndarray):
    from learner.train.heads import fit_linear, one_blas_thread

    present = np.unique(y)
    head = one_blas_thread(fit_linear)(x, np.searchsorted(present, y), C)
    return head, present


def probabilities(model, x: np.ndarray) -> np.ndarray:
    """(windows, CLASSES) softmax probabilities; classes the head never saw get 0."""
    from learner.train.heads import predict_logits

    head, present = model
    logits = predict_logits(head, x)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out = np.zeros((len(x), len(CLASSES)))
    out[:, present] = p
    return out


def event_f1(model, held: tuple) -> float:
    from learner.report.event_metrics import match_events
    from learner.serve.events import find_events

    starts, emb, truth, duration = held
    p = probabilities(model, emb)
    found = find_events(starts, p, CLASSES, WINDOW_S, thresholds=0.5, max_gap_s=0.5, min_length_s=0.5,
                        duration_s=duration, exclude=("background",))  # fmt: skip
    s = match_events(found, truth, tolerance_s=0.5)
    precision, recall = 1 - s.false_rate, s.recall
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def candidates(model, pool: dict):
    """The pool's windows as a scoring run's window rows: best non-background class and its probability."""
    import pandas as pd

    p = probabilities(model, pool["emb"])[:, :-1]  # background is the last class
    top = p.argmax(1)
    return pd.DataFrame({"path": pool["path"], "start_s": pool["starts"], "end_s": pool["starts"] + WINDOW_S,
                         "label": np.array(CLASSES)[top], "score": p[np.arange(len(p)), top]})  # fmt: skip


def review_round(model, pool: dict, how: str, n: int, review_file: Path, seed: int) -> None:
    """Pick `n` windows not answered yet, answer each with the truth, into `review_file`."""
    from learner.data.review import append_answer, read_review
    from learner.score.picks import pick

    answered = []
    if review_file.exists():
        answered = list(
            read_review(review_file)[["path", "start_s", "end_s", "label"]].itertuples(False, None)
        )
    for c in pick(candidates(model, pool), how, n, threshold=0.5, answered=answered, seed=seed):
        truth = CLASSES[pool["truth"][pool["index"][(c.path, round(c.start_s, 3))]]]
        answer = "yes" if truth == c.label else "no" if truth == "background" else "other"
        append_answer(review_file, c, answer, truth if answer == "other" else None, reviewer="truth")


def training_set(pool: dict, seed_idx: np.ndarray, review_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The seed windows plus every reviewed one, labelled through the box table."""
    from learner.data.review import read_review, review_boxes

    idx, y = list(seed_idx), list(pool["truth"][seed_idx])
    if review_file.exists():
        for b in review_boxes(read_review(review_file)).itertuples(index=False):
            idx.append(pool["index"][(b.path, round(b.start_s, 3))])
            y.append(CLASSES.index(b.label) if b.label else CLASSES.index("background"))
    return pool["emb"][idx], np.array(y)


def run_strategy(how: str, rounds: list[int], pool: dict, held: tuple, seed_idx, work: Path, seed: int):
    review_file = work / f"{how}-{seed}.review.csv"
    review_file.unlink(missing_ok=True)  # a fresh reviewer every run (the work folder keeps the embeddings)
    model = fit(pool["emb"][seed_idx], pool["truth"][seed_idx])
    for r, n in enumerate(rounds):
        review_round(model, pool, how, n, review_file, seed * 10 + r)
        model = fit(*training_set(pool, seed_idx, review_file))
    return event_f1(model, held)


def load(work: Path, devsets: bool = False) -> tuple[dict, tuple]:
    recs = recordings(work, devsets)
    paths, starts, embs, truths = [], [], [], []
    for seed in POOL_SEEDS:
        path, truth = recs[seed]
        s, e = embed(path, work / f"rec_{seed}.npz")
        paths += [str(path)] * len(s)
        starts.append(s)
        embs.append(e)
        truths.append(window_truth(s, truth))
    pool = {"path": np.array(paths), "starts": np.concatenate(starts), "emb": np.concatenate(embs),
            "truth": np.concatenate(truths)}  # fmt: skip
    pool["index"] = {(p, round(float(s), 3)): i for i, (p, s) in enumerate(zip(pool["path"], pool["starts"]))}
    path, truth = recs[HELD_OUT_SEED]
    s, e = embed(path, work / f"rec_{HELD_OUT_SEED}.npz")
    return pool, (s, e, truth, RECORDING["duration_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument(
        "--devsets", action="store_true", help="real clips of ../shared/devsets (bench/soundscape.py)"
    )
    ap.add_argument("--out", default=None, help="work folder (recordings, cached embeddings, review files)")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="review-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cpu, wall = time.process_time(), time.perf_counter()
    pool, held = load(work, args.devsets)
    embed_cpu = time.process_time() - cpu
    share = np.bincount(pool["truth"], minlength=4) / len(pool["truth"])
    shares = ", ".join(f"{c} {s:.0%}" for c, s in zip(CLASSES, share))
    print(f"pool {len(pool['truth'])} windows ({shares}); held out {len(held[0])} windows, {len(held[2])} "
          f"events; embedding {embed_cpu:.0f} s CPU")  # fmt: skip
    strategies = {"seed only": [], "random 100": [100], "uncertain 2×50": [50, 50], "top 2×50": [50, 50],
                  "balanced 2×50": [50, 50]}  # fmt: skip
    results: dict[str, list[float]] = {k: [] for k in strategies}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        have = [np.flatnonzero(pool["truth"] == c) for c in range(len(CLASSES))]
        seed_idx = np.concatenate([rng.choice(h, min(2, len(h)), replace=False) for h in have if len(h)])
        for name, rounds in strategies.items():
            how = name.split()[0] if rounds else "none"
            results[name].append(run_strategy(how, rounds, pool, held, seed_idx, work, seed))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items()), flush=True)
    print("\nstrategy          event F1 mean ± sd (per seed)")
    for name, f1 in results.items():
        print(f"{name:<17} {np.mean(f1):.3f} ± {np.std(f1):.3f}  ({' '.join(f'{v:.3f}' for v in f1)})")
    gain = np.array(results["uncertain 2×50"]) - np.array(results["random 100"])
    print(f"\nuncertain − random: {gain.mean():+.3f} (per seed {' '.join(f'{g:+.3f}' for g in gain)}); "
          f"acceptance ≥ +0.05: {'met' if gain.mean() >= 0.05 else 'NOT met'}")  # fmt: skip
    used, took = time.process_time() - cpu, time.perf_counter() - wall
    print(f"CPU {used:.0f} s (embedding {embed_cpu:.0f} s), wall {took:.0f} s")


if __name__ == "__main__":
    main()
