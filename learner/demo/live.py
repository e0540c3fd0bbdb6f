"""Live mode: the microphone stream classified as it arrives (no Gradio here: app.py feeds chunks in).

The browser sends a chunk every fraction of a second (Gradio's `stream_every`); a `LiveStream` per
listener resamples each to the model's rate (`learner.audio.stream.Resampler`, so chunk edges leave no
seams), cuts windows of the model's clip length every `hop` (a fraction of it) and scores them with the
same `Predictor` as every other path: the same preprocessing of each window as `Predictor.predict_windows`,
the same rejection (`Predictor.detect`), the same event rules and thresholds (`Predictor.events` over
the windows kept). What it shows: the current top labels, a timeline of the last `history_s` seconds,
and each event once it has closed.

A listener that falls behind (a busy machine) scores only the newest `max_windows` windows of a chunk and
counts the ones it skipped: a live view that lags is worse than one with a hole in its timeline. Wall
clock times are kept per window, so a bench can say how long after a sound began its label appeared.
"""

from __future__ import annotations

import html
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from learner.audio.stream import Resampler
from learner.serve.events import Event
from learner.serve.predictor import Predictor

HOP_FRACTION = (
    0.25  # a window every quarter clip: a sound's label can appear a quarter clip after it fills one
)
HISTORY_S = 30.0  # the timeline's reach (and the windows the events are found in)
MAX_WINDOWS = 4  # per chunk: more waiting means the listener is behind; the older ones are skipped
CHUNK_S = 0.25  # what app.py asks the browser for (`stream_every`)
NOTHING = "—"  # no class reaches its threshold ("none of the known sounds")
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7")
PALETTE += ("#9c755f", "#bab0ac", "#86bc86", "#d37295")


@dataclass
class WindowResult:
    """One scored window: where it lies in the stream (s), its label (NOTHING when rejected), the scores,
    and the wall-clock time its result was ready."""

    start_s: float
    end_s: float
    label: str
    probs: np.ndarray
    ready_at: float


@dataclass
class LiveUpdate:
    """What one chunk changes on the page."""

    label: str
    top: dict[str, float]
    timeline_html: str
    closed: list[Event] = field(default_factory=list)
    scored: int = 0
    skipped: int = 0


def as_float_mono(chunk: np.ndarray) -> np.ndarray:
    """Gradio's numpy audio (int16, or float; (n,) or (n, channels)) → float32 mono in [-1, 1]."""
    x = np.asarray(chunk)
    if x.ndim == 2:
        x = x.astype(np.float32).mean(axis=1)
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / float(np.iinfo(x.dtype).max)).reshape(-1)
    return x.astype(np.float32).reshape(-1)


