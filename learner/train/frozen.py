"""Training with a frozen pretrained backbone: the model folder is backbone + a head fitted in seconds.

`train()` hands over here when the arch wraps a backbone and `head` is "frozen" (or "auto" and the
training data say the backbone's features separate these sounds; else it trains `SCRATCH_ARCH` from
scratch and records why). Metrics come from the same `decide()` on the validation split as every model;
nothing is chosen on it. The folder loads through `network_from_dir` like any other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from learner import __version__
from learner.config import AudioConfig
from learner.folder import save_model_dir, strip_local_paths, write_json
from learner.model import create_model, get_arch, n_params
from learner.train.heads import (
    MARGIN,
    backbone_record,
    choose_head,
    decide_start,
    embed_split,
    head_state_dict,
    inner_cv_accuracy,
    logmel_summary,
    predict_logits,
)
from learner.train.settings import transfers_from_earshot

log = logging.getLogger(__name__)

SCRATCH_ARCH = "xresnet18"  # what "auto" trains when the backbone does not help (the README default)
HEAD_CHOICES = ("auto", "frozen", "finetune")


def uses_frozen_head(args, used: pd.DataFrame) -> bool:
    """A backbone arch with head "frozen" or "auto" on a single-label task (multi-label fine-tunes)."""
    spec = get_arch(args.arch)
    if not spec.backbone or args.head == "finetune" or transfers_from_earshot(args.pretrained):
        return False
    if used.attrs.get("windows"):  # windows of long recordings: embeddings are cached per file, so fine-tune
        return False
    return used.attrs.get("task") == "single" and args.pretrained != "none"


def check_backbone_weights(args) -> bool:
    """For a backbone arch, make sure its weights load before any audio is decoded (else one line saying
    how to get them); False for every other arch."""
    spec = get_arch(args.arch)
    if not spec.backbone or args.pretrained == "none" or transfers_from_earshot(args.pretrained):
        return False
    from learner.model.backbone_weights import backbone_state_dict
    from learner.model.backbones import get_backbone

    backbone_state_dict(get_backbone(spec.backbone), Path(w) if (w := _weights_file(args)) else None)
    return True


def fine_tuned_record(args) -> dict | None:
    """config.json's backbone record of a fine-tuned backbone arch (the card's attribution)."""
    spec = get_arch(args.arch)
    if not spec.backbone or args.pretrained == "none":
        return None
    return backbone_record(spec.backbone, "fine-tuned")


def _weights_file(args) -> str | None:
    """`--pretrained FILE`: the backbone's weights from that file (else its published ones)."""
    return args.pretrained if Path(args.pretrained).is_file() else None


def _groups(used: pd.DataFrame) -> np.ndarray:
    train = used.loc[~used["is_valid"]]
    if "group" in train and train["group"].notna().all():
        return train["group"].astype(str).to_numpy()
    return np.arange(len(train))


def choose(args, cfg: AudioConfig, used: pd.DataFrame, signals, classes: list[str], backbone) -> dict:
    """Frozen head or scratch, from inner CV on the training split alone; returns the decision record and
    the fitted head (kept, so a frozen run does not fit twice)."""
    y = used.loc[~used["is_valid"], "label"].map(classes.index).to_numpy()
    groups = _groups(used)
    e_tr, e_va = embed_split(backbone, args, cfg, used, signals, args.head_views)
    fit = choose_head(e_tr, y, groups, seed=args.seed)
    ref = logmel_summary(signals, list(used.loc[~used["is_valid"], "path"]), cfg)
    ref_acc = inner_cv_accuracy(ref[:, None], y, groups, C=0.1, seed=args.seed)
    decision = decide_start(fit.inner_accuracy, ref_acc) if args.head == "auto" else "frozen"
    return {
        "decision": decision,
        "inner_cv_accuracy": fit.inner_accuracy,
        "logmel_reference_inner_cv_accuracy": ref_acc,
        "margin": MARGIN,
        "fit": fit,
        "valid_embeddings": e_va,
    }


def scratch_args(args):
    """The run "auto" falls back to: the README's default network, trained from nothing on this data."""
    return replace(args, arch=SCRATCH_ARCH, pretrained="none", head="finetune", auto_sample_rate=True)


