"""Events of a scoring output → one file per scored input file in each format asked for, from one table
(`EVENT_WRITERS`, beside `WRITERS` for the rows): adding an event format is one entry here.

    scores.events.parquet/ → RAVEN_DIR/<relative path>/<name>.earshot.selection.table.txt   (Raven Pro,
    BirdNET style)
                           → AUDACITY_DIR/<relative path>/<name>.earshot.labels.txt          (Audacity label
                           track)

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

from learner.serve.events import Event, audacity_labels, raven_table

RAVEN_SUFFIX = ".earshot.selection.table.txt"
AUDACITY_SUFFIX = ".earshot.labels.txt"


@dataclass(frozen=True)
class EventWriter:
    """One event format: `render(events, sample_rate)` → the text of one input file's events."""

    name: str
    suffix: str
    help: str
    render: Callable[[list[Event], int], str]


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


def export_events(out: str | Path, dirs: dict[str, str | Path]) -> ExportSummary:
    """Write the events of scoring output `out` (made with windows) in each format of `dirs` (an
    `EVENT_WRITERS` name → its folder); returns what was written."""
    unknown = sorted(set(dirs) - set(EVENT_WRITERS))
    if unknown:
        raise ValueError(f"no event format {', '.join(unknown)}; known: {', '.join(EVENT_WRITERS)}")
    from learner.score.store import read_results  # pyarrow: not needed to list the formats (--help)

    files = read_results(out)
    if files.num_rows == 0:
        return ExportSummary()
    events_table = read_results(out, events=True)
    if events_table.num_columns == 0 and files.num_rows:
        raise ValueError(f"{out} has no events table; score with windows= to find events")
    by_path: dict[str, list[Event]] = {}
    for r in events_table.to_pylist():
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
    ok = [
        (p, rate)
        for p, rate, err in zip(
            files["path"].to_pylist(),
            files["sample_rate"].to_pylist(),
            files["error"].to_pylist(),
            strict=True,
        )
        if err is None
    ]
    names = _relative_names([p for p, _ in ok])
    summary = ExportSummary()
    for path, rate in ok:
        events = by_path.get(path, [])
        rel = names[path]
        for name, folder in dirs.items():
            writer = EVENT_WRITERS[name]
            target = Path(folder) / rel.parent / (rel.name + writer.suffix)
            _write(target, writer.render(events, rate))
            summary.written.append(target)
        summary.files += 1
        summary.events += len(events)
    return summary


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