class LiveStream:
    """One listener's microphone: `push(sample_rate, chunk)` → a `LiveUpdate`. Holds one window of samples
    and `history_s` of window scores, whatever the stream's length."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        hop_fraction: float = HOP_FRACTION,
        history_s: float = HISTORY_S,
        max_windows: int = MAX_WINDOWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < hop_fraction <= 1:
            raise ValueError(f"hop_fraction must be in (0, 1], got {hop_fraction}")
        self.predictor, self.clock = predictor, clock
        self.sr = predictor.cfg.sample_rate
        self.plan = predictor.pipeline.window_plan(None, predictor.cfg.duration * hop_fraction)
        self.window_s = self.plan.size / self.sr
        self.history_s, self.max_windows = history_s, max_windows
        self._resampler: Resampler | None = None
        self._rate: int | None = None
        self._buf = np.zeros(0, np.float32)
        self._buf_at = 0  # stream sample (model rate) where `_buf` starts
        self.n_samples = 0  # model-rate samples received
        self._next = 0  # first sample of the next window
        self.windows: deque[WindowResult] = deque()
        self.closed: list[Event] = []  # every event closed so far (the newest last)
        self._reported: set[tuple[str, float]] = set()
        self.skipped = 0
        self.started_at: float | None = None  # wall clock of the stream's first sample (earliest estimate)
        self._received_s = 0.0  # seconds of audio received at the browser's rate

    def push(self, sample_rate: int, chunk: np.ndarray) -> LiveUpdate:
        now = self.clock()
        x = as_float_mono(chunk)
        self._note_arrival(now, int(sample_rate), x.size)
        if self._rate != int(sample_rate):  # first chunk, or the browser changed its rate: a new resampler
            self._rate, self._resampler = int(sample_rate), Resampler(int(sample_rate), self.sr, block=4096)
        for part in self._resampler.push(x):
            self._append(part)
        return self._score_ready()

    def _note_arrival(self, now: float, rate: int, n: int) -> None:
        """The stream's first sample was captured at the latest by `now - audio received / rate`: the
        smallest such value over the chunks (the one that travelled fastest) is the estimate kept."""
        self._received_s += n / max(rate, 1)
        start = now - self._received_s
        self.started_at = start if self.started_at is None else min(self.started_at, start)

    def _append(self, part: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, part]) if self._buf.size else part
        self.n_samples += part.size

    def _score_ready(self) -> LiveUpdate:
        starts = []
        while self._next + self.plan.size <= self.n_samples:
            starts.append(self._next)
            self._next += self.plan.hop
        skipped = max(0, len(starts) - self.max_windows)
        starts = starts[skipped:]
        self.skipped += skipped
        if starts:
            at = [s - self._buf_at for s in starts]
            wins = np.stack([self.predictor.prepare(self._buf[a : a + self.plan.size]) for a in at])
            probs = self.predictor.predict_waves(wins)
            ready = self.clock()
            for s, p in zip(starts, probs, strict=True):
                answer, rejected = self.predictor.answer(p)  # the serving layer's rejection
                # a model that names its rejection says it ("not one of the words", "silence"), else NOTHING
                label = self.predictor.rejection.names.get(answer, NOTHING) if rejected else answer
                self.windows.append(
                    WindowResult(s / self.sr, (s + self.plan.size) / self.sr, label, p, ready)
                )
        keep_from = self._next
        self._buf, self._buf_at = self._buf[keep_from - self._buf_at :].copy(), keep_from
        self._forget()
        closed = self._close_events() if starts else []
        return LiveUpdate(self.label, self.top(), self.timeline_html(), closed, len(starts), skipped)

    def _forget(self) -> None:
        if self.windows:
            horizon = self.windows[-1].end_s - self.history_s
            while self.windows and self.windows[0].start_s < horizon:
                self.windows.popleft()

    def _close_events(self) -> list[Event]:
        """Events over the windows kept (the model's thresholds and background classes) whose last window
        has passed: each reported once."""
        starts = np.array([w.start_s for w in self.windows])
        probs = np.stack([w.probs for w in self.windows])
        last_end = self.windows[-1].end_s
        new = []
        for ev in self.predictor.events(starts, probs, self.window_s, duration_s=last_end):
            key = (ev.label, round(ev.end_s, 3))
            if ev.end_s < last_end - 1e-6 and key not in self._reported:
                self._reported.add(key)
                new.append(ev)
        self.closed += new
        del self.closed[:-50]  # the newest 50 are shown
        return new

    @property
    def label(self) -> str:
        return self.windows[-1].label if self.windows else NOTHING

    def top(self, k: int = 5) -> dict[str, float]:
        """The newest window's top `k` classes and scores ({} before the first window)."""
        if not self.windows:
            return {}
        p = self.windows[-1].probs
        order = np.argsort(-p, kind="stable")[:k]
        return {self.predictor.classes[i]: float(p[i]) for i in order}

    def timeline_html(self) -> str:
        """The last `history_s` seconds as a strip of coloured cells, one per window hop (newest right)."""
        classes = self.predictor.classes
        colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
        now = self.windows[-1].end_s if self.windows else 0.0
        cells = []
        for w in self.windows:
            left = 100 * (1 - (now - w.start_s) / self.history_s)
            width = 100 * self.plan.hop / self.sr / self.history_s
            fill = colour.get(w.label, "#dddddd")
            tip = html.escape(f"{w.start_s:.2f}–{w.end_s:.2f} s: {w.label}")
            cells.append(
                f'<div title="{tip}" data-label="{html.escape(w.label)}" style="position:absolute;'
                f'left:{left:.2f}%;width:{width:.2f}%;top:0;bottom:0;background:{fill}"></div>'
            )
        legend = " ".join(
            f'<span style="display:inline-block;margin-right:.6em"><span style="display:inline-block;'
            f'width:.8em;height:.8em;background:{colour[c]}"></span> {html.escape(c)}</span>'
            for c in classes
        )
        return (
            '<div class="earshot-live-timeline">'
            '<div style="position:relative;height:2.2em;background:#f4f4f4;border:1px solid #ccc">'
            f"{''.join(cells)}</div>"
            f'<div style="display:flex;justify-content:space-between;font-size:.8em"><span>'
            f"−{self.history_s:g} s</span><span>now ({now:.1f} s)</span></div>"
            f'<div style="font-size:.8em">{legend} <span style="color:#888">{NOTHING} grey: none of them'
            f"</span></div></div>"
        )

    def events_rows(self) -> list[list]:
        """Closed events, newest first, as table rows (label, start s, end s, max score)."""
        return [
            [e.label, round(e.start_s, 2), round(e.end_s, 2), round(e.max_score, 3)]
            for e in reversed(self.closed)
        ]


EVENT_COLUMNS = ["label", "start (s)", "end (s)", "max score"]


Segment = tuple[str, float, float]  # label, start s, end s of a known stretch of a played sequence


def segment_at(segments: list[Segment], t: float) -> str | None:
    for label, a, b in segments:
        if a <= t < b:
            return label
    return None


def agreement(windows: list[WindowResult], segments: list[Segment]) -> float:
    """Share of windows whose label is the known label at the window's centre (the events' "centre"
    convention: a window stands for the time nearest its centre)."""
    judged = [(w.label, segment_at(segments, (w.start_s + w.end_s) / 2)) for w in windows]
    judged = [(a, b) for a, b in judged if b is not None]
    return sum(a == b for a, b in judged) / max(len(judged), 1)


def onset_latencies(
    windows: list[WindowResult], segments: list[Segment], started_at: float, background: set[str]
) -> list[float]:
    """Per sound segment (not background): wall-clock seconds from its onset (the stream's first sample's
    time + the onset) to the first window of its label that was ready; a segment never labelled is inf."""
    out = []
    for label, a, b in segments:
        if label in background:
            continue
        hits = [w.ready_at for w in windows if w.label == label and w.end_s > a and w.start_s < b]
        out.append(min(hits) - (started_at + a) if hits else float("inf"))
    return out