def run(args, cfg, used, signals, failures, classes, asked, train):
    """Decide (frozen head or scratch) and run it; the scratch run records why in its config.json."""
    from learner.folder import CONFIG, read_config
    from learner.model.backbones import load_backbone

    backbone = load_backbone(get_arch(args.arch).backbone, _weights_file(args) or "pretrained")
    choice = choose(args, cfg, used, signals, classes, backbone)
    if choice["decision"] == "frozen":
        from learner.train.versions import versions

        return train_frozen(args, cfg, used, signals, failures, classes, choice, versions())
    log.warning(
        "%s embeddings separate these sounds no better than log-mel statistics (inner CV %.3f vs %.3f): "
        "training %s from scratch instead (head=frozen forces the backbone)",
        args.arch,
        choice["inner_cv_accuracy"],
        choice["logmel_reference_inner_cv_accuracy"],
        SCRATCH_ARCH,
    )
    first_args, first_cfg = asked
    result = train(replace(first_args, arch=SCRATCH_ARCH, pretrained="none", head="finetune"), first_cfg)
    config = read_config(result.model_dir)
    config["backbone_choice"] = {
        "asked": args.arch,
        **{k: v for k, v in choice.items() if k not in ("fit", "valid_embeddings")},
    }
    write_json(Path(result.model_dir) / CONFIG, config)
    return result


def train_frozen(
    args, cfg: AudioConfig, used: pd.DataFrame, signals, failures, classes, choice: dict, versions: dict
):
    """Write the folder of a frozen backbone + fitted linear head; returns a TrainResult."""
    from learner.report.plots import plot_confusion
    from learner.report.validation import decide
    from learner.train.args import TrainResult

    start, start_cpu = time.time(), time.process_time()
    fit = choice["fit"]
    net, loaded = _frozen_network(args, cfg, classes, fit)
    logits = predict_logits(fit, choice["valid_embeddings"])
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    targets = used.loc[used["is_valid"], "label"].map(classes.index).to_numpy()
    thresholds, metrics = decide("single", probs, targets, classes, args.target_precision)
    metrics.update(
        split="valid",
        train_time_s=round(time.time() - start, 3),
        train_cpu_s=round(time.process_time() - start_cpu, 3),
        n_train=int((~used["is_valid"]).sum()),
        n_valid=int(used["is_valid"].sum()),
        excluded_files=failures,
    )
    out = Path(args.out).absolute()
    config = _frozen_config(args, cfg, used, classes, choice, net, loaded, thresholds, versions)
    save_model_dir(out, net.state_dict(), config)
    write_json(out / "metrics.json", metrics)
    plot_confusion(
        metrics["confusion"],
        classes,
        out / "confusion_matrix.png",
        title=f"validation · accuracy {metrics['accuracy']:.3f}",
    )
    return TrainResult(out, metrics, pd.DataFrame(), failures, None)


def _frozen_network(args, cfg: AudioConfig, classes: list[str], fit) -> tuple[torch.nn.Module, str]:
    """The backbone arch with its pretrained body and the fitted head (its shape recorded in cfg.extra)."""
    from learner.model.pretrained import load_backbone_weights

    cfg.extra = {**cfg.extra, "head": {"hidden": 0, "l2": fit.l2}}
    net = create_model(args.arch, len(classes), cfg)
    loaded = load_backbone_weights(net, get_arch(args.arch).backbone, _weights_file(args))
    missing = net.load_state_dict(head_state_dict(fit), strict=False)
    if missing.unexpected_keys or any(k.startswith("head.") for k in missing.missing_keys):
        raise RuntimeError(f"head does not fit {args.arch}: {missing}")
    return net.eval(), loaded


def _frozen_config(args, cfg, used, classes, choice, net, loaded, thresholds, versions) -> dict:
    """config.json of a frozen-head model, with the backbone's record (licence, citation, the choice)."""
    from learner.report.validation import threshold_rule
    from learner.train.args import MACHINE_ARGS

    spec, fit = get_arch(args.arch), choice["fit"]
    record = backbone_record(
        spec.backbone,
        "frozen",
        head={"kind": "logistic regression", "C": fit.C, "l2": fit.l2, "views": args.head_views},
        choice={k: v for k, v in choice.items() if k not in ("fit", "valid_embeddings")},
    )
    return {
        "earshot_version": __version__,
        "arch": args.arch,
        "input": spec.input,
        "classes": classes,
        "task": "single",
        "thresholds": thresholds,
        "thresholds_rule": threshold_rule(args.target_precision),
        "audio": cfg.to_dict(),
        "params": n_params(net),
        "pretrained": strip_local_paths(loaded),
        "backbone": record,
        "split": used.attrs.get("split"),
        "train": strip_local_paths({k: v for k, v in asdict(args).items() if k not in MACHINE_ARGS}),
        "versions": versions,
    }
