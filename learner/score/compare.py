"""Compare architectures on the same data: same split (or the same folds), same AudioConfig, same epochs.

Each arch is an ordinary training run in `OUT/ARCH/` (a full model directory; with CV, `OUT/ARCH/fold-K/`).
Quality numbers come from training's own validation metrics; inference speed and a cross-check of accuracy
come from the Predictor (the one inference path) on the validation clips. `OUT/report.json` and
`OUT/report.md` hold the table; `confusion_matrices.png` and `learning_curves.png` the pictures.

Starting weights are decided per arch and recorded: with `pretrained="imagenet"` the archs that have ImageNet
weights (xresnet*) start from them and the others (conv1d_raw, mfcc_cnn1d) from scratch — the report says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learner.config import AudioConfig
from learner.data.manifest import add_groups, load_manifest, plan_folds
from learner.folder import read_config, write_json
from learner.hub import resolve
from learner.model.registry import get_arch
from learner.report.plots import plot_confusion, plot_curves
from learner.score.evaluate import select_rows
from learner.train.crossval import CV_METRICS, cross_validate
from learner.train.fit import TrainArgs, train

log = logging.getLogger(__name__)
_LABELS = {"accuracy": "accuracy", "top3_accuracy": "top-3", "map3": "MAP@3", "macro_f1": "macro F1"}


def plan_starts(archs: list[str], pretrained: str) -> dict[str, tuple[str, str]]:
    """arch → (source passed to training, why). `pretrained`: "imagenet", "none", one source (a weights file
    or an earshot model dir/Hub id, used by the archs it fits), or "ARCH=SRC,ARCH=SRC" (unnamed archs:
    none)."""
    for a in archs:
        get_arch(a)
    if "=" in pretrained:
        pairs = dict(p.split("=", 1) for p in pretrained.split(",") if p.strip())
        stray = sorted(set(pairs) - set(archs))
        if stray:
            raise ValueError(
                f"pretrained={pretrained} names {', '.join(stray)}, which are not in archs={','.join(archs)}"
            )
        return {
            a: (pairs[a], "as asked") if a in pairs else ("none", "not named in --pretrained: from scratch")
            for a in archs
        }
    if pretrained == "none":
        return {a: ("none", "as asked") for a in archs}
    if pretrained == "imagenet":
        return {
            a: ("imagenet", "as asked")
            if get_arch(a).weights
            else ("none", "no ImageNet weights: from scratch")
            for a in archs
        }
    if Path(pretrained).is_file():  # a timm weights file: the ImageNet-pretrainable archs
        return {
            a: (pretrained, "as asked")
            if get_arch(a).weights
            else ("none", "weights file is for xresnet: from scratch")
            for a in archs
        }
    src_arch = read_config(resolve(pretrained))["arch"]
    if src_arch not in archs:
        raise ValueError(
            f"pretrained={pretrained} is a {src_arch} model and {src_arch} is not in archs={','.join(archs)}"
        )
    return {
        a: (pretrained, "as asked")
        if a == src_arch
        else ("none", f"{pretrained} is a {src_arch} model: from scratch")
        for a in archs
    }


def _check_imagenet(starts: dict[str, tuple[str, str]], cfg: AudioConfig) -> None:
    """Fetch ImageNet weights before any training, so an offline run fails in one line, not after an hour."""
    from learner.model.pretrained import load_pretrained
    from learner.model.registry import create_model

    for a, (src, _) in starts.items():
        if src == "imagenet":
            # PretrainedError: one clear line
            load_pretrained(create_model(a, 2, cfg), get_arch(a), "imagenet")


def inference_speed(model_dir: Path, data: str, repeats: int = 1) -> dict[str, Any]:
    """Clips/s through the Predictor on the model's validation clips: end to end (decode + prepare + model)
    and model only (prepared waveforms), plus the accuracy the Predictor reaches on them."""
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model_dir)
    df = select_rows(load_manifest(data), "valid", p.config.get("train", {}))
    paths, labels = list(df["path"]), list(df["label"])
    p.predict_many(paths[: p.batch_size])  # warm-up (allocations, thread pools)
    t = time.perf_counter()
    for _ in range(repeats):
        res = p.predict_many(paths)
    e2e = time.perf_counter() - t
    ok = [(r, lab) for r, lab in zip(res, labels, strict=True) if not isinstance(r, Exception)]
    waves = np.stack(
        [
            p.prepare(p.decode(path).samples)
            for path, r in zip(paths, res, strict=True)
            if not isinstance(r, Exception)
        ]
    )
    t = time.perf_counter()
    for _ in range(repeats):
        p.predict_waves(waves)
    model = time.perf_counter() - t
    return {
        "clips": len(ok),
        "clips_per_s": round(repeats * len(paths) / e2e, 1),
        "model_clips_per_s": round(repeats * len(waves) / model, 1),
        "predictor_accuracy": float(np.mean([r.labels[0] == lab for r, lab in ok])) if ok else 0.0,
    }


def machine() -> dict[str, Any]:
    """What the timings were measured on (they are only comparable within one report)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def _train_arch(a_args: TrainArgs, cfg: AudioConfig, cv: bool) -> tuple[dict[str, Any], Path, Any, Any]:
    """One arch's training, plain or CV → (its quality columns, the model dir to time, learning curve,
    validation confusion). Under CV the curve is the mean over folds and fold 1's model is timed."""
    if cv:
        rep = cross_validate(a_args, cfg)
        quality = dict(
            {k: rep["mean"][k] for k in CV_METRICS},
            **{f"{k}_std": rep["std"][k] for k in CV_METRICS},
            train_time_s=round(sum(f["train_time_s"] for f in rep["folds"]), 3),
            folds=rep["folds"],
            n_valid=sum(f["n_valid"] for f in rep["folds"]),
        )
        curve = (
            pd.read_csv(Path(a_args.out) / "cv_history.csv")
            .groupby("epoch", as_index=False)
            .mean(numeric_only=True)
        )
        return quality, Path(rep["folds"][0]["model_dir"]), curve, rep["confusion"]
    res = train(a_args, cfg.replace())
    m = res.metrics
    quality = dict(
        {k: m[k] for k in CV_METRICS},
        train_time_s=m["train_time_s"],
        n_train=m["n_train"],
        n_valid=m["n_valid"],
        best_epoch=m["best_epoch"],
        excluded_files=m["excluded_files"],
    )
    return quality, res.model_dir, res.history, m["confusion"]


