"""Event-level evaluation on annotated long recordings: a model's events (or a scoring run's) against the
boxes people drew (`learner.data.annotations.read_boxes`'s box table: path, start_s, end_s, label, …).

Each recording is scored ONCE in windows; every threshold of the curve (and every event gap / minimum
length tried) is then only `find_events` over those window scores, never another forward pass:

    windows × classes scores ──find_events(threshold t, gap, min)──→ events ──match (onset | overlap)──→
    per class: matched, false alarms, misses → precision, recall, F1, false alarms per hour

An events table from `jobs.score` (no window scores) gives the figures at its own threshold, and a curve
over its events' `max_score` (an event is kept when its best window reaches t).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from learner.report.event_curve import CURVE_COLUMNS
from learner.report.event_metrics import MatchRule, class_figures, count_matches
from learner.serve.events import EventRule, find_events

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))  # the curve's default grid
GAPS_S = (0.0, 0.25, 0.5, 1.0)  # event gaps tried when recommending
MIN_LENGTHS_S = (0.0, 0.25, 0.5, 1.0)  # minimum event lengths tried when recommending


@dataclass
class RecordingScores:
    """One recording's window scores: `scores[window, class]`, windows `window_s` long from `starts`."""

    path: str
    starts: np.ndarray
    scores: np.ndarray
    window_s: float
    duration_s: float


def path_key(path: str) -> str:
    """The name a recording is matched by: its real absolute path."""
    return os.path.normcase(os.path.realpath(os.path.expanduser(str(path))))


