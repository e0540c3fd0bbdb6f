"""Evaluate a model on labelled data: writes metrics.json and confusion_matrix.png.

    python -m jobs.evaluate --model DIR|USER/NAME[@rev] --data PATH [--subset all|valid|test] [--out DIR]
"""

from __future__ import annotations

import argparse
import json

from jobs._cli import run
from learner.serve.backends import BACKEND_CHOICES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model directory or Hub id")
    p.add_argument("--data", required=True, help="folder-per-class, CSV manifest or recipe name")
    p.add_argument("--subset", default="all", choices=["all", "valid", "test"],
                   help="valid = the validation split the model was trained with")
    p.add_argument("--out", default=None, help="where to write metrics.json + plots (default: print only)")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="auto = ONNX when the model directory has model.onnx, else torch")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from learner.report.metrics import summary_line
    from learner.serve.predictor import Predictor
    from learner.train.evaluate import evaluate

    predictor = Predictor.from_pretrained(args.model, backend=args.backend)
    m = evaluate(args.model, args.data, subset=args.subset, out=args.out, predictor=predictor, progress=not args.quiet)
    if m["excluded_files"]:
        print(f"earshot: {len(m['excluded_files'])} file(s) could not be read:")
        for path, why in m["excluded_files"].items():
            print(f"  {path}: {why}")
    print(json.dumps({k: v for k, v in m.items() if k not in ("per_class", "confusion")}, indent=2)
          if args.json else f"earshot: {summary_line(m)}")
    return 0


if __name__ == "__main__":
    run(main)
