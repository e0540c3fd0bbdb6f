"""Per-window scores → timestamped sound events, and the event files other tools read (NumPy only, no torch).

Every windowed run (the Predictor's, `jobs.score --windows`, the demo's) ends here:

    scores[window, class] ≥ threshold[class]  →  runs of consecutive windows  →  gaps ≤ max_gap_s bridged
                                              →  events shorter than min_length_s dropped
                                              →  rows (path, label, start_s, end_s, max_score, mean_score)

Where an event starts and ends (`boundary`): windows overlap, so a run of firing windows spans more than the
sound. A window fires once the sound fills about half of it, so its *centre* is the best guess of where the
sound
is: with `boundary="centre"` (the default) each window stands for the stretch of time nearer its centre than
its
neighbours' (centre ± hop/2; the first and last windows reach the file's edges). `boundary="union"` takes the
union of the firing windows, which is late by about half a window at both ends (bench/events.py measures
both).

Background: a softmax model has no "nothing" output, so a model meant to find events is trained with a class
for
the sound of nothing in particular. Classes listed in the model's config under `"background_classes"`, else
any class named like `DEFAULT_BACKGROUND` (case-insensitive), never become events.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learner.data.events import Event

DEFAULT_THRESHOLD = 0.5  # a class's threshold when neither the model's config nor the caller gives one
DEFAULT_BACKGROUND = ("background", "_background_noise_", "silence", "_silence_")
BOUNDARIES = ("centre", "union")
EVENT_COLUMNS = ("path", "label", "start_s", "end_s", "max_score", "mean_score")
# Raven Pro selection tables (and BirdNET-Analyzer's, OpenSoundscape's): these seven columns, then
# annotations.
RAVEN_COLUMNS = (
    "Selection", "View", "Channel",  # which selection, in which view and channel
    "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",  # its box
    "Annotation", "Confidence", "Mean Score",  # what earshot says of it
)


@dataclass(frozen=True)
class EventRule:
    """How window scores become events; `thresholds` None = the model's own (config), else a value for every
    class
    or a {class: value} mapping that overrides only the classes it names."""

    thresholds: float | Mapping[str, float] | None = None
    max_gap_s: float = 0.0
    min_length_s: float = 0.0
    boundary: str = "centre"
    # None: the config's "background_classes", else DEFAULT_BACKGROUND names
    background: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")
        if self.max_gap_s < 0 or self.min_length_s < 0:
            raise ValueError(
                f"max_gap_s and min_length_s must be ≥ 0, got {self.max_gap_s}, {self.min_length_s}"
            )


def parse_thresholds(text: str) -> float | dict[str, float]:
    """`"0.6"` → 0.6 (every class); `"dog=0.7,cat=0.4"` → {"dog": 0.7, "cat": 0.4}. Values must lie in [0,
    1]."""
    text = text.strip()

    def value(v: str, what: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"threshold {what}: {v!r} is not a number") from None
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"threshold {what}: {x:g} is outside [0, 1]")
        return x

    if "=" not in text:
        return value(text, "value")
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, v = part.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"threshold {part!r}: expected CLASS=VALUE (e.g. dog=0.7,cat=0.4)")
        out[name.strip()] = value(v.strip(), f"of {name.strip()!r}")
    if not out:
        raise ValueError(f"no thresholds in {text!r}; expected one value or CLASS=VALUE,...")
    return out


def class_thresholds(
    classes: Sequence[str],
    config: Mapping[str, Any] | None = None,
    override: float | Mapping[str, float] | None = None,
    default: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """One threshold per class: `override` (one value, or per class) over the config's `"thresholds"` over
    `default`.
    A class name the model does not have is an error (a typo would otherwise silently change nothing)."""
    per_class = dict((config or {}).get("thresholds") or {})
    if isinstance(override, Mapping):
        unknown = sorted(set(override) - set(classes))
        if unknown:
            raise ValueError(
                f"threshold for unknown class(es) {', '.join(map(repr, unknown))}; "
                f"the model's classes are: {', '.join(classes)}"
            )
        per_class.update(override)
    elif override is not None:
        per_class = {c: float(override) for c in classes}
    return np.array([float(per_class.get(c, default)) for c in classes], dtype=np.float64)


def background_classes(
    classes: Sequence[str], config: Mapping[str, Any] | None = None, background: Sequence[str] | None = None
) -> set[str]:
    """Classes that never become events: `background`, else the config's `"background_classes"`, else classes
    named like DEFAULT_BACKGROUND and the config's reject classes (learner.serve.reject)."""
    chosen = background if background is not None else (config or {}).get("background_classes")
    if chosen is not None:
        unknown = sorted(set(chosen) - set(classes))
        if unknown:
            raise ValueError(
                f"background class(es) {', '.join(map(repr, unknown))} are not classes of the model "
                f"({', '.join(classes)})"
            )
        return set(chosen)
    names = {b.lower() for b in DEFAULT_BACKGROUND}
    rejected = set(((config or {}).get("reject") or {}).get("classes") or ())  # "unknown" is no event either
    return {c for c in classes if c.lower() in names or c in rejected}


