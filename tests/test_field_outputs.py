"""Field-recorder outputs (issue 23 item 5): start times from AudioMoth / Song Meter / YYYYMMDD_HHMMSS names,
a user's regex or a deployments CSV → `start_utc` on window and event rows of `jobs.score`; one combined
Raven table across files (its columns checked), a Kaleidoscope-style CSV, detections per site per day."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.recorders import compile_pattern, file_times, read_deployments, time_from_name
from learner.score.field_outputs import (
    KALEIDOSCOPE_COLUMNS,
    RAVEN_COMBINED_COLUMNS,
    ScoredFile,
    kaleidoscope_csv,
    raven_combined,
    site_days_csv,
)
from learner.serve.events import Event
from tests.conftest import RAVEN_PUBLISHED

# a model folder of the previous release (ONNX): its classes are no reject classes, so noise at threshold 0.05
# makes events (the shipped speech model answers "silence" to noise, and rejections are no events)
MODEL = Path(__file__).resolve().parent / "fixtures" / "earshot-0.1.0"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("20240105_031500.WAV", datetime(2024, 1, 5, 3, 15, 0, tzinfo=UTC)),  # AudioMoth
        ("SMA01234_20240105_031507.wav", datetime(2024, 1, 5, 3, 15, 7, tzinfo=UTC)),  # Song Meter
        ("S4A09999_20231231_235959.flac", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("site3-20240105T031500.flac", datetime(2024, 1, 5, 3, 15, tzinfo=UTC)),
        ("5E9C2A00.WAV", datetime.fromtimestamp(0x5E9C2A00, UTC)),  # AudioMoth's older hex names
        ("rec1.wav", None),
        ("12345678.wav", None),  # a number, not a hex clock
        ("20241305_031500.wav", None),  # month 13: digits, not a date
        ("x_120240105_031500.wav", None),  # inside a longer run of digits
    ],
)
def test_start_time_from_the_file_name_to_the_second(name, expected):
    assert time_from_name(f"/field/{name}") == expected


def test_names_in_local_time_and_a_users_pattern():
    assert time_from_name("20240105_031500.wav", zone=file_times(zone="+02:00").zone) == datetime(
        2024, 1, 5, 1, 15, tzinfo=UTC
    )
    berlin = file_times(zone="Europe/Berlin").zone  # winter: UTC+1
    assert time_from_name("SM4_20240105_031500.wav", zone=berlin) == datetime(2024, 1, 5, 2, 15, tzinfo=UTC)
    pattern = compile_pattern(
        r"(?P<day>\d\d)-(?P<month>\d\d)-(?P<year>\d{4}) (?P<hour>\d\d)h(?P<minute>\d\d)"
    )
    assert time_from_name("owl 05-01-2024 03h15.wav", pattern) == datetime(2024, 1, 5, 3, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="needs the named groups .* missing: hour, minute"):
        compile_pattern(r"(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)")
    with pytest.raises(ValueError, match="time zone 'Mars/Olympus'"):
        file_times(zone="Mars/Olympus")


def test_deployments_give_sites_zones_and_starts(tmp_path):
    for folder in ("north", "south"):
        (tmp_path / folder).mkdir()
    (tmp_path / "south" / "0001.wav").write_bytes(b"")
    (tmp_path / "deployments.csv").write_text(
        "path,site,start_utc,timezone\nnorth,N1,,+01:00\nsouth,S1,,\nsouth/0001.wav,,2024-03-01T22:00:00Z,\n"
    )
    times = file_times(deployments=tmp_path / "deployments.csv")
    assert times.site(str(tmp_path / "north" / "20240105_031500.wav")) == "N1"
    assert times.start_utc(str(tmp_path / "north" / "20240105_031500.wav")) == datetime(
        2024, 1, 5, 2, 15, tzinfo=UTC
    )
    assert times.start_utc(str(tmp_path / "south" / "0001.wav")) == datetime(2024, 3, 1, 22, tzinfo=UTC)
    assert times.site(str(tmp_path / "elsewhere" / "x.wav")) == "elsewhere"  # no row: the folder's name
    (tmp_path / "bad.csv").write_text("path,start_utc\nnorth,2024-01-01T00:00:00\n")
    with pytest.raises(ValueError, match=r"bad.csv line 2: start_utc on a folder"):
        read_deployments(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("path,start_utc\nsouth/0001.wav,yesterday\n")
    with pytest.raises(ValueError, match=r"bad2.csv line 2: start_utc 'yesterday' is not an ISO 8601"):
        read_deployments(tmp_path / "bad2.csv")


T0 = datetime(2024, 1, 5, 23, 59, 0, tzinfo=UTC)
FILES = [
    ScoredFile("/field/a/20240105_235900.WAV", 48000, 120.0, T0, "a"),
    ScoredFile("/field/b/SMA1_20240106_000000.wav", 48000, 60.0, datetime(2024, 1, 6, tzinfo=UTC), "b"),
]
EVENTS = {
    FILES[0].path: [
        Event(FILES[0].path, "owl", 10.0, 12.5, 0.9, 0.7),
        Event(FILES[0].path, "owl", 70.0, 71.0, 0.8, 0.6),
    ],
    FILES[1].path: [Event(FILES[1].path, "frog", 5.0, 6.0, 0.6, 0.5)],
}


def _rows(text: str, delimiter: str = ",") -> list[dict]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def test_the_combined_raven_table_has_raven_and_birdnet_columns():
    text = raven_combined(FILES, EVENTS)
    header = text.splitlines()[0].split("\t")
    assert header == list(RAVEN_COMBINED_COLUMNS)
    assert header[:7] == RAVEN_PUBLISHED
    assert {"Begin Path", "File Offset (s)", "Begin Date Time", "Begin File"} <= set(header)
    rows = _rows(text, "\t")
    assert [r["Selection"] for r in rows] == ["1", "2", "3"]
    third = rows[2]  # the second file's event: Begin Time runs on after the first file's 120 s
    assert float(third["Begin Time (s)"]) == 125.0 and float(third["File Offset (s)"]) == 5.0
    assert third["Begin Path"] == FILES[1].path and third["Begin File"] == "SMA1_20240106_000000.wav"
    assert rows[0]["Begin Date Time"] == "2024/01/05 23:59:10.000"
    assert rows[1]["Begin Date Time"] == "2024/01/06 00:00:10.000"  # past midnight
    assert rows[0]["Annotation"] == "owl" and rows[0]["High Freq (Hz)"] == "24000.0"


def test_the_kaleidoscope_csv_names_folder_file_and_offset():
    rows = _rows(kaleidoscope_csv(FILES, EVENTS))
    assert list(rows[0]) == list(KALEIDOSCOPE_COLUMNS)
    assert [r["IN FILE"] for r in rows] == ["20240105_235900.WAV"] * 2 + ["SMA1_20240106_000000.wav"]
    assert rows[0]["INDIR"] == "/field" and rows[0]["FOLDER"] == "a" and rows[2]["FOLDER"] == "b"
    assert (rows[1]["OFFSET"], rows[1]["DURATION"], rows[1]["AUTO ID*"], rows[1]["MANUAL ID"]) == (
        "70.000",
        "1.000",
        "owl",
        "",
    )
    assert (rows[0]["DATE"], rows[0]["TIME"], rows[0]["HOUR"]) == ("2024-01-05", "23:59:00", "23")


def test_detections_per_site_per_day_split_at_midnight():
    rows = _rows(site_days_csv(FILES, EVENTS))
    got = {(r["site"], r["date"], r["label"]): (int(r["detections"]), float(r["recorded_h"])) for r in rows}
    assert got[("a", "2024-01-05", "owl")] == (1, round(60 / 3600, 4))  # 23:59:00–00:00:00
    assert got[("a", "2024-01-06", "owl")] == (1, round(60 / 3600, 4))
    assert got[("a", "2024-01-06", "frog")] == (0, round(60 / 3600, 4))  # recorded, heard none: a 0 row
    assert got[("b", "2024-01-06", "frog")][0] == 1


# --- through jobs.score -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Path:
    """Two recorders' folders: AudioMoth- and Song-Meter-named files, and one file without a time."""
    root = tmp_path_factory.mktemp("field")
    rng = np.random.default_rng(0)
    for rel in ("moth/20240105_031500.WAV", "sm/SMA01234_20240105_040000.wav", "sm/notime.wav"):
        (root / rel).parent.mkdir(exist_ok=True)
        sf.write(root / rel, (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32), 16000)
    return root


