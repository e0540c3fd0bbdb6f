"""The `earshot` console command: `earshot JOB [flags]` runs `jobs.JOB.main(flags)`, the same code and flags
as
`python -m jobs.JOB` (which keeps working). Nothing heavy is imported before the job is chosen."""

from __future__ import annotations

import importlib
import sys

from jobs._cli import run

#: job → what it does (shown by `earshot --help`; each job's own `--help` lists its flags)
JOBS = {
    "train": "train a classifier on a folder, CSV manifest or dataset recipe → a model folder",
    "evaluate": "metrics of a model folder or Hub id on labelled data",
    "predict": "classify audio files, one line (or JSON object) per file",
    "score": "score folders, globs or manifests into parquet / CSV / JSONL, resumable",
    "embed": "embed files or windows into a parquet of vectors (a backbone or a model's features), resumable",
    "search": "nearest windows to a query clip (or row) in an embedded parquet; hits as a manifest",
    "review": "pick windows of a scoring run to review, answer them, calibrate thresholds from the answers",
    "push": "upload a model folder to the Hugging Face Hub",
    "export": "write model.onnx (and model.int8.onnx) for torch-free serving",
    "compare": "train several archs on the same split (or folds) and report side by side",
    "datasets": "list, describe and fetch dataset recipes",
    "demo": "serve the Gradio demo on a model folder or Hub id (needs the demo extra)",
}


def usage() -> str:
    width = max(map(len, JOBS))
    lines = [f"  {name:<{width}}  {what}" for name, what in JOBS.items()]
    return (
        "usage: earshot JOB [flags]   (`earshot JOB --help` for a job's flags; same as `python -m "
        "jobs.JOB`)\n\n"
        "jobs:\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    """Dispatch to one job; its errors become one line on stderr (`jobs._cli.run`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from learner import __version__

        print(f"earshot {__version__}")
        return 0
    job, rest = args[0], args[1:]
    if job not in JOBS:
        print(f"earshot: unknown job {job!r}\n\n{usage()}", file=sys.stderr)
        return 2
    import jobs._cli

    jobs._cli.COMMAND = "earshot"  # usage lines say `earshot JOB`, as typed
    module = importlib.import_module(f"jobs.{job}")
    run(lambda: module.main(rest))
    return 0  # run() exits; kept for callers that stub it


def console() -> None:
    """Entry point of the installed `earshot` script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
