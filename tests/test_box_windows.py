"""learner.data.box_windows: boxes → labelled windows (overlap share, multi-label, background, negatives),
earshot's own exports read back to the same windows, and windows read from the on-disk store by offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learner.data.annotations import read_boxes
from learner.data.box_windows import WindowRule, labelled_windows
from learner.data.events import Event
from learner.data.soundscape import background, generated_sounds, write_soundscapes
from learner.score.event_writers import AUDACITY_SUFFIX, EVENT_WRITERS, RAVEN_SUFFIX

SR = 100  # 1 sample = 10 ms: window arithmetic easy to read


def _boxes(rows, negatives=False):
    cols = ["path", "start_s", "end_s", "label"] + (["negative_of"] if negatives else [])
    return read_boxes(pd.DataFrame(rows, columns=cols))


def _labels(df):
    return dict(zip(df["start_s"].round(2), df["labels"], strict=True))


def test_a_window_takes_a_label_when_the_overlap_reaches_the_share():
    # 1 s windows every 0.5 s over 5 s; a 0.6 s box from 1.2 s, a 3 s box from 2.0 s
    boxes = _boxes([("r", 1.2, 1.8, "a"), ("r", 2.0, 5.0, "b")])
    df = labelled_windows(boxes, {"r": 5 * SR}, SR, WindowRule(clip_s=1.0, background_ratio=10))
    # [0.5, 1.5) holds 0.3 of a's 0.6 s (half of the shorter: labelled); [1.5, 2.5) 0.3 of a, 0.5 of b
    assert _labels(df) == {
        0.0: "",
        0.5: "a",
        1.0: "a",
        1.5: "a;b",
        2.0: "b",
        2.5: "b",
        3.0: "b",
        3.5: "b",
        4.0: "b",
    }
    strict = labelled_windows(boxes, {"r": 5 * SR}, SR, WindowRule(clip_s=1.0, min_overlap=0.9))
    assert _labels(strict)[0.5] == "" and _labels(strict)[1.0] == "a" and "b" not in _labels(strict)[1.5]


def test_point_labels_and_the_tail_window_follow_scoring():
    boxes = _boxes([("r", 4.2, 4.2, "tick")])
    df = labelled_windows(boxes, {"r": 470}, SR, WindowRule(clip_s=1.0, background_ratio=0))
    # windows every 0.5 s up to 3.5 s, then one aligned to the end (3.7 s), as scoring cuts them
    assert _labels(df) == {3.5: "tick", 3.7: "tick"} and df["offset"].tolist() == [350, 370]


def test_background_ratio_and_declared_annotation():
    boxes = _boxes([("r", 10.0, 12.0, "a")])
    sizes = {"r": 60 * SR, "quiet": 30 * SR}  # "quiet": a recording whose table is empty
    for ratio in (0.0, 1.0, 2.0):
        df = labelled_windows(boxes, sizes, SR, WindowRule(clip_s=1.0, background_ratio=ratio, seed=3))
        n_box = (df["kind"] == "box").sum()
        assert (df["kind"] == "background").sum() == round(ratio * n_box)
    df = labelled_windows(boxes, sizes, SR, WindowRule(clip_s=1.0, background_ratio=100))
    assert (df["path"] == "quiet").sum() == 59  # every window of the empty recording
    partly = labelled_windows(boxes, sizes, SR, WindowRule(clip_s=1.0, fully_annotated=False))
    assert set(partly["kind"]) == {"box"}
    again = labelled_windows(boxes, sizes, SR, WindowRule(clip_s=1.0, seed=3))
    assert again.equals(labelled_windows(boxes, sizes, SR, WindowRule(clip_s=1.0, seed=3)))


def test_explicit_negatives_are_kept_and_conflicts_counted():
    boxes = _boxes([("r", 1.0, 3.0, "a", ""), ("r", 6.0, 8.0, "", "a"), ("r", 2.0, 3.0, "", "a")], True)
    df = labelled_windows(boxes, {"r": 10 * SR}, SR, WindowRule(clip_s=1.0, fully_annotated=False))
    negatives = df[df["kind"] == "negative"]
    assert negatives["start_s"].tolist() == [5.5, 6.0, 6.5, 7.0, 7.5] and set(negatives["labels"]) == {""}
    assert df.attrs["conflicts"] >= 1  # a's box and the "not a" row over 2-3 s: the box wins, counted


def test_bad_rules_are_refused():
    for bad in (dict(min_overlap=0), dict(min_overlap=1.5), dict(background_ratio=-1), dict(hop_s=0)):
        with pytest.raises(ValueError):
            WindowRule(clip_s=1.0, **bad)


def test_round_trip_earshots_own_exports_give_the_same_labelled_windows(tmp_path):
    """Truth → earshot's Raven and Audacity writers (EVENT_WRITERS, the files `jobs.score --raven/--audacity`
    writes) beside the recordings → read_boxes → the very windows the truth itself gives."""
    beds = [background(16000 * 6, np.random.default_rng(1))]
    truth = write_soundscapes(
        tmp_path / "set", generated_sounds(n_per_class=2), beds, n_recordings=2, duration_s=30, n_events=8,
        overlap_share=0.5,
    )  # fmt: skip
    sizes = {p: 30 * 16000 for p in truth["path"].unique()}
    rule = WindowRule(clip_s=1.0, background_ratio=0.5, seed=1)
    want = labelled_windows(truth, sizes, 16000, rule)
    assert (want["labels"].str.contains(";")).any()  # the overlaps made multi-label windows
    for suffix, writer in ((RAVEN_SUFFIX, "raven"), (AUDACITY_SUFFIX, "audacity")):
        for f in (tmp_path / "set").glob("*.txt"):
            f.unlink()
        for path, group in truth.groupby("path"):
            events = [Event(path, r.label, r.start_s, r.end_s, 0.9, 0.8) for r in group.itertuples()]
            (tmp_path / "set" / (path.rsplit("/", 1)[1] + suffix)).write_text(
                EVENT_WRITERS[writer].render(events, 16000)
            )
        got = labelled_windows(read_boxes(tmp_path / "set"), sizes, 16000, rule)
        cols = ["path", "offset", "labels", "kind"]
        assert got[cols].values.tolist() == want[cols].values.tolist(), writer


def test_windows_are_read_from_the_store_by_offset(tmp_path):
    from learner.config import AudioConfig
    from learner.data.store import SignalStore, open_store, signal_window

    beds = [background(16000 * 6, np.random.default_rng(1))]
    truth = write_soundscapes(tmp_path / "set", generated_sounds(n_per_class=2), beds, 2, 20, n_events=4)
    paths = sorted(truth["path"].unique())
    cfg = AudioConfig(sample_rate=16000, trim_db=None)
    store, failures = open_store(paths, cfg, tmp_path / "store", workers=1, progress=False)
    assert isinstance(store, SignalStore) and not failures
    whole = {p: store[p] for p in paths}
    for p in paths:
        for start, n in ((0, 16000), (123_457, 16000), (20 * 16000 - 100, 16000)):
            got = signal_window(store, p, start, n)
            assert np.array_equal(got, whole[p][start : start + n]) and got.size == min(
                n, whole[p].size - start
            )