def _score(deployment: Path, out: Path, *extra: str) -> None:
    from jobs.score import main

    main(
        [
            str(deployment),
            "--model",
            str(MODEL),
            "--backend",
            "onnx",
            "--out",
            str(out),
            "--windows",
            "1,1",
            "--threshold",
            "0.05",
            "--quiet",
            "--workers",
            "1",
            *extra,
        ]
    )


def test_jobs_score_puts_start_utc_on_window_and_event_rows(deployment, tmp_path, capsys):
    from learner.score.store import read_results

    out = tmp_path / "scores.parquet"
    combined = tmp_path / "all.selection.table.txt"
    _score(
        deployment,
        out,
        "--start-times",
        "--raven-combined",
        str(combined),
        "--kaleidoscope",
        str(tmp_path / "k.csv"),
        "--site-days",
        str(tmp_path / "days.csv"),
    )
    assert "1 file(s) with no start time" in capsys.readouterr().out
    windows = read_results(out, windows=True).to_pylist()
    moth = [w for w in windows if w["path"].endswith("20240105_031500.WAV")]
    assert [w["start_utc"] for w in moth] == [datetime(2024, 1, 5, 3, 15, s, tzinfo=UTC) for s in range(4)]
    sm = [w for w in windows if "SMA01234" in w["path"]]
    assert sm[2]["start_utc"] == datetime(2024, 1, 5, 4, 0, 2, tzinfo=UTC)
    assert all(w["start_utc"] is None for w in windows if w["path"].endswith("notime.wav"))
    for e in read_results(out, events=True).to_pylist():
        if e["path"].endswith(".WAV"):
            assert e["start_utc"] == datetime(2024, 1, 5, 3, 15, tzinfo=UTC) + timedelta(seconds=e["start_s"])
    rows = _rows(combined.read_text(), "\t")
    assert list(rows[0]) == list(RAVEN_COMBINED_COLUMNS) and len(rows) >= 3
    assert combined.with_name(combined.name + ".list.txt").read_text().count("\n") == 3
    days = _rows((tmp_path / "days.csv").read_text())
    assert {r["site"] for r in days} == {"moth", "sm"} and {r["date"] for r in days} == {
        "2024-01-05",
        "unknown",
    }


