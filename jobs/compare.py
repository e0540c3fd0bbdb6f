"""Train several architectures on the same split (or folds) and write a comparison report.

    python -m jobs.compare --data PATH|RECIPE --archs xresnet18,conv1d_raw,mfcc_cnn1d --epochs N --out DIR
                           [--cv [--n-folds K]] [--pretrained imagenet|none|SRC|ARCH=SRC,...] [split options] [audio options]

Writes DIR/report.md, DIR/report.json, DIR/confusion_matrices.png, DIR/learning_curves.png and one model
directory per arch (DIR/ARCH/, or DIR/ARCH/fold-K/ with --cv).
"""

from __future__ import annotations

import argparse

from jobs._cli import add_audio_args, add_split_args, audio_config, run
from learner.models import list_archs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.compare", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder-per-class, CSV manifest or recipe name")
    p.add_argument("--archs", default="xresnet18,conv1d_raw,mfcc_cnn1d", help=f"comma-separated, from: {', '.join(list_archs())}")
    p.add_argument("--out", required=True, help="report folder (one model directory per arch inside)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--bs", type=int, default=32, help="batch size")
    p.add_argument("--pretrained", default="imagenet",
                   help="imagenet (xresnet*; the others start from scratch, recorded in the report; needs the network), "
                        "none, a weights file or earshot model dir/Hub id (for the archs it fits), or ARCH=SRC,ARCH=SRC")
    p.add_argument("--freeze-epochs", type=int, default=1, help="epochs training only the new head (pretrained runs)")
    p.add_argument("--cv", action="store_true", help="cross-validate every arch over the same folds")
    p.add_argument("--n-folds", type=int, default=None, help="with --cv and no fold column: assign K folds (by group)")
    p.add_argument("--cache-dir", default=None, help="also cache decoded signals on disk here")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    p.add_argument("--pickle", action="store_true", help="also write each model's fastai model.pkl")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_split_args(p)
    add_audio_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from learner.compare import compare
    from learner.train import TrainArgs

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in archs if a not in list_archs()]
    if unknown:
        raise ValueError(f"--archs: unknown {', '.join(unknown)}; choose from {', '.join(list_archs())}")
    if args.n_folds is not None and not args.cv:
        raise ValueError("--n-folds only applies with --cv")
    targs = TrainArgs(
        data=args.data, out=args.out, epochs=args.epochs, lr=args.lr, bs=args.bs, pretrained=args.pretrained,
        valid_pct=args.valid_pct, valid_fold=args.valid_fold, group_col=args.group_col, group_regex=args.group_regex,
        seed=args.seed, freeze_epochs=args.freeze_epochs, workers=args.workers, cache_dir=args.cache_dir,
        pickle=args.pickle, progress=not args.quiet, auto_duration=args.duration is None,
    )
    report = compare(archs, targs, audio_config(args), cv=args.cv, n_folds=args.n_folds)
    for a in report["archs"]:
        print(f"earshot: {a['arch']:12} accuracy {a['accuracy']:.3f} · top-3 {a['top3_accuracy']:.3f} · "
              f"MAP@3 {a['map3']:.3f} · macro F1 {a['macro_f1']:.3f} · start {a['start']} · {a['train_time_s']:.0f} s")
    print(f"earshot: report → {args.out}/report.md ({report['total_time_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    run(main)
