"""Score folders, globs or manifests of audio into parquet (or CSV / JSONL): one row per file, resumable.

    python -m jobs.score --model DIR|USER/NAME[@rev] --input DIR|GLOB|MANIFEST [...] --output OUT.parquet
                         [--windows WIN,HOP [--threshold 0.5]] [--format parquet|csv|jsonl]
                         [--resume | --overwrite] [--engine local|ray [--ray-address ADDR]]

OUT is a folder of parts (part-00000.parquet, …), each renamed into place when complete; per-window rows
go to OUT.windows.parquet. See docs/scoring.md.
"""

from __future__ import annotations

import argparse

from jobs._cli import run
from learner.score.writers import FORMATS
from learner.serve.backends import BACKEND_CHOICES


def _windows(text: str) -> tuple[float, float]:
    try:
        win, hop = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIN,HOP in seconds (e.g. 5,2.5), got {text!r}") from None
    if win <= 0 or hop <= 0:
        raise argparse.ArgumentTypeError(f"window and hop must be positive, got {text!r}")
    return win, hop


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.score", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model directory or Hub id")
    p.add_argument("--input", required=True, nargs="+", help="folder (recursive), glob ('**' recursive), "
                   "manifest (.csv/.tsv with a path column, or .txt one path a line) or file")
    p.add_argument("--output", required=True, help="output folder of parts, e.g. scores.parquet")
    p.add_argument("--format", default="parquet", choices=FORMATS)
    p.add_argument("--windows", type=_windows, default=None, metavar="WIN,HOP",
                   help="score every file in windows of WIN s every HOP s; writes OUT.windows.* and event counts")
    p.add_argument("--threshold", type=float, default=0.5, help="window score that makes an event (with --windows)")
    p.add_argument("--top-k", type=int, default=5)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue OUT: skip files already scored (path, size, mtime)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--retry-errors", action="store_true", help="with --resume: score files that failed before again")
    p.add_argument("--batch-size", type=int, default=32, help="model inputs per forward pass")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count - 1)")
    p.add_argument("--decode-timeout", type=float, default=120.0, help="seconds one file may take to decode")
    p.add_argument("--part-rows", type=int, default=2048, help="rows per part file (a kill loses at most one part)")
    p.add_argument("--part-seconds", type=float, default=60.0, help="commit a part at least this often")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="auto = ONNX when the model directory has model.onnx, else torch")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    r = p.add_argument_group("ray engine")
    r.add_argument("--ray-address", default=None, help="cluster address (default: start Ray locally)")
    r.add_argument("--actors", type=int, default=None, help="model actors (default: GPUs, else CPUs - decoders)")
    r.add_argument("--decoders", type=int, default=None, help="decoding actors (default: CPUs / 4, at least 1)")
    r.add_argument("--ray-chunk", type=int, default=20000, help="files per Ray Dataset run (a kill loses at most one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.retry_errors and not args.resume:
        raise ValueError("--retry-errors needs --resume")
    from learner.score.local import ScoreOptions

    opts = ScoreOptions(
        output=args.output, fmt=args.format, window=args.windows, threshold=args.threshold, top_k=args.top_k,
        batch_size=args.batch_size, workers=args.workers, decode_timeout_s=args.decode_timeout,
        part_rows=args.part_rows, part_seconds=args.part_seconds, resume=args.resume, overwrite=args.overwrite,
        retry_errors=args.retry_errors, progress=not args.quiet,
    )
    if args.engine == "ray":
        from learner.score.ray_engine import RayOptions, score_ray

        summary = score_ray(args.input, args.model, opts, RayOptions(
            address=args.ray_address, actors=args.actors, decoders=args.decoders, chunk=args.ray_chunk,
            backend=args.backend, device=args.device, threads=args.threads))
    else:
        from learner.score.local import score
        from learner.serve.predictor import Predictor

        predictor = Predictor.from_pretrained(args.model, backend=args.backend, device=args.device,
                                              threads=args.threads, batch_size=args.batch_size)
        summary = score(args.input, predictor, opts)
    for line in summary.lines():
        print(f"earshot: {line}")
    return 0


if __name__ == "__main__":
    run(main)