def attach_boxes(boxes: pd.DataFrame, recordings: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Recording → its boxes (start_s, end_s, label). A box's path matches a recording by real path, else by
    file name when only one recording has that name; a box matching no recording is an error naming it."""
    recordings = list(recordings)
    by_key = {path_key(p): p for p in recordings}
    by_name: dict[str, list[str]] = {}
    for p in recordings:
        by_name.setdefault(os.path.basename(p), []).append(p)
    out: dict[str, list[int]] = {p: [] for p in recordings}
    for i, p in enumerate(boxes["path"].astype(str)):
        rec = by_key.get(path_key(p))
        if rec is None and len(by_name.get(os.path.basename(p), [])) == 1:
            rec = by_name[os.path.basename(p)][0]
        if rec is None:
            where = f"{boxes['source'].iloc[i]} row {boxes['row'].iloc[i]}: " if "source" in boxes else ""
            raise ValueError(f"{where}box of {p!r}: no such recording among those evaluated")
        out[rec].append(i)
    cols = ["start_s", "end_s", "label"]
    return {p: boxes.iloc[idx][cols].reset_index(drop=True) for p, idx in out.items()}


def _spans(df: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """label → the (start, end) spans of a table with label, start_s, end_s."""
    out: dict[str, list[tuple[float, float]]] = {}
    for label, a, b in zip(df["label"].astype(str), df["start_s"].astype(float), df["end_s"].astype(float)):
        out.setdefault(label, []).append((a, b))
    return out


def _tally(found: dict, truth: dict, labels: Sequence[str], rule: MatchRule) -> np.ndarray:
    """(labels, 3) counts: matched, found, true — of one recording (spans by label, `_spans`)."""
    out = np.zeros((len(labels), 3), dtype=np.int64)
    for k, label in enumerate(labels):
        f, t = found.get(label, []), truth.get(label, [])
        out[k] = (count_matches(f, t, rule), len(f), len(t))
    return out


def _figures(counts: np.ndarray, labels: Sequence[str], hours: float) -> dict[str, dict]:
    return {
        lab: class_figures(int(m), int(f - m), int(t - m), hours) for lab, (m, f, t) in zip(labels, counts)
    }


def evaluate_events(
    events: pd.DataFrame,
    boxes: dict[str, pd.DataFrame],
    durations_s: dict[str, float],
    labels: Sequence[str],
    rule: MatchRule = MatchRule(),
) -> dict:
    """Per class and overall (all classes pooled) figures of `events` (path, label, start_s, end_s) against
    `boxes` (from `attach_boxes`) over recordings lasting `durations_s`."""
    hours = sum(durations_s.values()) / 3600
    total = np.zeros((len(labels), 3), dtype=np.int64)
    keys = {path_key(p): p for p in boxes}
    grouped = {keys.get(path_key(p), p): g for p, g in events.groupby("path")} if len(events) else {}
    for rec, truth in boxes.items():
        found = grouped.get(rec)
        total += _tally({} if found is None else _spans(found), _spans(truth), labels, rule)
    per_class = _figures(total, labels, hours)
    m, f, t = total.sum(axis=0)
    return {"per_class": per_class, "overall": class_figures(int(m), int(f - m), int(t - m), hours)}


def score_curve(
    recordings: Sequence[RecordingScores],
    boxes: dict[str, pd.DataFrame],
    classes: Sequence[str],
    labels: Sequence[str],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    rules: Sequence[tuple[float, float]] = ((0.0, 0.0),),
    match: MatchRule = MatchRule(),
    boundary: str = "centre",
) -> pd.DataFrame:
    """The curve (`CURVE_COLUMNS`): for every (gap, minimum length) of `rules`, threshold and label, the
    counts and figures over all recordings, from their window scores (no scoring here)."""
    hours = sum(r.duration_s for r in recordings) / 3600
    skip = [c for c in classes if c not in labels]
    counts = np.zeros((len(rules), len(thresholds), len(labels), 3), dtype=np.int64)
    for rec in recordings:
        truth = _spans(boxes[rec.path])
        for a, (gap, least) in enumerate(rules):
            for b, t in enumerate(thresholds):
                found = find_events(
                    rec.starts,
                    rec.scores,
                    classes,
                    rec.window_s,
                    thresholds=float(t),
                    max_gap_s=gap,
                    min_length_s=least,
                    boundary=boundary,
                    duration_s=rec.duration_s,
                    exclude=skip,
                )
                spans: dict[str, list[tuple[float, float]]] = {}
                for e in found:
                    spans.setdefault(e.label, []).append((e.start_s, e.end_s))
                counts[a, b] += _tally(spans, truth, labels, match)
    rows = []
    for a, (gap, least) in enumerate(rules):
        for b, t in enumerate(thresholds):
            for label, fig in _figures(counts[a, b], labels, hours).items():
                rows.append(
                    {"gap_s": gap, "min_length_s": least, "threshold": float(t), "label": label, **fig}
                )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def events_curve(
    events: pd.DataFrame,
    boxes: dict[str, pd.DataFrame],
    durations_s: dict[str, float],
    labels: Sequence[str],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    match: MatchRule = MatchRule(),
    rule: tuple[float, float] = (0.0, 0.0),
) -> pd.DataFrame:
    """The curve of a finished events table: at threshold t, the events whose `max_score` ≥ t."""
    rows = []
    for t in thresholds:
        kept = events[events["max_score"] >= t]
        per_class = evaluate_events(kept, boxes, durations_s, labels, match)["per_class"]
        for label, fig in per_class.items():
            rows.append(
                {"gap_s": rule[0], "min_length_s": rule[1], "threshold": float(t), "label": label, **fig}
            )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def model_events(
    recordings: Sequence[RecordingScores], classes: Sequence[str], config: dict, rule: EventRule
) -> pd.DataFrame:
    """The events the model finds with its own thresholds (config.json, `rule` overriding) and rule."""
    from learner.serve.events import events_for

    rows = []
    for rec in recordings:
        found = events_for(
            rec.starts, rec.scores, classes, rec.window_s, config, rule, rec.duration_s, rec.path
        )
        rows += [e.as_dict() for e in found]
    return pd.DataFrame(rows, columns=["path", "label", "start_s", "end_s", "max_score", "mean_score"])
