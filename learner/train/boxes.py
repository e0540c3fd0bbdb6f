"""Training data from annotated long recordings: boxes (`learner.data.annotations.read_boxes`) → windows at
the model's clip length (`learner.data.box_windows`) → the same (used, signals, failures, classes) that a
manifest gives `learner.train.fit`, so the DataBlock, the fit and the model folder stay as they are.

The recordings are decoded whole and untrimmed (in memory or into the on-disk store); each training item is
a `Window` (path + offset) read from them, trimmed as scoring trims a window. The split is by recording (or
by `group_regex` on its file name: a site), so no recording's windows sit on both sides. A softmax model
gets a `background` class for the unlabelled windows; windows with several labels make the task multi-label.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import numpy as np
import pandas as pd

from learner.config import AudioConfig
from learner.data.annotations import AnnotationError, read_boxes
from learner.data.box_windows import WindowRule, labelled_windows
from learner.data.labels import SEP, ManifestError, check_class_count
from learner.data.manifest import add_groups, files_digest, split_indices
from learner.data.soundscape import BACKGROUND
from learner.data.store import signal_size
from learner.train.multilabel import split_classes

log = logging.getLogger(__name__)


def window_table(args, cfg: AudioConfig, boxes: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """The labelled windows of the decoded recordings (`sizes`: path → samples), with `label` (single:
    the label or `background`; multi: the `;`-joined set, as `labels`) and `group` (the recording)."""
    rule = WindowRule(
        clip_s=cfg.duration, hop_s=args.window_hop, min_overlap=args.min_overlap, seed=args.seed,
        background_ratio=args.background_ratio, fully_annotated=args.fully_annotated,
    )
    windows = labelled_windows(boxes, sizes, cfg.sample_rate, rule)
    multi = args.task == "multi" or any(SEP in s for s in windows["labels"])
    if args.task == "single" and multi:
        row = windows[windows["labels"].str.contains(SEP, regex=False)].iloc[0]
        raise ManifestError(
            f"{args.data}: task=single, but the window of {row['path']} at {row['start_s']:.2f} s holds "
            f"{row['labels'].replace(SEP, ' and ')} (use task=multi or auto)"
        )
    if multi:
        windows["label"] = windows["labels"]
    else:
        windows["label"] = windows["labels"].replace("", BACKGROUND)
        windows = windows.drop(columns="labels")
    windows["group"] = windows["path"]
    return add_groups(windows, None, args.group_regex)


def _decoded(args, cfg: AudioConfig, recordings: list[str]) -> tuple:
    """The recordings decoded untrimmed (a window's times are the file's), with their failures reported."""
    from learner.train.loading import decode_signals

    missing = [p for p in recordings if not os.path.exists(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AnnotationError(f"{missing[0]}: annotated in {args.data} but does not exist{more}")
    signals, failures = decode_signals(args, recordings, cfg.replace(trim_db=None))
    if failures:
        lines = "\n".join(f"  {p}: {why}" for p, why in failures.items())
        log.warning("%d recording(s) could not be read; their boxes are left out:\n%s", len(failures), lines)
    return signals, failures


def prepare_box_data(args, cfg: AudioConfig):
    """`learner.train.fit.prepare_data` for annotated long recordings (see the module docstring)."""
    from learner.train.settings import pick_duration, pick_sample_rate

    boxes = read_boxes(args.data, args.label_column)
    _check_class_names(boxes)
    if "reviewed" in boxes and boxes["reviewed"].fillna(False).astype(bool).any() and args.fully_annotated:
        # reviewed windows of a scoring run: what nobody listened to is unknown, not background
        log.info("%s holds review answers: only reviewed windows and boxes are training data", args.data)
        args = replace(args, fully_annotated=False)
    recordings = sorted(set(boxes.attrs["recordings"]))
    if boxes.attrs.get("without_table"):
        unused = boxes.attrs["without_table"]
        log.warning("%d recording(s) have no table and are not used: %s", len(unused), ", ".join(unused[:5]))
    if args.auto_sample_rate:
        cfg.sample_rate = pick_sample_rate(recordings)
    if args.auto_duration:  # before the windows: their length is the clip length
        drawn = boxes[boxes["label"] != ""]
        cfg.duration = pick_duration(list(drawn["end_s"] - drawn["start_s"]))
        log.info("clip length %g s (90th percentile of the boxes' lengths)", cfg.duration)
    signals, failures = _decoded(args, cfg, recordings)
    sizes = {p: signal_size(signals, p) for p in recordings if p not in failures}
    df = window_table(args, cfg, boxes[~boxes["path"].isin(failures)], sizes)
    counts = df.attrs.get("counts", {})
    log.info(
        "%d windows of %g s from %d recordings: %d labelled, %d background, %d explicit negatives",
        len(df), cfg.duration, len(sizes), counts.get("box", 0), counts.get("background", 0),
        counts.get("negative", 0),
    )  # fmt: skip
    task = "multi" if "labels" in df else "single"
    check_class_count(df, args.data)
    train_idx, valid_idx = split_indices(df, valid_pct=args.valid_pct, seed=args.seed)
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise ValueError(
            f"{args.data}: the split by recording left {len(train_idx)} training and {len(valid_idx)} "
            "validation windows (annotate more recordings, or split them by group_regex=)"
        )
    used = df.iloc[np.concatenate([train_idx, valid_idx])].copy()
    used["is_valid"] = [False] * len(train_idx) + [True] * len(valid_idx)
    used = used.reset_index(drop=True)
    classes = split_classes(used, task, args.data)
    train_recordings = used.loc[~used["is_valid"], ["path"]].drop_duplicates().assign(label="recording")
    used.attrs.update(
        split={
            "train_files_sha256": files_digest(train_recordings),
            "n_train": int((~used["is_valid"]).sum()),
            "n_valid": int(used["is_valid"].sum()),
        },
        task=task,
        windows=True,
    )
    return used, signals, failures, classes


def _check_class_names(boxes: pd.DataFrame) -> None:
    """Every label a valid class name (the rule config.json is read with), the first bad row named."""
    from learner.folder.schema import class_name_problem

    for name, first in (
        boxes[boxes["label"] != ""].groupby("label", sort=False).head(1).set_index("label").iterrows()
    ):
        if problem := class_name_problem(name):
            raise AnnotationError(f"{first['source']}: row {first['row']}: class name {name!r} {problem}")
