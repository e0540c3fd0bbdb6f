"""Review a model's detections: pick windows to check, answer them, and turn the answers into training data,
a Raven table and calibrated thresholds.

    earshot review pick RUN [--from windows|events] [--pick uncertain|top|random|balanced] [-n 50]
                            [--threshold 0.5 | --model DIR] [--label L] [--review-file F] [--out queue.csv]
    earshot review ask RUN ...        the same picks, answered in the terminal (y / n / o LABEL / u / z / q)
    earshot review summary F          answers per label
    earshot review boxes F --out boxes.csv [--with DATA]   the answers as a box table (`jobs.train --data`)
    earshot review raven F --out reviewed.txt       one combined Raven selection table of the yes / other
    earshot review calibrate F [--precision 0.9] [--plot calibration.png] [--model DIR --write]

RUN is a scoring output made with `--windows` (or its .windows / .events folder), or the hits manifest of
`earshot search --out`. The review file F (default: RUN's stem + .review.csv) is append-only and shared:
windows answered by anyone are not picked again. The Review tab of the demo (`python app.py --review RUN`)
writes the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs._cli import parser as new_parser
from jobs._cli import run

ASK_KEYS = {"y": "yes", "n": "no", "o": "other", "u": "unsure", "z": "undo"}


def parser():
    p = new_parser("python -m jobs.review", __doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("pick", "write the next windows to review"), ("ask", "answer them in the terminal")):
        s = sub.add_parser(name, help=what)
        s.add_argument("run", metavar="RUN", help="scoring output (with windows) or search hits CSV")
        s.add_argument("--from", dest="side", default="windows", choices=["windows", "events"])
        s.add_argument("--pick", default="uncertain", choices=["uncertain", "top", "random", "balanced"])
        s.add_argument("-n", type=int, default=50, help="windows to pick")
        s.add_argument("--threshold", type=float, default=None, help="for --pick uncertain (default 0.5)")
        s.add_argument("--model", default=None, help="take the uncertain pick's thresholds from this model")
        s.add_argument("--label", action="append", default=None, help="only windows of this label (repeat)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--review-file", default=None, help="the review file (default: RUN's stem.review.csv)")
        if name == "pick":
            s.add_argument("--out", default=None, help="write the picks as CSV (else print them)")
        else:
            s.add_argument("--reviewer", default="", help="your name, written with each answer")
    for name, what in (("summary", "answers per label"), ("boxes", "box table"), ("raven", "Raven table")):
        s = sub.add_parser(name, help=what)
        s.add_argument("review_file", metavar="REVIEW.csv")
        if name != "summary":
            s.add_argument("--out", required=True)
        if name == "boxes":
            s.add_argument("--with", dest="original", default=None, metavar="DATA",
                           help="add the model's original training data (clips or annotated recordings): "
                           "--out is then a review-format CSV for `jobs.train --data`")  # fmt: skip
    s = sub.add_parser("calibrate", help="thresholds for a wanted precision from the answers")
    s.add_argument("review_file", metavar="REVIEW.csv")
    s.add_argument("--precision", type=float, default=0.9, help="wanted precision")
    s.add_argument("--plot", default=None, help="write the logistic fits as PNG here")
    s.add_argument("--model", default=None, help="the model folder the thresholds are for")
    s.add_argument("--write", action="store_true", help="write the thresholds into --model's config.json")
    return p


def _picks(args):
    from learner.data.review import default_review_file
    from learner.score.picks import load_candidates, pick

    review_file = Path(args.review_file or default_review_file(args.run))
    answered = []
    if review_file.exists():
        from learner.data.review import read_review

        done = read_review(review_file)
        answered = list(done[["path", "start_s", "end_s", "label"]].itertuples(index=False, name=None))
    threshold = args.threshold if args.threshold is not None else 0.5
    if args.model and args.threshold is None:
        from learner.folder import read_config

        threshold = read_config(Path(args.model)).get("thresholds") or 0.5
    table = load_candidates(args.run, args.side)
    chosen = pick(
        table, args.pick, args.n, threshold=threshold, answered=answered, labels=args.label, seed=args.seed
    )
    return chosen, review_file


def _pick(args) -> int:
    import pandas as pd

    chosen, review_file = _picks(args)
    df = pd.DataFrame([c.__dict__ for c in chosen])
    if args.out:
        if Path(args.out).exists():
            raise FileExistsError(f"{args.out} already exists; choose another name (nothing was overwritten)")
        df.to_csv(args.out, index=False)
        print(f"earshot: {len(df)} window(s) to review → {args.out} (answers go to {review_file})")
    else:
        print(df.to_csv(index=False, sep="\t"), end="")
    return 0


def _ask(args) -> int:
    from learner.data.review import append_answer

    chosen, review_file = _picks(args)
    i = 0
    while i < len(chosen):
        c = chosen[i]
        print(f"[{i + 1}/{len(chosen)}] {c.path} {c.start_s:.2f}-{c.end_s:.2f} s {c.label} {c.score:.3f} ? ")
        words = sys.stdin.readline().split()
        if not words or words[0] == "q":
            break
        key, rest = words[0].lower(), " ".join(words[1:])
        if key not in ASK_KEYS or (key == "o" and not rest):
            print("  y yes · n no · o LABEL other · u unsure · z undo · q quit")
            continue
        if key == "z":
            if i:
                i -= 1
                append_answer(review_file, chosen[i], "undo", reviewer=args.reviewer)
            continue
        append_answer(review_file, c, ASK_KEYS[key], rest or None, reviewer=args.reviewer)
        i += 1
    print(f"earshot: {i} answer(s) in {review_file}")
    return 0


def _summary(args) -> int:
    from learner.data.review import read_review

    review = read_review(args.review_file)
    counts = review.groupby(["label", "answer"]).size().unstack(fill_value=0)
    print(counts.to_string() if len(counts) else "no answers")
    print(f"earshot: {len(review)} window(s) answered, {review.attrs['undone']} undone")
    return 0


def _export(args) -> int:
    from learner.data.review import read_review, review_boxes, write_raven

    review = read_review(args.review_file)
    if args.command == "raven":
        write_raven(review, args.out)
        print(f"earshot: {int(review['answer'].isin(['yes', 'other']).sum())} selection(s) → {args.out}")
        return 0
    if Path(args.out).exists():
        raise FileExistsError(f"{args.out} already exists; choose another name (nothing was overwritten)")
    if args.original:
        from learner.data.review import with_original

        both = with_original(review, _original_boxes(args.original), args.original)
        both.to_csv(args.out, index=False)
        n = int((both["pick"] == "original").sum())
        print(f"earshot: {len(review)} answer(s) + {n} from {args.original} → {args.out}")
        return 0
    boxes = review_boxes(review)
    boxes.to_csv(args.out, index=False)
    print(f"earshot: {len(boxes)} box(es) → {args.out} ({boxes.attrs['unsure']} unsure left out)")
    return 0


def _original_boxes(data: str):
    """A model's original training data as boxes: annotated recordings as they are, clips whole."""
    import pandas as pd

    from learner.data.annotations import is_annotations, read_boxes

    if is_annotations(data):
        return read_boxes(data)
    import soundfile as sf

    from learner.data.manifest import load_manifest

    clips = load_manifest(data)
    if "label" not in clips:
        raise ValueError(f"{data}: a multi-label manifest cannot be added to a review yet")
    ends = [sf.info(p).duration for p in clips["path"]]
    return pd.DataFrame({"path": clips["path"], "start_s": 0.0, "end_s": ends, "label": clips["label"]})


