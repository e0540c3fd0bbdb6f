"""How a comparison of architectures reads: report.md (a table, then the notes it needs) and the archs'
confusion matrices side by side. Pure formatting of report.json's dict (`learner.score.compare` makes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from learner.report.plots import plot_confusion

CV_METRICS = ("accuracy", "top3_accuracy", "map3", "macro_f1")  # what a comparison and CV report per model
METRIC_LABELS = {"accuracy": "accuracy", "top3_accuracy": "top-3", "map3": "MAP@3", "macro_f1": "macro F1"}


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
    head = "| arch | input | start | " + " | ".join(METRIC_LABELS[c] for c in cols)
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
