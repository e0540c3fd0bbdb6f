"""Field-recorder outputs of a scoring run: absolute times on the rows, and the tables made across all files.

    start_utc on window and event rows   the file's start (`learner.data.recorders`) + the row's start_s
    one combined Raven selection table   Begin Path / File Offset (s) / Begin Date Time; Begin Time (s)
                                         runs on across the files (alphabetical: Raven's multi-file
                                         order), beside its `.list.txt` of files, as BirdNET-Analyzer does
    a Kaleidoscope-style CSV             INDIR, FOLDER, IN FILE, CHANNEL, OFFSET, DURATION, DATE, TIME,
                                         HOUR (the recording's start), AUTO ID*, MANUAL ID (left empty)
    detections per site per day          site, date (UTC), label, detections, files, recorded_h

The three tables are `EVENT_WRITERS` entries with `combined=True` (learner.score.event_writers).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from learner.data.recorders import FileTimes
from learner.serve.events import RAVEN_COLUMNS, Event

if TYPE_CHECKING:
    import pyarrow as pa


def start_utc_field() -> pa.Field:
    """The `start_utc` column's Arrow field (built on use: `--help` of the jobs never loads pyarrow)."""
    import pyarrow as pa

    return pa.field("start_utc", pa.timestamp("us", tz="UTC"))


RAVEN_COMBINED_COLUMNS = (
    *RAVEN_COLUMNS,  # a per-file selection table's, then where each selection's file is
    "Begin Path",
    "File Offset (s)",
    "Begin File",
    "Begin Date Time",
)
KALEIDOSCOPE_COLUMNS = (
    "INDIR",
    "FOLDER",
    "IN FILE",
    "CHANNEL",
    "OFFSET",
    "DURATION",
    "DATE",
    "TIME",
    "HOUR",
    "AUTO ID*",
    "MANUAL ID",
    "SCORE",
    "MEAN SCORE",
    "SITE",
)
SITE_DAY_COLUMNS = ("site", "date", "label", "detections", "files", "recorded_h")
RAVEN_DATE_TIME = "%Y/%m/%d %H:%M:%S.%f"  # Raven's clock-time columns: 2024/01/05 03:15:00.000


def with_start_utc(table: pa.Table, times: FileTimes) -> pa.Table:
    """`table` (rows with path and start_s) plus `start_utc`: the file's start + start_s (null when the
    file's start is unknown)."""
    import pyarrow as pa

    starts: dict[str, datetime | None] = {}
    column = []
    for path, offset in zip(table["path"].to_pylist(), table["start_s"].to_pylist(), strict=True):
        if path not in starts:
            starts[path] = times.start_utc(path)
        t0 = starts[path]
        column.append(None if t0 is None or offset is None else t0 + timedelta(seconds=float(offset)))
    field = start_utc_field()
    return table.append_column(field, pa.array(column, field.type))


@dataclass(frozen=True)
class ScoredFile:
    """What a combined table needs of one file scored without an error."""

    path: str
    sample_rate: int
    duration_s: float
    start_utc: datetime | None
    site: str


def scored_files(rows: list[dict], times: FileTimes | None) -> list[ScoredFile]:
    times = times or FileTimes()
    return [
        ScoredFile(
            r["path"],
            int(r["sample_rate"] or 0),
            float(r["duration_s"] or 0.0),
            times.start_utc(r["path"]),
            times.site(r["path"]),
        )
        for r in sorted(rows, key=lambda r: r["path"])
        if r["error"] is None
    ]


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def raven_combined(files: Sequence[ScoredFile], events: dict[str, list[Event]]) -> str:
    """One Raven selection table over every file (`RAVEN_COMBINED_COLUMNS`, tab-separated)."""
    lines, n, offset = ["\t".join(RAVEN_COMBINED_COLUMNS)], 0, 0.0
    for f in files:
        for e in sorted(events.get(f.path, []), key=lambda e: (e.start_s, e.label)):
            n += 1
            when = "" if f.start_utc is None else (f.start_utc + timedelta(seconds=e.start_s))
            lines.append(
                "\t".join(
                    [
                        str(n),
                        "Spectrogram 1",
                        "1",
                        f"{offset + e.start_s:.6f}",
                        f"{offset + e.end_s:.6f}",
                        "0.0",
                        f"{f.sample_rate / 2:.1f}",
                        _clean(e.label),
                        f"{e.max_score:.4f}",
                        f"{e.mean_score:.4f}",
                        os.path.abspath(f.path),
                        f"{e.start_s:.6f}",
                        os.path.basename(f.path),
                        when.strftime(RAVEN_DATE_TIME)[:-3] if when else "",
                    ]
                )
            )
        offset += f.duration_s
    return "\n".join(lines) + "\n"


