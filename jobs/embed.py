"""Embed folders, globs or manifests of audio into parquet: one vector per file (or per window), resumable.

    earshot embed INPUT... --model MODEL_DIR|USER/NAME|BACKBONE --output OUT.parquet [--windows WIN,HOP]
                  [--resume | --overwrite] [--engine local|ray]

MODEL is a pretrained audio backbone by name, or an earshot model (its penultimate-layer features). OUT is a
folder of parts with columns path, start_s, end_s, vector (fixed-size float32 list), error, …: one row per
file (start 0, end its duration), or with `--windows` one row per window. A file that cannot be read is one
row with its error and no vector. Discovery, decoding workers, resume and the Ray engine are jobs.score's.
Search it with `earshot search QUERY --index OUT.parquet`.
"""

from __future__ import annotations

from jobs._cli import add_inputs_arg, add_quiet_arg, inputs_of, run
from jobs._cli import parser as new_parser
from jobs.score import add_run_args, add_windows_arg, ray_options, run_options


def parser():
    p = new_parser("earshot embed", __doc__)
    add_inputs_arg(p, "folder (recursive), glob, manifest (.csv with a path column, or .txt) or file")
    p.add_argument(
        "--model", required=True, help="pretrained backbone name, or an earshot model directory or Hub id"
    )
    p.add_argument("--out", "--output", dest="out", required=True, help="output folder of parts (.parquet)")
    add_windows_arg(p, "one vector per window of WIN s every HOP s (default: one per file)")
    add_run_args(p, "embedded")
    add_quiet_arg(p, "no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    inputs = inputs_of(p, args)
    opts = run_options(args, kind="embeddings")
    if args.engine == "ray":
        from learner.score.ray_engine import score_ray

        summary = score_ray(inputs, args.model, opts, ray_options(args))
    else:
        from learner.embed.load import load_embedder
        from learner.score.local import score

        embedder = load_embedder(
            args.model,
            device=args.device,
            threads=args.threads,
            batch_size=args.batch_size,
            clip_s=args.window[0] if args.window else None,
        )
        summary = score(inputs, embedder, opts)
    for line in summary.lines():
        print(f"earshot: {line.replace('scored ', 'embedded ', 1)}")
    return 0


if __name__ == "__main__":
    run(main)
