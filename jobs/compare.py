"""Train several architectures on the same split (or folds) and write a comparison report.

    python -m jobs.compare --data PATH|RECIPE --archs xresnet18,conv1d_raw,mfcc_cnn1d --epochs N --out DIR
                           [--cv [--n-folds K]] [--pretrained imagenet|none|SRC|ARCH=SRC,...] [split options]
                           [audio options]

Writes DIR/report.md, DIR/report.json, DIR/confusion_matrices.png, DIR/learning_curves.png and one model
directory per arch (DIR/ARCH/, or DIR/ARCH/fold-K/ with --cv).
"""

from __future__ import annotations

import argparse

from jobs._cli import add_training_args, archs, audio_config, run, train_args
from jobs._cli import parser as new_parser


def list_archs() -> list[str]:
    return list(archs())


def parser() -> argparse.ArgumentParser:
    p = new_parser("python -m jobs.compare", __doc__)
    p.add_argument("--data", required=True, help="folder-per-class, CSV manifest or recipe name")
    p.add_argument(
        "--archs",
        default="xresnet18,conv1d_raw,mfcc_cnn1d",
        help=f"comma-separated, from: {', '.join(list_archs())}",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="out",
        required=True,
        help="report folder (one model directory per arch inside)",
    )
    p.add_argument(
        "--pretrained",
        default="imagenet",
        help="imagenet (xresnet*; the others start from scratch, recorded in the report; needs the network), "
        "none, a weights file or earshot model dir/Hub id (for the archs it fits), or ARCH=SRC,ARCH=SRC",
    )
    p.add_argument("--cv", action="store_true", help="cross-validate every arch over the same folds")
    p.add_argument(
        "--n-folds", type=int, default=None, help="with --cv and no fold column: assign K folds (by group)"
    )
    p.add_argument(
        "--pickle",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also write each model's fastai model.pkl",
    )
    add_training_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from learner.score.compare import compare

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in archs if a not in list_archs()]
    if unknown:
        raise ValueError(f"--archs: unknown {', '.join(unknown)}; choose from {', '.join(list_archs())}")
    if args.n_folds is not None and not args.cv:
        raise ValueError("--n-folds only applies with --cv")
    targs = train_args(args, pickle=args.pickle)
    report = compare(archs, targs, audio_config(args), cv=args.cv, n_folds=args.n_folds)
    for a in report["archs"]:
        print(
            f"earshot: {a['arch']:12} accuracy {a['accuracy']:.3f} · top-3 {a['top3_accuracy']:.3f} · "
            f"MAP@3 {a['map3']:.3f} · macro F1 {a['macro_f1']:.3f} · start {a['start']} · "
            f"{a['train_time_s']:.0f} s"
        )
    print(f"earshot: report → {args.out}/report.md ({report['total_time_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    run(main)
