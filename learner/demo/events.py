"""The demo's Events tab without Gradio: one recording → timestamped events, a timeline figure, a CSV to
download.

`find_events_in(predictor, path, threshold)` scores the recording in windows of the model's clip length every
quarter clip (finer onsets than the Classify tab's half-clip hop), finds events with `learner.serve.events`
(the model's thresholds and background classes; a `threshold` from the slider replaces them for every class),
draws the waveform and the log-mel of the whole recording with a labelled band per event, and writes the
events
as CSV. For a multi-label model every label above its threshold is an event, so overlapping labels show as
stacked bands.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import DEMO_MAX_BYTES, DEMO_MAX_S
from learner.serve.events import Event, EventRule, class_thresholds, events_csv
from learner.serve.predictor import Predictor

EVENT_HOP_FRACTION = 0.25  # hop = a quarter of the clip: onsets within ±hop/2 of the firing window's centre
MAX_SPEC_FRAMES = 4000  # a long recording's log-mel is averaged down to about this many columns to draw
_PLOT_LOCK = threading.Lock()
TABLE_COLUMNS = ["label", "start_s", "end_s", "max_score", "mean_score"]


@dataclass
class EventsOutput:
    """What the Events tab shows: the events, their table rows, the timeline figure, the CSV file and a
    message."""

    events: list[Event]
    rows: list[list[Any]]
    figure: Any
    csv_path: str
    message: str

    def as_tuple(self) -> tuple:
        return self.rows, self.figure, self.csv_path, self.message


def is_multi_label(predictor: Predictor) -> bool:
    """A model trained with sigmoid outputs (`"task": "multi"` in config.json): several labels may hold at
    once."""
    return predictor.config.get("task", "single") == "multi"


def labels_shown(predictor: Predictor, scores: dict[str, float]) -> dict[str, float]:
    """What the Classify tab lists: the top labels of a single-label model as they are; for a multi-label
    model
    every label at or above its threshold (config.json), best first; none when nothing reaches its
    threshold."""
    if not is_multi_label(predictor):
        return scores
    thr = dict(
        zip(predictor.classes, class_thresholds(predictor.classes, predictor.config).tolist(), strict=True)
    )
    return {k: v for k, v in sorted(scores.items(), key=lambda kv: -kv[1]) if v >= thr.get(k, 1.0)}


def default_threshold(predictor: Predictor) -> float:
    """Where the slider starts: the model's threshold when all classes share one, else their median, to two
    decimals (a calibrated 0.4413515 shows as 0.44)."""
    return round(float(np.median(class_thresholds(predictor.classes, predictor.config))), 2)


def find_events_in(
    predictor: Predictor,
    path: str | Path | None,
    threshold: float | None = None,
    *,
    max_gap_s: float = 0.0,
    min_length_s: float = 0.0,
    max_duration_s: float = DEMO_MAX_S,
    draw: bool = True,
    out_dir: str | Path | None = None,
) -> EventsOutput:
    """Events of one upload; `threshold` None = the model's per-class thresholds (config.json, else 0.5).
    The CSV goes to a new folder inside `out_dir` (the demo's budgeted outputs), else inside the temp dir."""
    if path is None or not str(path):
        raise ValueError("no audio: upload a recording or record with the microphone first")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    name = Path(path).name
    d = predictor.pipeline.decode(path, max_duration_s=max_duration_s, max_bytes=DEMO_MAX_BYTES, name=name)
    clip_s = predictor.cfg.duration
    rule = EventRule(
        None if threshold is None else float(threshold), max_gap_s=max_gap_s, min_length_s=min_length_s
    )
    pred = predictor.predict(d, window=clip_s, hop=clip_s * EVENT_HOP_FRACTION, events=rule)
    events = [Event(name, e.label, e.start_s, e.end_s, e.max_score, e.mean_score) for e in pred.events]
    csv_dir = Path(tempfile.mkdtemp(prefix="earshot-events-", dir=out_dir))
    csv_path = csv_dir / f"{Path(name).stem}.events.csv"
    csv_path.write_text(events_csv(events), encoding="utf-8")
    fig = None
    if draw:
        with _PLOT_LOCK:
            fig = events_figure(d.samples, predictor, events, title=name)
    said = (
        "the model's thresholds" if threshold is None else f"threshold {float(threshold):.2f} for every class"
    )
    labels = sorted({e.label for e in events})
    msg = (
        f"**{len(events)} event(s)** in `{name}` ({d.duration_s:.1f} s), {said}; windows of {clip_s:g} s "
        "every "
        f"{clip_s * EVENT_HOP_FRACTION:g} s" + (f": {', '.join(labels)}." if labels else ".")
    )
    rows = [
        [e.label, round(e.start_s, 2), round(e.end_s, 2), round(e.max_score, 3), round(e.mean_score, 3)]
        for e in events
    ]
    return EventsOutput(events, rows, fig, str(csv_path), msg)


def events_figure(signal: np.ndarray, predictor: Predictor, events: list[Event], title: str = ""):
    """Waveform (top) and log-mel (bottom) of the whole recording on one time axis, a labelled band per
    event."""
    import matplotlib.pyplot as plt

    from learner.audio.melspec import logmel

    cfg = predictor.cfg
    sr = cfg.sample_rate
    seconds = signal.size / sr
    fig, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True, height_ratios=(1, 2))
    step = max(1, signal.size // 4000)  # draw an envelope, not millions of samples
    n = signal.size // step * step
    env = np.abs(signal[:n]).reshape(-1, step).max(axis=1) if n else np.zeros(1)
    t = np.arange(env.size) * step / sr
    wave_ax.fill_between(t, -env, env, color="0.35", lw=0)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_ylim(-1.05 * max(env.max(), 1e-3), 1.05 * max(env.max(), 1e-3))
    spec = logmel(signal, cfg)
    if spec.shape[1] > MAX_SPEC_FRAMES:
        k = spec.shape[1] // MAX_SPEC_FRAMES
        spec = spec[:, : spec.shape[1] // k * k].reshape(spec.shape[0], -1, k).mean(axis=2)
    spec_ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, spec.shape[0]))
    spec_ax.set_ylabel("mel band")
    spec_ax.set_xlabel("seconds")
    colours = plt.get_cmap("tab10")
    order = {c: i for i, c in enumerate(predictor.classes)}
    lanes: dict[str, int] = {}
    for e in events:
        lane = lanes.setdefault(e.label, len(lanes))
        colour = colours(order.get(e.label, 0) % 10)
        wave_ax.axvspan(e.start_s, e.end_s, color=colour, alpha=0.3, lw=0)
        y0 = spec.shape[0] * (0.02 + 0.12 * (lane % 6))
        spec_ax.add_patch(
            plt.Rectangle(
                (e.start_s, y0),
                e.end_s - e.start_s,
                spec.shape[0] * 0.1,
                facecolor=colour,
                edgecolor="white",
                lw=0.5,
                alpha=0.85,
            )
        )
        spec_ax.text(
            e.start_s,
            y0 + spec.shape[0] * 0.05,
            f" {e.label}",
            color="white",
            fontsize=7,
            va="center",
            clip_on=True,
        )
    wave_ax.set_title(f"{title}: {len(events)} event(s)" if title else f"{len(events)} event(s)", fontsize=10)
    spec_ax.set_xlim(0, seconds)
    fig.tight_layout()
    plt.close(fig)  # pyplot keeps no reference; the figure still draws
    return fig
