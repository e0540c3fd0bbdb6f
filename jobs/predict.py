"""Classify audio files from the shell: one line (or one JSON object) per file, as each is done.

    python -m jobs.predict FILE... [--model DIR|USER/NAME[@rev]] [--top-k K] [--json] [--backend B]

The model defaults to $EARSHOT_MODEL. Files longer than twice the model's clip length are scored in
windows (mean of window probabilities). A file that cannot be read is reported on stderr with its name
and the others still run; the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jobs._cli import run
from learner.serve.backends import BACKEND_CHOICES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.predict", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format the decoder reads)")
    p.add_argument("--model", default=None, help="model directory or Hub id (default: $EARSHOT_MODEL)")
    p.add_argument("--top-k", type=int, default=3, help="labels per file (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="auto = ONNX when the model directory has model.onnx, else torch")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    model = args.model or os.environ.get("EARSHOT_MODEL")
    if not model:
        raise ValueError("no model: pass --model DIR|USER/NAME or set EARSHOT_MODEL")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    from learner.audio.decode import AudioDecodeError
    from learner.serve.predictor import Predictor

    predictor = Predictor.from_pretrained(model, backend=args.backend, threads=args.threads)
    failed = 0
    for path in args.files:
        try:
            r = predictor.predict(path, top_k=args.top_k)
        except (AudioDecodeError, OSError) as e:
            failed += 1
            print(f"earshot: {e if path in str(e) else f'{path}: {e}'}", file=sys.stderr, flush=True)
            continue
        if args.json:
            line = json.dumps({"file": path, "label": r.label, "score": round(r.score, 6),
                               "top_k": [{"label": lab, "score": round(s, 6)} for lab, s in zip(r.labels, r.scores)],
                               "duration_s": round(r.duration_s, 3), "windows": len(r.window_starts)})
        else:
            line = f"{path}\t" + "  ".join(f"{lab} {s:.3f}" for lab, s in zip(r.labels, r.scores))
        print(line, flush=True)
    if failed:
        print(f"earshot: {failed} of {len(args.files)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
