"""Events of a scoring output → one file per scored input file in each format asked for, from one table
(`EVENT_WRITERS`, beside `WRITERS` for the rows): adding an event format is one entry here.

    scores.events.parquet/ → RAVEN_DIR/<relative path>/<name>.earshot.selection.table.txt   (Raven Pro,
    BirdNET style)
                           → AUDACITY_DIR/<relative path>/<name>.earshot.labels.txt          (Audacity label
                           track)

Formats with `combined=True` write ONE file across all inputs (its path is given, not a folder): a Raven table
over every file, a Kaleidoscope-style CSV, detections per site per day (`learner.score.field_outputs`).

Every file scored without an error gets its files, also when it has no events (an empty table says "listened,
heard nothing"; a missing one would be ambiguous). Paths below the inputs' common folder are kept, so two
`rec.wav` in different folders never overwrite each other. Written from the committed output, so a resumed run
exports everything scored so far.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from learner.data.recorders import FileTimes
from learner.score.field_outputs import (
    ScoredFile,
    kaleidoscope_csv,
    raven_combined,
    raven_file_list,
    scored_files,
    site_days_csv,
)
from learner.serve.events import Event, audacity_labels, raven_table

RAVEN_SUFFIX = ".earshot.selection.table.txt"
AUDACITY_SUFFIX = ".earshot.labels.txt"


@dataclass(frozen=True)
class EventWriter:
    """One event format: `render(events, sample_rate)` → the text of one input file's events; a combined
    one: `render_all(files, events by path)` → the text of one file over all inputs (`suffix` unused)."""

    name: str
    suffix: str
    help: str
    render: Callable[[list[Event], int], str] | None = None
    render_all: Callable[[list[ScoredFile], dict[str, list[Event]]], str] | None = None
    companion: Callable[[list[ScoredFile]], tuple[str, str]] | None = None  # (suffix, text) beside it

    @property
    def combined(self) -> bool:
        return self.render_all is not None


EVENT_WRITERS: dict[str, EventWriter] = {
    w.name: w
    for w in (
        EventWriter(
            "raven",
            RAVEN_SUFFIX,
            "one Raven Pro selection table per input file (BirdNET style)",
            lambda events, rate: raven_table(events, high_freq_hz=(rate or 0) / 2),
        ),
        EventWriter(
            "audacity",
            AUDACITY_SUFFIX,
            "one Audacity label file per input file",
            lambda events, rate: audacity_labels(events),
        ),
        EventWriter(
            "raven-combined",
            "",
            "ONE Raven selection table over every input file (Begin Path, File Offset (s), Begin Date Time)",
            render_all=raven_combined,
            companion=lambda files: (".list.txt", raven_file_list(files)),
        ),
        EventWriter(
            "kaleidoscope",
            "",
            "one Kaleidoscope-style CSV over every input file (INDIR, FOLDER, IN FILE, OFFSET, …)",
            render_all=kaleidoscope_csv,
        ),
        EventWriter(
            "site-days",
            "",
            "one CSV of detections per site per day (site, date, label, detections, recorded_h)",
            render_all=site_days_csv,
        ),
    )
}


@dataclass
class ExportSummary:
    files: int = 0
    events: int = 0
    written: list[Path] = field(default_factory=list)


def _relative_names(paths: list[str]) -> dict[str, Path]:
    """Each path below the common folder of all of them (`a/x/1.wav`, `a/y/1.wav` → `x/1.wav`, `y/1.wav`)."""
    if not paths:
        return {}
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    root = os.path.commonpath(parents)
    return {p: Path(os.path.relpath(os.path.abspath(p), root)) for p in paths}


def _events_by_path(out: str | Path) -> dict[str, list[Event]]:
    from learner.score.store import read_results

    by_path: dict[str, list[Event]] = {}
    for r in read_results(out, events=True).to_pylist():
        by_path.setdefault(r["path"], []).append(
            Event(
                r["path"],
                r["label"],
                float(r["start_s"]),
                float(r["end_s"]),
                float(r["max_score"]),
                float(r["mean_score"]),
            )
        )
    return by_path


def export_events(
    out: str | Path, dirs: dict[str, str | Path], times: FileTimes | None = None
) -> ExportSummary:
    """Write the events of scoring output `out` (made with windows) in each format of `dirs` (an
    `EVENT_WRITERS` name → its folder, or its file for a combined format); `times` gives the combined
    tables each file's start and site (`learner.data.recorders`). Returns what was written."""
    unknown = sorted(set(dirs) - set(EVENT_WRITERS))
    if unknown:
        raise ValueError(f"no event format {', '.join(unknown)}; known: {', '.join(EVENT_WRITERS)}")
    from learner.score.store import read_results  # pyarrow: not needed to list the formats (--help)

    files = read_results(out)
    if files.num_rows == 0:
        return ExportSummary()
    if read_results(out, events=True).num_columns == 0:
        raise ValueError(f"{out} has no events table; score with windows= to find events")
    by_path = _events_by_path(out)
    ok = scored_files(files.select(["path", "sample_rate", "duration_s", "error"]).to_pylist(), times)
    names = _relative_names([f.path for f in ok])
    summary = ExportSummary(files=len(ok), events=sum(len(by_path.get(f.path, [])) for f in ok))
    for name, target in dirs.items():
        writer = EVENT_WRITERS[name]
        if writer.combined:
            _write(Path(target), writer.render_all(ok, by_path))
            summary.written.append(Path(target))
            if writer.companion:
                suffix, text = writer.companion(ok)
                _write(Path(str(target) + suffix), text)
            continue
        for f in ok:
            rel = names[f.path]
            path = Path(target) / rel.parent / (rel.name + writer.suffix)
            _write(path, writer.render(by_path.get(f.path, []), f.sample_rate))
            summary.written.append(path)
    return summary


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
