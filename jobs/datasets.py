"""List, describe, fetch and build the dataset recipes in datasets/*.toml.

    python -m jobs.datasets list
    python -m jobs.datasets info NAME
    python -m jobs.datasets fetch NAME [--to DIR] [--from ARCHIVE|DIR] [--classes A,B,...]
    python -m jobs.datasets build spoken-digits-synth [--to DIR] [--small]

Without --to, data goes to $EARSHOT_DATA/NAME (default ~/.cache/earshot/datasets/NAME), where `--data NAME`
finds it. Errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import csv
import sys
import warnings
from collections import Counter
from pathlib import Path

from jobs._cli import HelpFormatter, add_quiet_arg, run
from jobs._cli import parser as new_parser


def _summary(manifest: Path) -> str:
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    multi = bool(rows) and "labels" in rows[0]  # a multi-label manifest: `labels`, ";"-separated
    classes = {c for r in rows for c in (r["labels"].split(";") if multi else [r["label"]]) if c}
    parts = [f"{len(rows)} clips", f"{len(classes)} classes" + (" (multi-label)" if multi else "")]
    for col in ("fold", "split", "group"):
        if rows and col in rows[0]:
            counts = Counter(r[col] for r in rows)
            parts.append(
                f"{len(counts)} groups"
                if col == "group"
                else f"{col}s " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            )
    return "; ".join(parts)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"earshot: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = new_parser("python -m jobs.datasets", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the known recipes", formatter_class=HelpFormatter)
    sub.add_parser(
        "info", help="source, licence, citation, size, splits", formatter_class=HelpFormatter
    ).add_argument("name")
    f = sub.add_parser(
        "fetch", help="download (or take --from), extract, write manifest.csv", formatter_class=HelpFormatter
    )
    f.add_argument("name")
    f.add_argument("--to", default=None, help="target folder (default: $EARSHOT_DATA/NAME)")
    f.add_argument("--from", dest="source", default=None, help="an archive or folder downloaded elsewhere")
    f.add_argument("--classes", default=None, help="comma-separated class subset, e.g. Bark,Cough,Knock")
    f.add_argument("--no-verify", action="store_true", help="skip the checksum check")
    f.add_argument("--keep-archives", action="store_true", help="keep downloaded archives after extracting")
    add_quiet_arg(f, "no progress bar")
    b = sub.add_parser("build", help="build a generated (synth) dataset", formatter_class=HelpFormatter)
    b.add_argument("name")
    b.add_argument("--to", default=None, help="target folder (default: $EARSHOT_DATA/NAME)")
    b.add_argument("--small", action="store_true", help="the test-sized set (60 clips)")
    add_quiet_arg(b, "no notes while building")
    args = p.parse_args(argv)
    warnings.showwarning = _show_warning

    from learner.data import recipes

    if args.cmd == "list":
        for r in recipes.list_recipes():
            print(f"{r.name:22} {r.kind:9} {r.title} — {r.info.get('size', '')}")
        return 0
    r = recipes.get_recipe(args.name)
    if args.cmd == "info":
        print(f"{r.title} ({r.name}, {r.kind})")
        for key in recipes.INFO_FIELDS:
            if key in r.info:
                print(f"  {key}: {' '.join(str(r.info[key]).split())}")
        for d in r.downloads:
            check = (
                f"sha256 {d.sha256}" if d.sha256 else f"md5 {d.md5}" if d.md5 else "none published (skipped)"
            )
            print(f"  download: {' | '.join(d.urls)}\n    checksum: {check}")
        home = recipes.data_home() / r.name / recipes.MANIFEST
        print(
            f"  local: {home if home.exists() else 'not fetched (default target ' + str(home.parent) + ')'}"
        )
        return 0
    if args.cmd == "build" and r.kind != "synth":
        raise ValueError(f"{r.name} is downloaded, not generated: python -m jobs.datasets fetch {r.name}")
    if args.cmd == "build":
        manifest = recipes.fetch(r, args.to, small=args.small, progress=not args.quiet)
    else:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
        manifest = recipes.fetch(
            r,
            args.to,
            source=args.source,
            progress=not args.quiet,
            verify=not args.no_verify,
            classes=classes,
            keep_archives=args.keep_archives,
        )
    print(f"earshot: wrote {manifest} ({_summary(manifest)})")
    return 0


if __name__ == "__main__":
    run(main)
