"""Evaluate a model on labelled data: writes metrics.json and confusion_matrix.png.

    python -m jobs.evaluate --model DIR|USER/NAME[@rev] --data PATH [--subset auto|all|valid|test] [--out DIR]

Events on annotated long recordings (docs/evaluating.md): `--boxes` names the annotations (Raven tables,
Audacity labels, a box CSV, or a folder of recordings with tables beside them); the model scores each
recording once, or `--events OUT` takes a `jobs.score --windows` run instead of a model.

    python -m jobs.evaluate --model DIR --boxes ANNOTATIONS --out DIR [--match onset|overlap]
                            [--target-precision 0.9 | --max-false-per-hour 2 [--write-thresholds]]

`--subset auto` (the default) evaluates the held-out (validation) rows when DATA is the data the model was
trained on (config.json records which files those were), and every row of any other data.
"""

from __future__ import annotations

import json
import sys

from jobs._cli import add_backend_arg, add_quiet_arg, run
from jobs._cli import parser as new_parser
from jobs._evaluate_events import add_event_args, evaluate_events_main


def parser():
    p = new_parser("python -m jobs.evaluate", __doc__)
    p.add_argument("--model", default=None, help="model directory or Hub id")
    p.add_argument("--data", default=None, help="folder-per-class, CSV manifest or recipe name")
    p.add_argument(
        "--subset",
        default="auto",
        choices=["auto", "all", "valid", "test"],
        help="auto = the held-out rows of the model's own training data, else all rows; "
        "valid = the validation split the model was trained with",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="out",
        default=None,
        help="where to write metrics.json + plots (default: print only)",
    )
    add_backend_arg(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_quiet_arg(p, "no progress bar or notes")
    add_event_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.boxes is not None:
        return evaluate_events_main(args)
    if args.model is None or args.data is None:
        raise ValueError("give --model and --data (clips), or --boxes with --model or --events (recordings)")
    from learner.report.metrics import summary_line
    from learner.report.multilabel import multilabel_summary
    from learner.score.evaluate import evaluate
    from learner.serve.predictor import Predictor

    predictor = Predictor.from_pretrained(args.model, backend=args.backend)
    m = evaluate(
        args.model, args.data, subset=args.subset, out=args.out, predictor=predictor, progress=not args.quiet
    )
    if args.subset == "auto" and m["training_data"] and not args.quiet:
        print(
            f"earshot: {args.data} is the data {args.model} was trained on: evaluating its held-out "
            "(validation) "
            f"rows only (--subset all scores every row, the training rows too)",
            file=sys.stderr,
        )
    elif m["split"] == "all" and m["training_data"] is None:
        print(
            f"earshot: warning: {args.model} does not record which files it trained on; if {args.data} holds "
            f"them, these {m['n_rows_in_data']} rows overstate accuracy (--subset valid: the held-out rows "
            "of its split)",
            file=sys.stderr,
        )
    if m["excluded_files"]:
        print(f"earshot: {len(m['excluded_files'])} file(s) could not be read:")
        for path, why in m["excluded_files"].items():
            print(f"  {path}: {why}")
    print(
        json.dumps({k: v for k, v in m.items() if k not in ("per_class", "confusion")}, indent=2)
        if args.json
        else f"earshot: {(multilabel_summary if m.get('task') == 'multi' else summary_line)(m)}"
    )
    return 0


if __name__ == "__main__":
    run(main)
