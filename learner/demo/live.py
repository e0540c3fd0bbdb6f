"""Live mode: the microphone stream classified as it arrives (no Gradio here: app.py feeds chunks in).

The browser sends a chunk every 0.1 s (Gradio 6.31's recorder, whatever `stream_every` asks); a `LiveStream`
per listener resamples each to the model's rate (`learner.audio.stream.Resampler`, so chunk edges leave no
seams), cuts windows of the model's clip length every hop (half a clip, at most `MAX_HOP_S`), scores them with
the same `Predictor` as every other path: the same preparation of each window as `predict_windows`,
the same rejection (`Predictor.detect`), the same event rules and thresholds (`Predictor.events` over
the windows kept). What it shows: the current top labels, a timeline of the last `history_s` seconds,
and each event once it has closed.

The model's share (preparing and scoring the windows, `score_windows`) can run elsewhere: the demo hands each
stream the live lane's `score` (learner/demo/live_lane.py), which runs it in a worker process of its own, so
that streaming never holds the server's GIL for the model; the stream's state stays here, one per listener.

A listener that falls behind (a busy machine) scores only the newest `max_windows` windows of a chunk and
counts the ones it skipped: a live view that lags is worse than one with a hole in its timeline. Wall
clock times are kept per window, so a bench can say how long after a sound began its label appeared.
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learner.audio.stream import Resampler
from learner.serve.events import Event
from learner.serve.predictor import Predictor

HOP_FRACTION = 0.5  # a window every half clip (finer hops only add windows straddling a sound's edges)
MAX_HOP_S = 0.25  # and at least four a second, so a label follows a sound within a quarter second
HISTORY_S = 30.0  # the timeline's reach (and the windows the events are found in)
MAX_WINDOWS = 4  # per chunk: more waiting means the listener is behind; the older ones are skipped
CHUNK_S = 0.25  # asked of the browser (`stream_every`); Gradio 6.31's recorder sends every 0.1 s anyway
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


# the windows' scores, or a Future of them (the live lane): then a chunk never waits for the model
Scorer = Callable[[Predictor, np.ndarray, Sequence[int], int], "np.ndarray | Future"]
WAIT_S = 0.05  # how long a chunk waits for scores computed elsewhere before its reply (else: the next one's)
MODELS_KEPT = 4  # models a live worker keeps loaded besides its own (taught ones, one per session)
_models: OrderedDict[tuple, Predictor] = OrderedDict()
_models_lock = threading.Lock()


def score_windows(
    predictor: Predictor,
    samples: np.ndarray,
    starts: Sequence[int],
    size: int,
    model: dict[str, Any] | None = None,
) -> np.ndarray:
    """Scores (windows, classes) of the windows `samples[s : s + size]`, prepared as `predict_windows`
    prepares them. `model` (a recipe: folder, backend, …) names another model folder than `predictor`'s (a
    taught one): loaded once, and again when its folder is rewritten (a session trains anew)."""
    p = predictor if model is None else _loaded(model)
    return p.predict_waves(np.stack([p.prepare(samples[s : s + size]) for s in starts]))


def _loaded(recipe: dict[str, Any]) -> Predictor:
    folder = recipe["folder"]
    key = (folder, os.stat(os.path.join(folder, "config.json")).st_mtime_ns, recipe.get("backend"))
    with _models_lock:
        if key not in _models:
            rest = {k: v for k, v in recipe.items() if k != "folder"}
            _models[key] = Predictor.from_dir(folder, **rest)
            while len(_models) > MODELS_KEPT:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return _models[key]


class LiveStream:
    """One listener's microphone: `push(sample_rate, chunk)` → a `LiveUpdate`. Holds one window of samples
    and `history_s` of window scores, whatever the stream's length (`keep_audio`, for benches and tests
    that align what was heard with what was played, keeps every sample)."""

    keep_audio = False

    def __init__(
        self,
        predictor: Predictor,
        *,
        hop_fraction: float | None = None,
        history_s: float = HISTORY_S,
        max_windows: int = MAX_WINDOWS,
        clock: Callable[[], float] = time.time,
        score: Scorer = score_windows,  # in this process (the live lane passes its own)
    ) -> None:
        clip = predictor.cfg.duration
        hop_s = min(clip * HOP_FRACTION, MAX_HOP_S) if hop_fraction is None else clip * hop_fraction
        if not 0 < hop_s <= clip:
            raise ValueError(f"hop_fraction must be in (0, 1], got {hop_fraction}")
        self.predictor, self.clock, self.score = predictor, clock, score
        self.sr = predictor.cfg.sample_rate
        self.plan = predictor.pipeline.window_plan(None, hop_s)
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
        self._inflight: tuple[list[int], Future] | None = None  # windows being scored elsewhere
        self.started_at: float | None = None  # wall clock of the stream's first sample (earliest estimate)
        self._received_s = 0.0  # seconds of audio received at the browser's rate
        self.heard: list[np.ndarray] = []  # every model-rate sample, only with keep_audio
        self.arrivals: list[tuple[float, int]] = []  # (wall clock, samples so far) per chunk, keep_audio

    def push(self, sample_rate: int, chunk: np.ndarray) -> LiveUpdate:
        now = self.clock()
        x = as_float_mono(chunk)
        self._note_arrival(now, int(sample_rate), x.size)
        if self._rate != int(sample_rate):  # first chunk, or the browser changed its rate: a new resampler
            self._rate, self._resampler = int(sample_rate), Resampler(int(sample_rate), self.sr, block=1024)
        for part in self._resampler.push(x):
            self._append(part)
        if self.keep_audio:
            self.arrivals.append((now, self.n_samples))
        return self._score_ready()

    def _note_arrival(self, now: float, rate: int, n: int) -> None:
        """The stream's first sample was captured at the latest by `now - audio received / rate`: the
        smallest such value over the chunks (the one that travelled fastest) is the estimate kept."""
        self._received_s += n / max(rate, 1)
        start = now - self._received_s
        self.started_at = start if self.started_at is None else min(self.started_at, start)

    def _append(self, part: np.ndarray) -> None:
        if self.keep_audio:
            self.heard.append(part)
        self._buf = np.concatenate([self._buf, part]) if self._buf.size else part
        self.n_samples += part.size

    def _score_ready(self) -> LiveUpdate:
        added, skipped = self._collect(0.0), 0
        if self._inflight is None:
            starts = []
            while self._next + self.plan.size <= self.n_samples:
                starts.append(self._next)
                self._next += self.plan.hop
            skipped = max(0, len(starts) - self.max_windows)
            starts = starts[skipped:]
            self.skipped += skipped
            if starts:
                lo, hi = starts[0] - self._buf_at, starts[-1] - self._buf_at + self.plan.size
                got = self.score(
                    self.predictor, self._buf[lo:hi], [s - starts[0] for s in starts], self.plan.size
                )
                if isinstance(got, Future):  # scored elsewhere: shown now if it is quick, else next chunk
                    self._inflight = (starts, got)
                    added += self._collect(WAIT_S)
                else:
                    added += self._add(starts, got)
        keep_from = self._next
        self._buf, self._buf_at = self._buf[keep_from - self._buf_at :].copy(), keep_from
        self._forget()
        closed = self._close_events() if added else []
        return LiveUpdate(self.label, self.top(), self.timeline_html(), closed, added, skipped)

    def _collect(self, timeout_s: float | None) -> int:
        """The windows of the request in flight, if its scores are there within `timeout_s` (None: wait)."""
        if self._inflight is None:
            return 0
        starts, future = self._inflight
        try:
            probs = future.result(timeout=timeout_s)
        except TimeoutError:
            return 0
        self._inflight = None
        return self._add(starts, probs)

    def settle(self) -> int:
        """Wait for the windows still being scored (the stream's end, tests); how many were added."""
        added = self._collect(None)
        if added:
            self._forget()
            self._close_events()
        return added

    def _add(self, starts: list[int], probs: np.ndarray) -> int:
        ready = self.clock()
        for s, p in zip(starts, probs, strict=True):
            answer, rejected = self.predictor.answer(p)  # the serving layer's rejection
            # a model that names its rejection says it ("not one of the words", "silence"), else NOTHING
            label = self.predictor.rejection.names.get(answer, NOTHING) if rejected else answer
            self.windows.append(WindowResult(s / self.sr, (s + self.plan.size) / self.sr, label, p, ready))
        return len(starts)

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
            f'<div class="earshot-live-timeline" data-started-at="{self.started_at or 0:.3f}">'
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
    windows: list[WindowResult],
    segments: list[Segment],
    arrivals: list[tuple[float, int]],
    sr: int,
    background: set[str],
) -> list[float]:
    """Per sound segment (not background): seconds from its onset's capture (`captured_at`) to the first
    window of its label that was ready on the server; inf when it never was."""
    out = []
    for label, a, b in segments:
        if label in background:
            continue
        hits = [w.ready_at for w in windows if w.label == label and w.end_s > a and w.start_s < b]
        onset = captured_at(arrivals, int(a * sr), sr)
        out.append(min(hits) - onset if hits else float("inf"))
    return out