def _measured(model_dir: Path, src: str, data: str, t: float) -> dict[str, Any]:
    """What the model folder says it is (start, size, clip length) and how fast the Predictor runs it."""
    config = read_config(model_dir)
    return dict(
        start=config.get("pretrained", src),
        params=int(config["params"]),
        model_dir=str(model_dir),
        duration_s=config["audio"]["duration"],
        wall_time_s=round(time.time() - t, 1),
        **inference_speed(model_dir, data),
    )


def _report(targs: TrainArgs, split: str, cv: bool, rows: list[dict], started: float) -> dict[str, Any]:
    """report.json: the shared settings, one row per arch and the machine the timings were taken on."""
    classes = read_config(Path(rows[0]["model_dir"]))["classes"]
    # what the models used (rate, clip and hop picked from the data unless given), not `cfg`'s defaults
    audio = models_audio([read_config(Path(r["model_dir"]))["audio"] for r in rows])
    return {
        "data": str(targs.data),
        "split": split,
        "cv": cv,
        "epochs": targs.epochs,
        "lr": targs.lr,
        "bs": targs.bs,
        "seed": targs.seed,
        "archs": rows,
        "classes": classes,
        "audio": audio,
        "machine": machine(),
        "total_time_s": round(time.time() - started, 1),
    }