def raven_file_list(files: Sequence[ScoredFile]) -> str:
    """The files of a combined table in its order: open this list in Raven to see them as one sound."""
    return "".join(os.path.abspath(f.path) + "\n" for f in files)


def kaleidoscope_csv(files: Sequence[ScoredFile], events: dict[str, list[Event]]) -> str:
    """A Kaleidoscope-style CSV (`KALEIDOSCOPE_COLUMNS`): one row per event; INDIR is the folder holding
    all the files, FOLDER the file's folder below it."""
    root = os.path.commonpath([os.path.dirname(os.path.abspath(f.path)) for f in files]) if files else ""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(KALEIDOSCOPE_COLUMNS)
    for f in files:
        folder = os.path.relpath(os.path.dirname(os.path.abspath(f.path)), root)
        t = f.start_utc
        for e in sorted(events.get(f.path, []), key=lambda e: (e.start_s, e.label)):
            w.writerow(
                [
                    root,
                    "" if folder == "." else folder,
                    os.path.basename(f.path),
                    0,
                    f"{e.start_s:.3f}",
                    f"{e.end_s - e.start_s:.3f}",
                    t.strftime("%Y-%m-%d") if t else "",
                    t.strftime("%H:%M:%S") if t else "",
                    t.hour if t else "",
                    e.label,
                    "",
                    f"{e.max_score:.4f}",
                    f"{e.mean_score:.4f}",
                    f.site,
                ]
            )
    return buf.getvalue()


def _days(start: datetime | None, seconds: float) -> dict[str, float]:
    """UTC date → seconds of a recording starting at `start` that fall on it."""
    if start is None:
        return {"unknown": seconds}
    out, t, end = {}, start, start + timedelta(seconds=seconds)
    while t < end:
        midnight = datetime(t.year, t.month, t.day, tzinfo=t.tzinfo) + timedelta(days=1)
        step = min(end, midnight)
        out[t.strftime("%Y-%m-%d")] = out.get(t.strftime("%Y-%m-%d"), 0.0) + (step - t).total_seconds()
        t = step
    return out or {start.strftime("%Y-%m-%d"): 0.0}


def site_days_csv(files: Sequence[ScoredFile], events: dict[str, list[Event]]) -> str:
    """Detections per site per UTC day and label (`SITE_DAY_COLUMNS`), with the hours recorded that day:
    a site-day that was recorded but heard nothing of a label has a row with 0 detections."""
    labels = sorted({e.label for evs in events.values() for e in evs})
    recorded: dict[tuple[str, str], list] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for f in files:
        for day, secs in _days(f.start_utc, f.duration_s).items():
            cell = recorded.setdefault((f.site, day), [0.0, set()])
            cell[0] += secs
            cell[1].add(f.path)
        for e in events.get(f.path, []):
            day = (
                "unknown"
                if f.start_utc is None
                else (f.start_utc + timedelta(seconds=e.start_s)).strftime("%Y-%m-%d")
            )
            counts[(f.site, day, e.label)] = counts.get((f.site, day, e.label), 0) + 1
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SITE_DAY_COLUMNS)
    for (site, day), (secs, paths) in sorted(recorded.items()):
        for label in labels:
            w.writerow(
                [site, day, label, counts.get((site, day, label), 0), len(paths), f"{secs / 3600:.4f}"]
            )
    return buf.getvalue()
