"""What one upload becomes in the demo, without Gradio: top-k labels, the log-mel the model saw, a saliency
overlay, a per-window timeline for long inputs and a one-paragraph message. Every upload goes through the
Predictor's one decode path (`learner.audio.decode.decode`), so a microphone recording and an uploaded MP3 are
treated alike."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import DEMO_MAX_BYTES, DEMO_MAX_S, ClipPipeline, trim_silence
from learner.serve.predictor import Predictor

SALIENCY_FLOOR = 0.3  # saliency below this share of its peak is not drawn, so the log-mel stays readable


@dataclass
class DemoOutput:
    """What `classify` returns; `figures` are matplotlib figures (None = nothing to draw)."""

    labels: dict[str, float] | str  # scores by shown name, or the answer alone when it is "none of them"
    spectrogram: Any
    saliency: Any
    timeline: Any
    message: str

    def as_tuple(self) -> tuple:
        return self.labels, self.spectrogram, self.saliency, self.timeline, self.message


_PLOT_LOCK = threading.Lock()  # pyplot's figure manager is global state; requests run concurrently
_EXPLAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer_for(predictor: Predictor):
    """One saliency `Explainer` per Predictor (None when the backend has no torch model, e.g. ONNX)."""
    model = getattr(predictor.backend, "model", None)
    if model is None:
        return None
    with _EXPLAINERS_LOCK:
        if predictor not in _EXPLAINERS:
            from learner.model.saliency import Explainer

            _EXPLAINERS[predictor] = Explainer(model, predictor.cfg)
        return _EXPLAINERS[predictor]


def _display_logmel(predictor: Predictor, clip: np.ndarray) -> np.ndarray:
    """The log-mel the model saw, in NumPy (`learner.audio.melspec`, equal to the torch front end): drawn
    with any backend."""
    from learner.audio.melspec import logmel

    return logmel(clip, predictor.cfg)


def _padded_after(signal: np.ndarray, cfg: Any) -> float | None:
    """Where padding (silence or a repeat, `pad_mode`) starts in the prepared clip (seconds), or None when the
    sound fills it."""
    kept = trim_silence(signal, cfg.trim_db, cfg.trim_mode).size
    return kept / cfg.sample_rate if 0 < kept < cfg.n_samples else None


def _close(fig: Any) -> Any:
    import matplotlib.pyplot as plt

    # drop pyplot's reference (a server would leak one figure per request); the figure still draws
    plt.close(fig)
    return fig


def timeline_figure(
    starts: list[float], window_probs: np.ndarray, classes: list[str], window_s: float, k: int = 3
):
    """Probability of the top `k` classes (by mean over windows) at each window's centre."""
    import matplotlib.pyplot as plt

    mean = window_probs.mean(axis=0)
    top = ClipPipeline.top_k(mean, k)
    centres = np.asarray(starts) + window_s / 2
    fig, ax = plt.subplots(figsize=(9, 2.6))
    # fixed: tight_layout costs ~0.15 s a figure
    fig.subplots_adjust(left=0.07, right=0.8, bottom=0.19, top=0.88)
    for i in top:
        ax.plot(centres, window_probs[:, i], marker="o", ms=3, label=f"{classes[i]} (mean {mean[i]:.2f})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds (window centre)")
    ax.set_ylabel("probability")
    ax.set_title(f"per-window probabilities ({len(starts)} windows of {window_s:g} s)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _what_was_scored(pred: Any, top: int, d: Any, cfg: Any) -> tuple[str, np.ndarray | None, str]:
    """(what the plots show, the decoded samples when one clip was scored, how it was scored): a long input
    is shown by the window where the top label scored highest, so the plots explain the label."""
    if pred.windowed:
        s = pred.window_starts[int(pred.window_probs[:, top].argmax())]
        where = f"window {s:.2f}–{s + pred.window_s:.2f} s (the most '{pred.label}' one)"
        scored = (
            f"scored in {len(pred.window_starts)} windows of {pred.window_s:g} s (hop {pred.hop_s:g} s); "
            f"labels = mean of window probabilities"
        )
        return where, None, scored
    where = f"the {cfg.duration:g} s clip the model saw"
    scored = f"scored as one {cfg.duration:g} s clip (silence trimmed, centre crop / repeat-pad)"
    return where, d.samples, scored


def _saliency(predictor: Predictor, clip: np.ndarray, top: int) -> Any:
    """Gradients when the backend has a torch model; otherwise (ONNX) ask the model with occluded copies."""
    explainer = explainer_for(predictor)
    sal = explainer(clip, target=top) if explainer is not None else None
    if sal is None:
        from learner.audio.melspec import occlusion

        sal = occlusion(predictor.predict_waves, clip, predictor.cfg, top)
    return sal


_SALIENCY_METHODS = {
    "gradcam": "Grad-CAM",
    "gradient": "input gradient",
    "occlusion": "occlusion: bands muted in turn",
}


def _figures(
    predictor: Predictor, pred: Any, clip: np.ndarray, sal: Any, where: str, padded: float | None
) -> tuple[Any, Any, Any]:
    """(log-mel, saliency overlay, timeline) figures, drawn under one lock: pyplot's state is global."""
    from learner.report.plots import spectrogram_figure

    cfg = predictor.cfg
    axes = dict(f_min=cfg.f_min, f_max=cfg.f_max, padded_after_s=padded)
    with _PLOT_LOCK:
        logmel = sal.logmel if sal is not None else _display_logmel(predictor, clip)
        spec_fig = _close(
            spectrogram_figure(
                logmel, cfg.sample_rate, cfg.hop_length, title=f"what the model heard: {where}", **axes
            )
        )
        sal_fig = None
        if sal is not None:
            method = _SALIENCY_METHODS.get(sal.method, sal.method)
            shown = np.where(sal.heat >= SALIENCY_FLOOR, sal.heat, np.nan)  # NaN cells stay transparent
            sal_fig = _close(
                spectrogram_figure(
                    sal.logmel,
                    cfg.sample_rate,
                    cfg.hop_length,
                    overlay=shown,
                    **axes,
                    title=f"where the model listened for '{pred.label}' ({method})",
                )
            )
        tl_fig = None
        if pred.window_probs is not None:
            tl_fig = _close(
                timeline_figure(pred.window_starts, pred.window_probs, predictor.classes, pred.window_s)
            )
    return spec_fig, sal_fig, tl_fig


def _message(
    pred: Any, d: Any, name: str, cfg: Any, scored: str, padded: float | None, kept: float | None
) -> str:
    """The paragraph under the plots: the label, what was decoded, how it was scored, what is padding."""
    ch = {1: "mono", 2: "stereo"}.get(d.channels, f"{d.channels} channels")
    msg = (
        f"{_answer_line(pred)} · `{name}`: {d.duration_s:.2f} s, {d.orig_sample_rate} Hz {ch} "
        f"({d.decoder}) → mono {cfg.sample_rate} Hz · {scored}."
    )
    if padded is not None:
        msg += (
            f" The sound lasts {padded:.2f} s; the rest of the {cfg.duration:g} s clip repeats it "
            "(shaded in the plots)."
        )
    elif kept is not None:
        msg += f" The sound lasts {kept:.2f} s, centred in silence in the {cfg.duration:g} s clip."
    return msg


def _answer_line(pred: Any) -> str:
    """The answer and why: the class and its score, a reject class, or the best guess under its threshold."""
    if pred.rejected and pred.answer != pred.label:
        return f"**{pred.answer_text}** (best guess '{pred.label}' at {pred.score:.0%}, below its threshold)"
    return f"**{pred.answer_text or pred.label}** ({pred.score:.0%})"


def shown_labels(predictor: Predictor, pred: Any) -> dict[str, float] | str:
    """What the Label shows: the top scores, reject classes by their names ("not one of the words"); when
    the top class is below its threshold, the answer alone (its scores are in the message)."""
    rule = predictor.rejection
    if pred.rejected and pred.answer != pred.label:
        return pred.answer_text
    return {rule.text(lab) if lab in rule.classes else lab: s for lab, s in pred.as_dict().items()}


def classify(
    predictor: Predictor,
    path: str | Path | None,
    *,
    top_k: int = 5,
    max_duration_s: float = DEMO_MAX_S,
    saliency: bool = True,
) -> DemoOutput:
    """One upload (any format `learner.audio.decode.decode` reads) → top-k labels, the log-mel the model saw,
    a saliency overlay on it, a per-window timeline for long inputs, and a one-paragraph message.

    Raises `AudioDecodeError` (naming the file) for empty, corrupt, non-audio or too long uploads, and
    `ValueError` when there is no upload at all.
    """
    if path is None or not str(path):
        raise ValueError("no audio: upload a file or record with the microphone first")
    cfg = predictor.cfg
    name = Path(path).name
    d = predictor.pipeline.decode(path, max_duration_s=max_duration_s, max_bytes=DEMO_MAX_BYTES, name=name)
    pred = predictor.predict(d, top_k=top_k, window="auto")
    top = predictor.classes.index(pred.label)
    clip = pred.clip  # what the model saw: the clip, or the window where the top label scored highest
    where, raw, scored = _what_was_scored(pred, top, d, cfg)
    # a short sound is repeated, or centred in silence
    kept = _padded_after(raw, cfg) if raw is not None else None
    padded = kept if cfg.pad_mode == "repeat" else None
    sal = _saliency(predictor, clip, top) if saliency else None
    figures = _figures(predictor, pred, clip, sal, where, padded)
    labels = shown_labels(predictor, pred)
    return DemoOutput(labels, *figures, _message(pred, d, name, cfg, scored, padded, kept))