def compare(
    archs: list[str],
    targs: TrainArgs,
    cfg: AudioConfig | None = None,
    *,
    cv: bool = False,
    n_folds: int | None = None,
) -> dict[str, Any]:
    """Train every arch in `archs` on the same split (or folds with `cv`) and write the report to
    `targs.out`."""
    if not archs:
        raise ValueError("no archs to compare")
    if len(set(archs)) != len(archs):
        raise ValueError(f"archs={','.join(archs)} lists an arch twice")
    cfg = cfg or AudioConfig()
    out = Path(targs.out)
    starts = plan_starts(archs, targs.pretrained)
    _check_imagenet(starts, cfg)
    data, split = _shared_split(targs, out, cv, n_folds)
    started, rows, curves, confusions = time.time(), [], {}, {}
    for i, a in enumerate(archs):
        src, why = starts[a]
        log.info("[%d/%d] %s (start: %s)", i + 1, len(archs), a, src)
        a_args = dataclasses.replace(targs, data=data, arch=a, out=str(out / a), pretrained=src)
        t = time.time()
        row: dict[str, Any] = {
            "arch": a,
            "input": get_arch(a).input,
            "start_requested": targs.pretrained,
            "start_note": why,
        }
        quality, model_dir, curves[a], confusions[a] = _train_arch(a_args, cfg, cv)
        row.update(quality)
        row.update(_measured(model_dir, src, a_args.data, t))
        rows.append(row)
    report = _report(targs, split, cv, rows, started)
    plot_confusions(
        {a: c for a, c in confusions.items() if c is not None},
        report["classes"],
        out / "confusion_matrices.png",
    )
    plot_curves(curves, out / "learning_curves.png")
    write_json(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    return report


def models_audio(audios: list[dict[str, Any]]) -> dict[str, Any]:
    """The audio settings the models used (rate, clip, hop picked from the data unless given), not the
    defaults the run started from; a setting that differs between models reads `a / b`."""
    audio = dict(audios[0])
    for key in ("sample_rate", "duration", "hop_length", "n_fft", "n_mels"):
        values = sorted({a[key] for a in audios})
        if len(values) > 1:
            audio[key] = " / ".join(f"{v:g}" for v in values)
    return audio


def _shared_split(targs: TrainArgs, out: Path, cv: bool, n_folds: int | None) -> tuple[str, str]:
    """The manifest every arch trains from and a description of the split. For CV without a fold column the
    folds are assigned once here (`OUT/cv_manifest.csv`), so every arch sees exactly the same folds."""
    df = add_groups(load_manifest(targs.data), targs.group_col, targs.group_regex)
    if not cv:
        if targs.valid_fold is not None:
            return targs.data, f"fold {targs.valid_fold} held out"
        if "split" in df and (df["split"] == "valid").any():
            return targs.data, "split column (train/valid)"
        what = "groups" if "group" in df else "clips (stratified)"
        return targs.data, f"{targs.valid_pct:.0%} of {what} held out, seed {targs.seed}"
    plan = plan_folds(df, targs.data, out, n_folds, targs.seed)
    return plan.data, f"CV over {plan.source}"


def plot_confusions(confusions: dict[str, Any], classes: list[str], path: Path) -> None:
    """The archs' validation confusion matrices side by side (pooled over folds under CV)."""
    import matplotlib.pyplot as plt

    n = max(1, len(confusions))
    size = max(4.0, 0.4 * len(classes) + 2)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    for ax, (a, cm) in zip(axes[0], confusions.items()):
        cm = np.asarray(cm)
        plot_confusion(cm, classes, ax=ax, title=f"{a} · accuracy {np.trace(cm) / max(cm.sum(), 1):.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(r: dict[str, Any]) -> list[str]:
    """The comparison table: one row per arch, quality as mean ± std over folds under CV."""
    cv = r["cv"]
    cols = list(CV_METRICS)
    head = "| arch | input | start | " + " | ".join(_LABELS[c] for c in cols)
    head += " | params | train time | clips/s (end to end) | clips/s (model) |"
    lines = [head, "|---|---|---|" + "---:|" * (len(cols) + 4)]
    for a in r["archs"]:

        def cell(c: str, a: dict = a) -> str:
            return f"{a[c]:.3f} ± {a[c + '_std']:.3f}" if cv else f"{a[c]:.3f}"

        speed = f"{a['clips_per_s']:.0f} | {a['model_clips_per_s']:.0f}"
        lines.append(
            f"| {a['arch']} | {a['input']} | {a['start']} | "
            + " | ".join(cell(c) for c in cols)
            + f" | {a['params'] / 1e6:.2f} M | {a['train_time_s']:.0f} s | {speed} |"
        )
    return lines


def _notes(r: dict[str, Any]) -> list[str]:
    """What the table's columns mean for this run: where each model started, how the timings were taken."""
    cv = r["cv"]
    m = r["machine"]
    return [
        "",
        "Start: the weights each model began from (from its config.json). "
        + "; ".join(f"{a['arch']}: {a['start_note']}" for a in r["archs"])
        + ".",
        "",
        f"Train time is the fit alone{' summed over folds' if cv else ''}; clips/s are measured through the "
        "Predictor on the validation clips (end to end = decode + trim + crop + model; model = prepared "
        "waveforms → probabilities)"
        f"{', on the fold ' + str(r['archs'][0]['folds'][0]['fold']) + ' models' if cv else ''}. "
        "Predictor accuracy (a cross-check: the same clips through the inference path"
        f"{', fold ' + str(r['archs'][0]['folds'][0]['fold']) + ' only' if cv else ''}): "
        + ", ".join(f"{a['arch']} {a['predictor_accuracy']:.3f}" for a in r["archs"])
        + ".",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} (threads: {m['torch_threads']}), "
        f"GPU: {m['gpu'] or 'none'}. Total {r['total_time_s'] / 60:.1f} min.",
    ]


def report_markdown(r: dict[str, Any]) -> str:
    """report.md: the table, where each model started, the machine, and the plots."""
    cv = r["cv"]
    au = r["audio"]
    clips = sorted({a["duration_s"] for a in r["archs"]})
    lines = [
        f"# Comparison on {r['data']}",
        "",
        f"Split: {r['split']}. {r['epochs']} epochs, lr {r['lr']}, batch {r['bs']}, seed {r['seed']}"
        + (" — metrics are mean ± std over folds." if cv else " — metrics on the validation clips."),
        f"Audio: {au['sample_rate']} Hz, {' / '.join(f'{d:g}' for d in clips)} s clips, {au['n_mels']} mels "
        f"(n_fft {au['n_fft']}, hop {au['hop_length']}), mixup {au['mixup']}, SpecAugment "
        f"{au['spec_masks']}× "
        f"(freq ≤ {au['spec_freq_mask']}, time ≤ {au['spec_time_mask']}, capped at a fifth of the input).",
        "",
        *_table(r),
        *_notes(r),
        "",
        "![confusion matrices](confusion_matrices.png)",
        "",
        "![learning curves](learning_curves.png)",
    ]
    excluded = {
        p: why
        for a in r["archs"]
        for part in a.get("folds", [a])
        for p, why in part.get("excluded_files", {}).items()
    }
    if excluded:
        lines += ["", f"{len(excluded)} file(s) could not be read and were excluded:"]
        lines += [f"- `{p}`: {why}" for p, why in sorted(excluded.items())]
    return "\n".join(lines) + "\n"