def heard_segments(
    heard: np.ndarray, sr: int, sounds: list[str], level: float = 0.05, gap_s: float = 0.3
) -> list[Segment]:
    """The known segments of a played sequence in the stream's own time, found in what was heard: loud
    stretches (10 ms RMS over `level`, gaps under `gap_s` bridged) are the sounds, in the order played
    (`sounds`), the rest background. Robust to what a browser drops (its first moments, a lost chunk)."""
    step = sr // 100
    n = heard.size // step
    loud = np.sqrt((heard[: n * step].reshape(n, step) ** 2).mean(axis=1)) > level
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    runs = [[a, b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < gap_s * 100:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    merged = [r for r in merged if r[1] - r[0] >= 20]  # under 0.2 s: a click, not a played sound
    if len(merged) != len(sounds):
        raise ValueError(f"heard {len(merged)} loud stretches, played {len(sounds)} sounds")
    out, at = [], 0.0
    for label, (a, b) in zip(sounds, merged, strict=True):
        out += [("background", at, a / 100), (label, a / 100, b / 100)]
        at = b / 100
    return out + [("background", at, n / 100)]


def captured_at(arrivals: list[tuple[float, int]], sample: int, sr: int) -> float:
    """Wall-clock time the stream's `sample` was captured: the arrival of the chunk holding it, less the
    audio after it in that chunk (the upload's own delay is not known, so latencies are a little short)."""
    for wall, total in arrivals:
        if total > sample:
            return wall - (total - sample) / sr
    return arrivals[-1][0]
