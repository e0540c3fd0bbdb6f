"""Classify audio files from the shell: one line (or one JSON object) per file, as each is done.

    python -m jobs.predict FILE|DIR|GLOB|LIST... [--model DIR|USER/NAME[@rev]] [--top-k K] [--json]
                           [--backend B]

The model defaults to $EARSHOT_MODEL. A folder is read recursively (audio extensions only; for large
folders, `python -m jobs.score` writes parquet, resumably). Files longer than twice the model's clip
length are scored in windows (mean of window probabilities), long ones block by block in bounded memory;
files longer than --max-duration (default: jobs.score's 4 hours; the decoded-sample budget, rate × channels,
scales with it) or bigger than 8 GiB are refused from their header. A file that cannot be read is reported on
stderr with its name (and, with --json, as a line with an `error`); the others still run and the exit
status is 1 if any file failed. JSON keys are the columns of jobs.score's parquet.
"""

from __future__ import annotations

import json
import os
import sys

from jobs._cli import add_backend_arg, add_inputs_arg, add_quiet_arg, add_top_k_arg, inputs_of, run
from jobs._cli import parser as new_parser


def parser():
    p = new_parser("python -m jobs.predict", __doc__)
    add_inputs_arg(p, "audio files (any format the decoder reads) or folders")
    p.add_argument("--model", default=None, help="model directory or Hub id (default: $EARSHOT_MODEL)")
    add_top_k_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    add_backend_arg(p)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: all)")
    p.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="S",
        help="refuse files longer than S seconds (default: 14400, as jobs.score)",
    )
    add_quiet_arg(p, "no summary line on stderr")
    return p


def expand(items: list[str]) -> tuple[list[str], list[str]]:
    """Files as named; folders, globs (quoted: `'clips/*.wav'`) and lists (.txt/.lst one path a line,
    .csv/.tsv with a `path` column) as the files they name, read as jobs.score reads them; also the inputs
    that named no audio (reported, never silently dropped)."""
    import glob

    from learner.score.discover import MANIFEST_SUFFIXES, discover

    files, empty = [], []
    for item in items:
        listed = os.path.isfile(item) and os.path.splitext(item)[1].lower() in MANIFEST_SUFFIXES
        if os.path.isdir(item) or listed or (not os.path.lexists(item) and glob.has_magic(item)):
            found = [f.path for f in discover([item]).files]
            files += found
            if not found:
                empty.append(item)
        else:
            files.append(item)
    return files, empty


def result_row(path: str, r=None, error: str | None = None) -> dict:
    """One JSON line: the keys of jobs.score's parquet rows (path, label, score, top_k, ..., error); a name
    that is not UTF-8 is written as jobs.score writes it (`path` with `\\xNN`, plus `path_hex`)."""
    from learner.score.paths import clean_text, path_hex, stored_path

    name = {"path": stored_path(path), **({"path_hex": raw} if (raw := path_hex(path)) else {})}
    if r is None:
        return {
            **name,
            "label": None,
            "score": None,
            "top_k": [],
            "duration_s": None,
            "n_windows": 0,
            "error": clean_text(error),
            "warning": None,
            "detected": None,
            "answer": None,
            "rejected": None,
        }
    return {
        **name,
        "label": r.label,
        "score": round(r.score, 6),
        "top_k": [{"label": lab, "score": round(s, 6)} for lab, s in zip(r.labels, r.scores)],
        "duration_s": round(r.duration_s, 3),
        "n_windows": len(r.window_starts) or 1,
        "error": None,
        "warning": clean_text(r.warning) if r.warning else None,
        "detected": list(r.detected),
        "answer": r.answer,  # the top label, or "unknown"/"silence": "not one of the words" (serve.reject)
        "rejected": r.rejected,
    }


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    items = inputs_of(p, args)
    model = args.model or os.environ.get("EARSHOT_MODEL")
    if not model:
        raise ValueError("no model: pass --model DIR|USER/NAME or set EARSHOT_MODEL")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.max_duration is not None and not args.max_duration > 0:
        raise ValueError(f"--max-duration must be positive seconds, got {args.max_duration}")
    from learner.audio import SCORE_MAX_BYTES, SCORE_MAX_S, AudioDecodeError
    from learner.score.paths import one_line
    from learner.serve.predictor import Predictor

    files, empty = expand(items)
    for folder in empty:
        what = "folder" if os.path.isdir(folder) else "list" if os.path.isfile(folder) else "pattern"
        print(f"earshot: {folder}: no audio files in this {what}", file=sys.stderr)
    predictor = Predictor.from_pretrained(model, backend=args.backend, threads=args.threads)
    failed = 0
    for path in files:
        try:
            r = predictor.predict(
                path,
                top_k=args.top_k,
                max_duration_s=args.max_duration or SCORE_MAX_S,
                max_bytes=SCORE_MAX_BYTES,
            )
        except (AudioDecodeError, OSError) as e:
            failed += 1
            reason = getattr(e, "reason", None) or (
                e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            )
            print(
                f"earshot: {one_line(str(e) if path in str(e) else f'{path}: {e}')}",
                file=sys.stderr,
                flush=True,
            )
            if args.json:
                print(json.dumps(result_row(path, error=reason)), flush=True)
            continue
        if args.json:
            line = json.dumps(result_row(path, r))
        else:
            shown = (f"{one_line(lab)} {s:.3f}" for lab, s in zip(r.labels, r.scores))
            line = f"{one_line(path)}\t" + "  ".join(shown)
            if r.rejected:  # "not one of the words": a reject class, or the top one under its threshold
                line += f"\t→ {one_line(r.answer_text)}"
        print(line, flush=True)
    if failed and not args.quiet:
        print(f"earshot: {failed} of {len(files)} file(s) failed", file=sys.stderr)
    return 1 if failed or empty or not files else 0


if __name__ == "__main__":
    run(main)
