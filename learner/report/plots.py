"""Pictures people would rather look at than numbers: confusion matrix, learning curves, spectrograms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _finish(fig, path: Path | None) -> None:
    """Lay out a figure we own and, when there is a `path`, save it and let pyplot forget it."""
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
        plt.close(fig)


def plot_confusion(
    cm: np.ndarray | list, classes: list[str], path: Path | None = None, title: str = "", ax=None
):
    """Row-normalised confusion matrix with counts; saved to `path` when given."""
    cm = np.asarray(cm)
    own = ax is None
    if own:
        size = max(4.0, 0.45 * len(classes) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    if len(classes) <= 30:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        int(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    if own:
        _finish(fig, path)
    return ax


def plot_curves(history: pd.DataFrame | dict[str, pd.DataFrame], path: Path | None = None, axes=None):
    """Learning curves from fastai's recorder history: loss per epoch (train solid, valid dashed) and the
    validation metrics. One run draws all its metrics; several (archs of a comparison, folds of a CV; a dict
    name → history) draw one colour each and their accuracy. The one curves plot of training, CV and
    compare."""
    runs = history if isinstance(history, dict) else {"": history}
    own = axes is None
    if own:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, h) in enumerate(runs.items()):
        c, ep, pre = f"C{i}", h["epoch"] + 1, f"{name} " if name else ""
        axes[0].plot(ep, h["train_loss"], color=c, label=f"{pre}train")
        axes[0].plot(ep, h["valid_loss"], "--", color=c, label=f"{pre}valid")
        metrics = [m for m in h.columns if m not in ("epoch", "train_loss", "valid_loss", "time", "fold")]
        for j, m in enumerate(metrics if len(runs) == 1 else [m for m in metrics if m == "accuracy"]):
            axes[1].plot(ep, h[m], marker="o", color=c if len(runs) > 1 else f"C{j}", label=name or m)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].set(
        xlabel="epoch",
        ylabel="validation",
        title="validation " + ("accuracy" if len(runs) > 1 else "metrics"),
    )
    for ax in axes:
        ax.legend(fontsize=8)
    if own:
        _finish(fig, path)
    return axes


HZ_TICKS = (50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000)


def spectrogram_figure(
    spec: np.ndarray,
    sr: int,
    hop: int,
    title: str = "log-mel",
    overlay: np.ndarray | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    padded_after_s: float | None = None,
):
    """A (mel bands, frames) log-mel image with a frequency axis in Hz and a colour bar (dB); `overlay`
    (same shape, 0–1) is drawn over it as a heat map with its own bar. `padded_after_s` shades the part
    of the clip that repeats the sound (repeat-padding of a short clip)."""
    from learner.audio.melspec import hz_to_mel

    n_mels, frames = spec.shape
    top = float(f_max) if f_max is not None else float(sr // 2)
    lo, hi = float(hz_to_mel(f_min)), float(hz_to_mel(top))
    end = frames * hop / sr
    # fixed positions, not tight_layout: measuring every tick label took half of the demo's CPU per request
    fig = plt.figure(figsize=(7.5, 3))
    right = 0.86 if overlay is None else 0.76
    ax = fig.add_axes((0.09, 0.155, right - 0.09, 0.745))
    extent = (0, end, -0.5, n_mels - 0.5)
    image = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=extent)
    fig.colorbar(image, cax=fig.add_axes((right + 0.015, 0.155, 0.018, 0.745))).set_label("dB")
    if overlay is not None:
        heat = ax.imshow(
            overlay, origin="lower", aspect="auto", cmap="jet", alpha=0.45, extent=extent, vmin=0, vmax=1
        )
        fig.colorbar(heat, cax=fig.add_axes((right + 0.12, 0.155, 0.018, 0.745))).set_label("share of peak")
    # mel band i is centred on mel lo + (i + 1)·(hi − lo)/(n_mels + 1): place the Hz ticks on that scale
    ticks = [f for f in HZ_TICKS if f_min < f < top]
    rows = [(float(hz_to_mel(f)) - lo) / (hi - lo) * (n_mels + 1) - 1 for f in ticks]
    ax.set_yticks(rows, [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks])
    ax.set_ylim(-0.5, n_mels - 0.5)
    if padded_after_s is not None and 0 < padded_after_s < end:
        ax.axvspan(padded_after_s, end, facecolor="white", alpha=0.35, hatch="//", edgecolor="white", lw=0)
        ax.text(
            (padded_after_s + end) / 2,
            n_mels * 0.92,
            "repeat-padding",
            ha="center",
            va="top",
            fontsize=8,
            color="white",
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    return fig


def plot_pr_curves(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    thresholds: dict[str, float] | None = None,
    path: Path | None = None,
    title: str = "",
):
    """Precision-recall curve of every class (AP in the legend), with a dot where its threshold sits."""
    from learner.report.multilabel import average_precision
    from learner.report.thresholds import pr_points

    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets) > 0.5
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for j, c in enumerate(classes):
        if not targets[:, j].any():
            continue
        thr, precision, recall = pr_points(probs[:, j], targets[:, j])
        (line,) = ax.step(
            np.r_[0.0, recall],
            np.r_[1.0, precision],
            where="post",
            lw=1.2,
            label=f"{c} (AP {average_precision(probs[:, j], targets[:, j]):.2f})",
        )
        if thresholds and c in thresholds:
            # last point with score ≥ threshold
            k = int(np.searchsorted(-thr, -thresholds[c], side="right")) - 1
            if k >= 0:
                ax.plot(recall[k], precision[k], "o", color=line.get_color(), ms=5)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title=title or "precision-recall per class (dot: threshold)",
    )
    ax.legend(fontsize=7, loc="lower left", ncol=2 if len(classes) > 8 else 1)
    _finish(fig, path)
    return ax
