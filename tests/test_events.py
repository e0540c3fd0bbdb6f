"""learner.serve.events: window scores → events (runs, gaps, minimum length, several classes at once),
thresholds
from config and overrides, and the Raven / Audacity / CSV files."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from learner.serve.events import (
    RAVEN_COLUMNS,
    Event,
    EventRule,
    audacity_labels,
    background_classes,
    class_thresholds,
    events_csv,
    events_for,
    find_events,
    parse_thresholds,
    raven_table,
    window_cells,
)
from tests.conftest import RAVEN_PUBLISHED

CLASSES = ["dog", "cat", "background"]


def _grid(n: int, hop: float = 0.5):
    return np.arange(n) * hop


def _scores(n: int, spans: dict[int, list[tuple[int, int]]], value: float = 0.9) -> np.ndarray:
    s = np.full((n, len(CLASSES)), 0.05)
    for c, runs in spans.items():
        for a, b in runs:
            s[a : b + 1, c] = value
    return s


def test_a_run_of_windows_is_one_event_with_centre_boundaries():
    starts = _grid(20)  # 1 s windows every 0.5 s → centres at 0.5, 1.0, …
    s = _scores(20, {0: [(4, 7)]})
    s[5, 0] = 0.97
    (e,) = find_events(starts, s, CLASSES, 1.0, path="a.wav")
    # windows 4..7 have centres 2.5..4.0; each stands for centre ± 0.25 s
    assert (e.path, e.label, e.start_s, e.end_s) == ("a.wav", "dog", 2.25, 4.25)
    assert e.max_score == pytest.approx(0.97)
    assert e.mean_score == pytest.approx((0.9 * 3 + 0.97) / 4)


def test_union_boundaries_span_the_windows():
    (e,) = find_events(_grid(20), _scores(20, {0: [(4, 7)]}), CLASSES, 1.0, boundary="union")
    assert (e.start_s, e.end_s) == (2.0, 4.5)


def test_first_and_last_cells_reach_the_file_edges_and_the_tail_window():
    starts = np.array([0.0, 0.5, 1.0, 1.5, 1.8])  # tail window aligned to a 2.8 s file
    lo, hi = window_cells(starts, 1.0, duration_s=2.8)
    assert lo[0] == 0.0 and hi[-1] == pytest.approx(2.8)
    assert np.allclose(lo[1:], hi[:-1])  # cells tile the file without gaps or overlaps
    (e,) = find_events(starts, np.tile([[0.9, 0.0, 0.1]], (5, 1)), CLASSES, 1.0, duration_s=2.8)
    assert (e.start_s, e.end_s) == (0.0, pytest.approx(2.8))


def test_gap_bridging_joins_runs_of_one_class_only_when_close():
    s = _scores(40, {0: [(2, 4), (6, 8), (20, 22)]})
    apart = find_events(_grid(40), s, CLASSES, 1.0)
    assert [(e.start_s, e.end_s) for e in apart] == [(1.25, 2.75), (3.25, 4.75), (10.25, 11.75)]
    joined = find_events(_grid(40), s, CLASSES, 1.0, max_gap_s=0.5)  # one missed window = a 0.5 s gap
    assert [(e.start_s, e.end_s) for e in joined] == [(1.25, 4.75), (10.25, 11.75)]
    assert joined[0].mean_score == pytest.approx(0.9)  # the missed window's score is not averaged in


def test_minimum_length_drops_short_events():
    s = _scores(40, {0: [(2, 2), (10, 16)]})
    assert len(find_events(_grid(40), s, CLASSES, 1.0)) == 2
    (e,) = find_events(_grid(40), s, CLASSES, 1.0, min_length_s=1.0)
    assert (e.start_s, e.end_s) == (5.25, 8.75)  # windows 10..16: centres 5.5..8.5


def test_overlapping_classes_give_overlapping_events_sorted_by_start():
    s = _scores(30, {0: [(4, 12)], 1: [(8, 16)]}, value=0.6)
    ev = find_events(_grid(30), s, CLASSES, 1.0)
    assert [(e.label, e.start_s, e.end_s) for e in ev] == [("dog", 2.25, 6.75), ("cat", 4.25, 8.75)]


def test_per_class_thresholds_and_background_never_an_event():
    s = _scores(20, {0: [(2, 5)], 1: [(8, 10)], 2: [(12, 15)]}, value=0.6)
    rule = EventRule(thresholds={"dog": 0.7})
    ev = events_for(_grid(20), s, CLASSES, 1.0, config={"thresholds": {"cat": 0.5}}, rule=rule)
    assert [e.label for e in ev] == ["cat"]  # dog's 0.6 is under its 0.7; background is excluded by name
    ev = events_for(_grid(20), s, CLASSES, 1.0, config={"background_classes": []})
    assert [e.label for e in ev] == ["dog", "cat", "background"]


def test_thresholds_come_from_config_then_override_then_default():
    assert class_thresholds(CLASSES).tolist() == [0.5, 0.5, 0.5]
    cfg = {"thresholds": {"dog": 0.8, "cat": 0.3}}
    assert class_thresholds(CLASSES, cfg).tolist() == [0.8, 0.3, 0.5]
    assert class_thresholds(CLASSES, cfg, {"cat": 0.6}).tolist() == [0.8, 0.6, 0.5]
    assert class_thresholds(CLASSES, cfg, 0.4).tolist() == [0.4, 0.4, 0.4]
    with pytest.raises(ValueError, match="unknown class.*'dgo'.*dog, cat, background"):
        class_thresholds(CLASSES, cfg, {"dgo": 0.6})


def test_parse_thresholds():
    assert parse_thresholds("0.6") == 0.6
    assert parse_thresholds("dog=0.7, cat=0.25") == {"dog": 0.7, "cat": 0.25}
    assert parse_thresholds("a=b=0.3") == {"a=b": 0.3}
    for bad, msg in (
        ("1.5", "outside"),
        ("dog=x", "not a number"),
        ("=0.3", "CLASS=VALUE"),
        ("loud", "not a number"),
    ):
        with pytest.raises(ValueError, match=msg):
            parse_thresholds(bad)


def test_background_rule():
    assert background_classes(["dog", "Background", "_silence_"]) == {"Background", "_silence_"}
    assert background_classes(["dog", "noise"], {"background_classes": ["noise"]}) == {"noise"}
    with pytest.raises(ValueError, match="'rain'"):
        background_classes(["dog"], background=["rain"])


def test_bad_shapes_and_rules_are_errors():
    with pytest.raises(ValueError, match="windows=3, classes=3"):
        find_events(_grid(3), np.zeros((3, 2)), CLASSES, 1.0)
    with pytest.raises(ValueError, match="boundary"):
        EventRule(boundary="edges")


EVENTS = [Event("a.wav", "cat", 3.25, 4.5, 0.91, 0.8), Event("a.wav", "dog\tbark", 1.0, 2.0, 0.7, 0.65)]


def test_raven_selection_table_has_the_published_columns():
    text = raven_table(EVENTS, high_freq_hz=8000)
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert rows[0] == [*RAVEN_PUBLISHED, "Annotation", "Confidence", "Mean Score"]
    assert tuple(rows[0]) == RAVEN_COLUMNS
    assert rows[1] == [
        "1",
        "Spectrogram 1",
        "1",
        "1.000000",
        "2.000000",
        "0.0",
        "8000.0",
        "dog bark",
        "0.7000",
        "0.6500",
    ]
    assert [r[0] for r in rows[1:]] == ["1", "2"] and rows[2][7] == "cat"
    assert all(len(r) == len(RAVEN_COLUMNS) for r in rows)


def test_audacity_labels_are_start_end_label_lines():
    lines = audacity_labels(EVENTS).splitlines()
    assert lines == ["1.000000\t2.000000\tdog bark", "3.250000\t4.500000\tcat"]


def test_events_csv_round_trips():
    rows = list(csv.DictReader(io.StringIO(events_csv(EVENTS))))
    assert list(rows[0]) == ["path", "label", "start_s", "end_s", "max_score", "mean_score"]
    assert rows[0]["label"] == "cat" and float(rows[0]["start_s"]) == 3.25


def test_part_store_commits_resumes_and_drops_events(tmp_path):
    """Events are a third table beside file and window rows: committed with them, orphans removed on resume,
    rows of changed files dropped with them."""
    import pyarrow as pa

    from learner.score.rows import EVENT_SCHEMA, WINDOW_SCHEMA
    from learner.score.store import PartStore, events_output, read_results

    files = pa.schema(
        [
            ("path", pa.string()),
            ("file_size", pa.int64()),
            ("file_mtime_ns", pa.int64()),
            ("error", pa.string()),
        ]
    )

    def store():
        return PartStore(tmp_path / "o.parquet", "parquet", files, WINDOW_SCHEMA, event_schema=EVENT_SCHEMA)

    s = store()
    s.open({"format": "parquet"})
    for p in ("a.wav", "b.wav"):
        s.add(
            pa.table({"path": [p], "file_size": [1], "file_mtime_ns": [1], "error": [None]}, schema=files),
            pa.table(
                {"path": [p], "start_s": [0.0], "end_s": [1.0], "label": ["dog"], "score": [0.9]},
                schema=WINDOW_SCHEMA,
            ),
            pa.table(
                {
                    "path": [p, p],
                    "label": ["dog", "cat"],
                    "start_s": [0.0, 2.0],
                    "end_s": [1.0, 3.0],
                    "max_score": [0.9, 0.8],
                    "mean_score": [0.8, 0.7],
                },
                schema=EVENT_SCHEMA,
            ),
        )
        s.commit()
    ev = read_results(tmp_path / "o.parquet", events=True)
    assert ev.schema.equals(EVENT_SCHEMA) and ev["path"].to_pylist() == ["a.wav"] * 2 + ["b.wav"] * 2
    s.claim(
        "part-00007.parquet", side="events"
    )  # a job lists a part before it creates it, as a real one would
    (events_output(tmp_path / "o.parquet") / "part-00007.parquet").write_bytes(
        b"orphan of a kill between renames"
    )
    s = store()
    done = s.open({"format": "parquet"}, resume=True)
    assert set(done) == {"a.wav", "b.wav"}
    assert not (events_output(tmp_path / "o.parquet") / "part-00007.parquet").exists()
    assert s.drop({"a.wav"}) == 1
    assert read_results(tmp_path / "o.parquet", events=True)["path"].to_pylist() == ["b.wav"] * 2
