"""learner.data.annotations: Raven, Audacity and CSV boxes → one box table; bad tables name file and row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.data.annotations import BOX_COLUMNS, AnnotationError, read_boxes
from learner.data.events import Event
from learner.serve.events import audacity_labels, raven_table

RAVEN_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"
)


def _wav(path, seconds=2.0, sr=8000):
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr)
    return path


def test_raven_table_beside_its_recording_counts_each_selection_once(tmp_path):
    rec = _wav(tmp_path / "rec.wav")
    (tmp_path / "rec.Table.1.selections.txt").write_text(
        RAVEN_HEADER
        + "1\tWaveform 1\t1\t0.5\t1.25\t\t\tfrog\n"
        + "1\tSpectrogram 1\t1\t0.5\t1.25\t200\t3000\tfrog\n"
        + "2\tSpectrogram 1\t1\t1.0\t1.5\t100\t900\tbird\n"
    )
    df = read_boxes(tmp_path / "rec.Table.1.selections.txt")
    assert list(df.columns)[: len(BOX_COLUMNS)] == list(BOX_COLUMNS)
    assert df[["label", "start_s", "end_s", "low_hz", "high_hz", "row"]].values.tolist() == [
        ["frog", 0.5, 1.25, 200.0, 3000.0, 3],
        ["bird", 1.0, 1.5, 100.0, 900.0, 4],
    ]
    assert set(df["path"]) == {str(rec)}
    assert df.attrs["recordings"] == [str(rec)]


def test_combined_raven_table_places_boxes_by_begin_path_and_file_offset(tmp_path):
    a, b = _wav(tmp_path / "a.wav", 60), _wav(tmp_path / "b.wav", 60)
    header = (
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin Path\tFile Offset (s)\tAnnotation\n"
    )
    (tmp_path / "all.selections.txt").write_text(
        header
        + f"1\tSpectrogram 1\t1\t10.0\t12.5\t{a}\t10.0\tdog\n"
        # made on another machine: only the file name fits here
        + "2\tSpectrogram 1\t1\t70.0\t71.0\tC:\\field\\b.wav\t10.0\tcat\n"
    )
    df = read_boxes(tmp_path)
    assert df[["path", "label", "start_s", "end_s"]].values.tolist() == [
        [str(a), "dog", 10.0, 12.5],
        [str(b), "cat", 10.0, 11.0],
    ]
    assert math.isnan(df["low_hz"].iloc[0])


def test_audacity_track_with_frequency_lines(tmp_path):
    rec = _wav(tmp_path / "rec.flac")
    (tmp_path / "rec.txt").write_text("0.1\t0.4\tchirp\n\\\t-1.000000\t4000\n1.0\t1.2\ttone call\n")
    df = read_boxes(tmp_path)
    assert df["label"].tolist() == ["chirp", "tone call"]
    assert math.isnan(df["low_hz"].iloc[0]) and df["high_hz"].iloc[0] == 4000
    assert df["row"].tolist() == [1, 3] and set(df["path"]) == {str(rec)}


def test_csv_box_list_with_negatives_and_relative_paths(tmp_path):
    (tmp_path / "boxes.csv").write_text(
        "path,start_s,end_s,label,negative_of\nrecs/x.wav,1,2,dog,\nrecs/x.wav,3,4,,dog\n"
    )
    df = read_boxes(tmp_path / "boxes.csv")
    assert df["path"].tolist() == [str(tmp_path / "recs" / "x.wav")] * 2
    assert df["label"].tolist() == ["dog", ""] and df["negative_of"].tolist() == ["", "dog"]
    assert df["row"].tolist() == [2, 3]


def test_parquet_and_in_memory_tables(tmp_path):
    boxes = pd.DataFrame({"path": ["/r.wav"], "start_s": [0.0], "end_s": [1.0], "label": ["x"]})
    boxes.to_parquet(tmp_path / "b.parquet")
    assert read_boxes(tmp_path / "b.parquet")["row"].tolist() == [1]
    assert read_boxes(boxes)["source"].tolist() == ["the box table"]


def test_earshot_exports_read_back_as_the_same_boxes(tmp_path):
    rec = _wav(tmp_path / "rec.wav", 10)
    events = [Event(str(rec), "tone", 1.25, 2.5, 0.9, 0.8), Event(str(rec), "chirp", 2.0, 3.0, 0.7, 0.6)]
    (tmp_path / "rec.wav.earshot.selection.table.txt").write_text(raven_table(events, high_freq_hz=4000))
    raven = read_boxes(tmp_path)
    (tmp_path / "rec.wav.earshot.selection.table.txt").unlink()
    (tmp_path / "rec.wav.earshot.labels.txt").write_text(audacity_labels(events))
    audacity = read_boxes(tmp_path)
    want = [["tone", 1.25, 2.5], ["chirp", 2.0, 3.0]]
    for df in (raven, audacity):
        assert sorted(df[["label", "start_s", "end_s"]].values.tolist(), key=lambda r: r[1]) == want


def test_an_empty_table_still_declares_its_recording(tmp_path):
    rec = _wav(tmp_path / "quiet.wav")
    (tmp_path / "quiet.wav.earshot.selection.table.txt").write_text(raven_table([], high_freq_hz=4000))
    df = read_boxes(tmp_path)
    assert len(df) == 0 and df.attrs["recordings"] == [str(rec)]


@pytest.mark.parametrize(
    "name,text,expect",
    [
        (
            "rec.sel.txt",
            RAVEN_HEADER + "1\tSpectrogram 1\t1\tsoon\t2\t0\t1\tx\n",
            "row 2: Begin Time (s) 'soon'",
        ),
        (
            "rec.sel.txt",
            RAVEN_HEADER + "1\tSpectrogram 1\t1\t0.1\t0.5\t0\t1\tx\n2\tS\t1\t3\t2\t0\t1\tx\n",
            "row 3",
        ),
        ("rec.sel.txt", RAVEN_HEADER + "1\tSpectrogram 1\t1\t0.1\t0.5\t0\t1\t\n", "row 2: no label"),
        ("rec.txt", "0.1\t0.5\tx\nhello\n", "row 2: need start"),
        ("rec.txt", "\\\t1\t2\n", "row 1: a frequency line"),
        ("rec.txt", "0.1\t0.5\tx\n\\\t900\t100\n", "row 1: low frequency 900.0 Hz above"),
    ],
)
def test_a_malformed_table_is_one_line_naming_file_and_row(tmp_path, name, text, expect):
    _wav(tmp_path / "rec.wav")
    (tmp_path / name).write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_boxes(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / name) in message and expect in message


def test_a_table_for_no_recording_is_refused_and_notes_are_not_tables(tmp_path):
    _wav(tmp_path / "rec.wav")
    (tmp_path / "README.txt").write_text("Recorded at the pond, May 2024.\n")
    (tmp_path / "rec.txt").write_text("0.1\t0.5\tx\n")
    assert len(read_boxes(tmp_path)) == 1
    (tmp_path / "other.txt").write_text("0.1\t0.5\tx\n")
    with pytest.raises(AnnotationError, match="other.txt: matches no recording"):
        read_boxes(tmp_path)


def test_csv_missing_columns_and_both_label_and_negative(tmp_path):
    (tmp_path / "a.csv").write_text("path,start,end,label\nx.wav,1,2,dog\n")
    with pytest.raises(AnnotationError, match="a.csv: missing column.*start_s, end_s"):
        read_boxes(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("path,start_s,end_s,label,negative_of\nx.wav,1,2,dog,cat\n")
    with pytest.raises(AnnotationError, match="b.csv: row 2: both a label"):
        read_boxes(tmp_path / "b.csv")


def test_a_review_file_reads_as_boxes_with_its_no_answers_as_negatives(tmp_path):
    from learner.data.review import COLUMNS

    rows = [
        ["/r.wav", "1.0", "2.0", "dog", "0.9", "yes", "dog", "ann", "", "score", ""],
        ["/r.wav", "3.0", "4.0", "dog", "0.6", "no", "dog", "ann", "", "score", ""],
        ["/r.wav", "5.0", "6.0", "dog", "0.5", "other", "cat", "ann", "", "score", ""],
        ["/r.wav", "7.0", "8.0", "dog", "0.5", "unsure", "dog", "ann", "", "score", ""],
    ]
    text = ",".join(COLUMNS) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    (tmp_path / "review.csv").write_text(text)
    df = read_boxes(tmp_path / "review.csv")
    assert df[["start_s", "label", "negative_of", "row"]].values.tolist() == [
        [1.0, "dog", "", 2],
        [3.0, "", "dog", 3],
        [5.0, "cat", "", 4],
    ]
    assert set(df["source"]) == {str(tmp_path / "review.csv")}
