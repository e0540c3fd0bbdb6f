"""`jobs.evaluate --boxes`: a model (or a scoring run's events) against annotated long recordings → figures
per class, the curve against the threshold (CSV + PNG), recommended thresholds, written to the model on
request. The arithmetic is `learner.score.event_evaluation`; this module loads, scores once and writes.

    out/event_metrics.json       figures at the model's thresholds (or the run's), per class and overall
    out/event_curve.csv|.png     precision, recall, F1, false alarms per hour against the threshold
    out/recommended_thresholds.json   with a target: per-class thresholds, event gap and minimum length
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from learner.data.annotations import read_boxes
from learner.report.event_curve import plot_event_curve, recommend_thresholds
from learner.report.event_metrics import MatchRule
from learner.score.event_evaluation import (
    GAPS_S,
    MIN_LENGTHS_S,
    THRESHOLDS,
    RecordingScores,
    attach_boxes,
    evaluate_events,
    events_curve,
    model_events,
    score_curve,
)
from learner.serve.events import EventRule, background_classes

BOX_COLUMNS = ("path", "start_s", "end_s", "label")


def load_boxes(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The box table of `source` (Raven, Audacity, CSV, parquet, folders: `learner.data.annotations`)."""
    boxes = source if isinstance(source, pd.DataFrame) else read_boxes(source)
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise ValueError(
            f"{source if not isinstance(source, pd.DataFrame) else 'boxes'}: no column(s) "
            f"{', '.join(missing)} (a box table has {', '.join(BOX_COLUMNS)})"
        )
    covered = list(boxes.attrs.get("recordings") or [])  # annotated, also those with no box at all
    if "negative_of" in boxes.columns:  # explicit negatives (review): not events to find
        boxes = boxes[boxes["negative_of"].isna() | (boxes["negative_of"] == "")]
    boxes = boxes[boxes["label"].astype(str) != ""].reset_index(drop=True)
    boxes.attrs["recordings"] = [str(p) for p in covered]
    return boxes


@dataclass
class EventEvaluation:
    """What `evaluate_on_boxes` found; `as_dict()` is event_metrics.json."""

    metrics: dict[str, Any]
    curve: pd.DataFrame
    recommended: dict[str, Any] | None = None
    ignored_labels: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    hours: float = 0.0
    windows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "hours": round(self.hours, 4),
            "windows_scored": self.windows,
            "ignored_labels": self.ignored_labels,
            "excluded_files": self.failures,
            "recommended": self.recommended,
        }


def score_recordings(
    predictor: Any, paths: list[str], window: tuple[float | None, float], progress: bool = False
) -> tuple[list[RecordingScores], dict[str, str]]:
    """Each recording scored once in windows (`window`: (seconds or None for the clip, hop)); files that
    do not decode land in failures with their reason."""
    from tqdm.auto import tqdm

    from learner.audio import AudioDecodeError

    win = window[0] or predictor.cfg.duration
    out, failures = [], {}
    for path in tqdm(paths, desc="scoring", unit="file", disable=not progress):
        try:
            pr = predictor.predict(path, window=win, hop=window[1])
        except AudioDecodeError as e:
            failures[path] = e.reason
            continue
        if pr.window_probs is None:  # shorter than one window: one window over the whole file
            starts, scores = [0.0], pr.probs[None, :]
        else:
            starts, scores = pr.window_starts, pr.window_probs
        out.append(RecordingScores(path, pd.Series(starts).to_numpy(float), scores, win, pr.duration_s))
    return out, failures


