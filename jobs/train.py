"""Train a classifier on a folder, a CSV manifest or a dataset recipe, and write a model directory.

python -m jobs.train --data PATH --out DIR [--arch xresnet18] [--epochs N] [--lr X|auto] [--bs N]
                     [--pretrained imagenet|none|PATH] [split options] [audio options]
torchrun --nproc_per_node N -m jobs.train ...
    (or accelerate launch -m jobs.train ...: README "Scaling up")
"""

from __future__ import annotations

import argparse

from jobs._cli import (
    add_run_args,
    add_training_args,
    archs,
    audio_config,
    backbone_archs,
    run,
    train_args,
)
from jobs._cli import parser as new_parser


def parser() -> argparse.ArgumentParser:
    p = new_parser("python -m jobs.train", __doc__)
    add_run_args(p)
    p.add_argument("--cv", action="store_true", help="cross-validate: one model per value of the fold column")
    p.add_argument(
        "--threads",
        default="auto",
        help="CPU threads: auto (the cores shared among a launcher's processes, sleeping waits: "
        "no collapse when another program is busy; README: Scaling up) or a number",
    )
    add_training_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # before torch is even imported: offline fails in seconds, in one line (a backbone arch starts from its
    # own weights, installed by make)
    if args.pretrained == "imagenet" and args.arch not in backbone_archs():
        from learner.weights import fetch_imagenet

        fetch_imagenet(args.arch, archs()[args.arch])
    from learner.train.threads import configure_threads

    configure_threads(args.threads)  # before torch loads: OpenMP reads its settings once
    from learner.report.metrics import summary_line
    from learner.train import train
    from learner.train.distributed import is_main_process

    targs = train_args(args)
    cfg = audio_config(args)
    if args.cv:
        from learner.train.crossval import cross_validate

        report = cross_validate(targs, cfg)
        print(
            f"earshot: {len(report['folds'])}-fold CV accuracy {report['mean']['accuracy']:.3f} "
            f"± {report['std']['accuracy']:.3f} → {args.out}/cv_report.md"
        )
        return 0
    result = train(targs, cfg)
    if not is_main_process():  # under a launcher, one line from the process that wrote the model
        return 0
    if result.metrics.get("task") == "multi":
        from learner.report.multilabel import multilabel_summary

        print(f"earshot: {multilabel_summary(result.metrics)} → {result.model_dir}")
    else:
        print(f"earshot: {summary_line(result.metrics)} → {result.model_dir}")
    return 0


if __name__ == "__main__":
    run(main)