def window_cells(
    starts: np.ndarray, window_s: float, duration_s: float | None = None, boundary: str = "centre"
) -> tuple[np.ndarray, np.ndarray]:
    """(cell starts, cell ends) in seconds: the stretch of time each window stands for.

    "centre": from halfway to the previous window's centre to halfway to the next one's (centre ± hop/2 on a
    regular grid, also right for the tail window aligned to the file's end); the first cell starts at the
    first
    window's start and the last ends at the last window's end. "union": the window itself."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = starts + window_s
    if duration_s is not None and duration_s > 0:
        ends = np.minimum(ends, max(float(duration_s), float(starts.max(initial=0.0))))
    if boundary == "union" or starts.size == 0:
        return starts, ends
    centres = (starts + ends) / 2
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([starts[:1], mid]), np.concatenate([mid, ends[-1:]])


def _runs(above: np.ndarray) -> list[tuple[int, int]]:
    """[first, last] window indices of each run of True."""
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True)
    )


def find_events(
    starts: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    window_s: float,
    *,
    thresholds: np.ndarray | float = DEFAULT_THRESHOLD,
    max_gap_s: float = 0.0,
    min_length_s: float = 0.0,
    boundary: str = "centre",
    duration_s: float | None = None,
    exclude: Iterable[str] = (),
    path: str = "",
) -> list[Event]:
    """Events from window scores (`scores[window, class]`, windows starting at `starts` seconds, `window_s`
    long).

    Per class, consecutive windows with score ≥ its threshold form one event; events of one class less than
    `max_gap_s` apart are joined; events shorter than `min_length_s` are dropped; classes in `exclude` are
    skipped. `max_score`/`mean_score` are over the firing windows of the event. Sorted by start, then label.
    """
    scores = np.asarray(scores, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (starts.size, len(classes)):
        raise ValueError(
            f"scores must be (windows={starts.size}, classes={len(classes)}), got {scores.shape}"
        )
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(classes),))
    lo, hi = window_cells(starts, window_s, duration_s, boundary)
    skip = set(exclude)
    events: list[Event] = []
    for c, label in enumerate(classes):
        if label in skip:
            continue
        col = scores[:, c]
        merged: list[list[int]] = []  # [first, last, and the firing windows' indices …]
        for a, b in _runs(col >= thr[c]):
            if merged and lo[a] - hi[merged[-1][1]] <= max_gap_s:
                merged[-1][1] = b
                merged[-1].extend(range(a, b + 1))
            else:
                merged.append([a, b, *range(a, b + 1)])
        for a, b, *idx in merged:
            start, end = float(lo[a]), float(hi[b])
            if end - start < min_length_s:
                continue
            s = col[idx]
            events.append(Event(path, label, round(start, 6), round(end, 6), float(s.max()), float(s.mean())))
    events.sort(key=lambda e: (e.start_s, e.label, e.end_s))
    return events


def events_for(
    starts: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    window_s: float,
    config: Mapping[str, Any] | None = None,
    rule: EventRule | None = None,
    duration_s: float | None = None,
    path: str = "",
) -> list[Event]:
    """`find_events` with a model's config: its thresholds and background classes, under `rule`'s
    overrides."""
    rule = rule or EventRule()
    return find_events(
        starts,
        scores,
        classes,
        window_s,
        thresholds=class_thresholds(classes, config, rule.thresholds),
        max_gap_s=rule.max_gap_s,
        min_length_s=rule.min_length_s,
        boundary=rule.boundary,
        duration_s=duration_s,
        exclude=background_classes(classes, config, rule.background),
        path=path,
    )


def events_columns(events: Sequence[Event]) -> dict[str, list]:
    """Events as columns (`EVENT_COLUMNS`), for an Arrow or pandas table."""
    return {k: [getattr(e, k) for e in events] for k in EVENT_COLUMNS}


# --- files other tools read
# ------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Labels in tab-separated files: no tab or line break may split a row."""
    return " ".join(str(text).split())


def raven_table(events: Sequence[Event], high_freq_hz: float, channel: int = 1) -> str:
    """A Raven Pro selection table (tab-separated, one selection per event, `RAVEN_COLUMNS`), as
    BirdNET-Analyzer
    and OpenSoundscape write them: view "Spectrogram 1", the band 0 Hz – `high_freq_hz` (Nyquist), the label
    in `Annotation`, the event's max score in `Confidence`."""
    lines = ["\t".join(RAVEN_COLUMNS)]
    for i, e in enumerate(sorted(events, key=lambda e: (e.start_s, e.label)), start=1):
        lines.append(
            "\t".join(
                [
                    str(i),
                    "Spectrogram 1",
                    str(channel),
                    f"{e.start_s:.6f}",
                    f"{e.end_s:.6f}",
                    "0.0",
                    f"{high_freq_hz:.1f}",
                    _clean(e.label),
                    f"{e.max_score:.4f}",
                    f"{e.mean_score:.4f}",
                ]
            )
        )
    return "\n".join(lines) + "\n"


def audacity_labels(events: Sequence[Event]) -> str:
    """An Audacity label track (File → Import → Labels): `start<TAB>end<TAB>label` per line, seconds, no
    header."""
    return "".join(
        f"{e.start_s:.6f}\t{e.end_s:.6f}\t{_clean(e.label)}\n"
        for e in sorted(events, key=lambda e: (e.start_s, e.label))
    )


def events_csv(events: Sequence[Event]) -> str:
    """Events as CSV text with a header (`EVENT_COLUMNS`): the demo's download."""
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EVENT_COLUMNS)
    for e in events:
        w.writerow(
            [
                e.path,
                e.label,
                f"{e.start_s:.3f}",
                f"{e.end_s:.3f}",
                f"{e.max_score:.4f}",
                f"{e.mean_score:.4f}",
            ]
        )
    return buf.getvalue()