def evaluate_on_boxes(
    boxes: pd.DataFrame,
    *,
    predictor: Any = None,
    events: pd.DataFrame | None = None,
    durations_s: dict[str, float] | None = None,
    window: tuple[float | None, float] = (None, 0.25),
    rule: EventRule = EventRule(),
    match: MatchRule = MatchRule(),
    thresholds: tuple[float, ...] = THRESHOLDS,
    target_precision: float | None = None,
    max_false_per_hour: float | None = None,
    progress: bool = False,
) -> EventEvaluation:
    """A model's events (`predictor`: recordings scored once here) or finished `events` (with the
    recordings' `durations_s`) against `boxes`; the curve, and with a target the recommended thresholds."""
    covered = boxes.attrs.get("recordings") or []
    recordings = sorted({str(p) for p in boxes["path"]} | {str(p) for p in covered})
    if predictor is not None:
        scored, failures = score_recordings(predictor, recordings, window, progress)
        classes = list(predictor.classes)
        skip = background_classes(classes, predictor.config, rule.background)
        labels = [c for c in classes if c not in skip]
        durations_s = {r.path: r.duration_s for r in scored}
    elif events is not None and durations_s is not None:
        scored, failures = [], {}
        durations_s = _annotated_only(
            durations_s, {str(p) for p in boxes["path"]} | {str(p) for p in covered}
        )
        labels = sorted(set(boxes["label"].astype(str)) | set(events["label"].astype(str)))
    else:
        raise ValueError("evaluate a predictor, or an events table with the recordings' durations")
    kept = boxes[boxes["path"].astype(str).isin(durations_s)] if failures else boxes
    known = kept["label"].astype(str).isin(labels)
    ignored = kept.loc[~known, "label"].astype(str).value_counts().to_dict()
    by_rec = attach_boxes(kept[known], list(durations_s))
    recommending = target_precision is not None or max_false_per_hour is not None
    if predictor is not None:
        found = model_events(scored, classes, predictor.config, rule)
        curve = _score_curve(scored, by_rec, classes, labels, rule, match, thresholds, recommending)
    else:
        found = events
        curve = events_curve(events, by_rec, durations_s, labels, thresholds=thresholds, match=match)
    metrics = evaluate_events(found, by_rec, durations_s, labels, match)
    metrics["match"] = {"by": match.by, "tolerance_s": match.tolerance_s, "min_overlap": match.min_overlap}
    metrics["rule"] = {"gap_s": rule.max_gap_s, "min_length_s": rule.min_length_s}
    result = EventEvaluation(
        metrics,
        curve,
        ignored_labels=ignored,
        failures=failures,
        hours=sum(durations_s.values()) / 3600,
        windows=sum(len(r.starts) for r in scored),
    )
    if recommending:
        result.recommended = recommend_thresholds(curve, target_precision, max_false_per_hour)
    return result


def _annotated_only(durations_s: dict[str, float], annotated: set[str]) -> dict[str, float]:
    """The scored files that are annotated recordings (by real path, else by file name): a file scored but
    never annotated says nothing about false alarms."""
    from learner.score.event_evaluation import path_key

    keys, names = {path_key(p) for p in annotated}, {Path(p).name for p in annotated}
    return {p: d for p, d in durations_s.items() if path_key(p) in keys or Path(p).name in names}


def _score_curve(scored, by_rec, classes, labels, rule, match, thresholds, recommending) -> pd.DataFrame:
    """The curve at the evaluated rule, and when recommending at every gap and minimum length tried."""
    rules = [(g, m) for g in GAPS_S for m in MIN_LENGTHS_S] if recommending else []
    rules = sorted({*rules, (rule.max_gap_s, rule.min_length_s)})
    return score_curve(
        scored,
        by_rec,
        classes,
        labels,
        thresholds=thresholds,
        rules=rules,
        match=match,
        boundary=rule.boundary,
    )


def write_outputs(result: EventEvaluation, out: str | Path) -> list[Path]:
    """event_metrics.json, event_curve.csv and .png (at the recommended rule, else the evaluated one)."""
    from learner.folder import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "event_metrics.json", result.as_dict())
    result.curve.to_csv(out / "event_curve.csv", index=False)
    at = result.recommended or {
        "gap_s": result.metrics["rule"]["gap_s"],
        "min_length_s": result.metrics["rule"]["min_length_s"],
    }
    written = [out / "event_metrics.json", out / "event_curve.csv"]
    written.append(plot_event_curve(result.curve, out / "event_curve.png", at["gap_s"], at["min_length_s"]))
    if result.recommended:
        write_json(out / "recommended_thresholds.json", result.recommended)
        written.append(out / "recommended_thresholds.json")
    return written


def chosen_thresholds(recommended: dict[str, Any]) -> dict[str, float]:
    """{class: threshold} of a recommendation, the classes with none left out."""
    return {c: v["threshold"] for c, v in recommended["classes"].items() if v["threshold"] is not None}