def _calibrate(args) -> int:
    from learner.data.review import read_review
    from learner.folder import CONFIG, write_thresholds
    from learner.report.calibration import calibrate_review, plot_calibration

    if args.write and not args.model:
        raise ValueError("--write needs --model (the model folder to write the thresholds into)")
    review = read_review(args.review_file)
    found = calibrate_review(review, args.precision)
    print("label\tthreshold\tanswers\tyes\tnote")
    for label, r in found.items():
        t = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
        print(f"{label}\t{t}\t{r['n']}\t{r['n_yes']}\t{r.get('reason') or ''}")
    if args.plot:
        plot_calibration(review, args.plot)
        print(f"earshot: plot → {args.plot}")
    if args.write:
        chosen = {k: r["threshold"] for k, r in found.items() if r["threshold"] is not None}
        source = f"review {args.review_file}: P(yes) >= {args.precision:g} (logistic fit)"
        write_thresholds(args.model, chosen, source=source)
        print(f"earshot: {len(chosen)} threshold(s) → {Path(args.model) / CONFIG}")
    return 0


COMMANDS = {"pick": _pick, "ask": _ask, "summary": _summary, "boxes": _export, "raven": _export}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return {**COMMANDS, "calibrate": _calibrate}[args.command](args)


if __name__ == "__main__":
    run(main)