def test_resume_refuses_other_start_time_settings(deployment, tmp_path):
    out = tmp_path / "scores.parquet"
    _score(deployment, out, "--start-times")
    with pytest.raises(ValueError, match="start_times"):
        _score(deployment, out, "--resume")


def test_the_combined_raven_table_reads_back_as_the_same_boxes(tmp_path):
    """annot's reader takes the combined table (Begin Path + File Offset (s)) back to each file's events."""
    from learner.data.annotations import read_boxes

    files = []
    for f in FILES:
        path = tmp_path / Path(f.path).name
        sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
        files.append(ScoredFile(str(path), f.sample_rate, f.duration_s, f.start_utc, f.site))
    events = {
        new.path: [
            Event(new.path, e.label, e.start_s, e.end_s, e.max_score, e.mean_score) for e in EVENTS[old.path]
        ]
        for old, new in zip(FILES, files, strict=True)
    }
    table = tmp_path / "all.selection.table.txt"
    table.write_text(raven_combined(files, events))
    boxes = read_boxes(table)
    got = sorted((Path(r.path).name, r.start_s, r.end_s, r.label) for r in boxes.itertuples())
    want = sorted((Path(p).name, e.start_s, e.end_s, e.label) for p, evs in events.items() for e in evs)
    assert got == want
