"""Annotations of long recordings (boxes drawn in Raven or Audacity, or listed in a CSV) → one box table.

    read_boxes("site1/")                 → every recording with a table beside it (rec.wav + rec*.txt)
    read_boxes("rec.Table.1.selections.txt")   a Raven selection table (per file, or combined with Begin Path)
    read_boxes("rec.labels.txt")         → an Audacity label track (the recording beside it: rec.wav)
    read_boxes("boxes.csv" | ".parquet") → rows path,start_s,end_s,label[,low_hz,high_hz][,negative_of]

The box table (`BOX_COLUMNS`) is the one in-memory form every consumer reads (training windows,
event-level evaluation, review): `path`, `start_s`, `end_s` (seconds into the file), `label`, `low_hz`,
`high_hz` (NaN when not drawn), `source` (the file the row came from) and `row` (its 1-based line, header
included, so an editor jumps to it; a parquet row counts from 1). A row with `negative_of` set says "this
span holds no `negative_of`"; its `label` is "". `df.attrs["recordings"]` lists the recordings the tables
cover, with or without boxes: an empty table means "listened, heard nothing" (background for training);
a folder's `attrs["without_table"]` lists the recordings it holds that no table covers.

Raven conventions (as OpenSoundscape's `BoxedAnnotations.from_raven_files` reads them): tab-separated, the
label in `Annotation` (or `Label`, `Species`, `Class`, else the first column after the measurements), a
selection shown in both waveform and spectrogram views counted once, and a combined table's `Begin Path` +
`File Offset (s)` giving each box its own file. Audacity: `start<TAB>end<TAB>label`, with an optional
`\\<TAB>low<TAB>high` line after a label (-1 = not drawn). A malformed table is one `AnnotationError` line
naming the file and its row.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from learner.data.labels import ManifestError

BOX_COLUMNS = ("path", "start_s", "end_s", "label", "low_hz", "high_hz", "source", "row")
NEGATIVE = "negative_of"
RAVEN_BEGIN, RAVEN_END = "Begin Time (s)", "End Time (s)"
RAVEN_LOW, RAVEN_HIGH = "Low Freq (Hz)", "High Freq (Hz)"
RAVEN_PATH, RAVEN_OFFSET, RAVEN_FILE = "Begin Path", "File Offset (s)", "Begin File"
RAVEN_LABEL_NAMES = ("annotation", "label", "species", "class", "sound", "call type")
RAVEN_MEASUREMENTS = ("Selection", "View", "Channel", RAVEN_BEGIN, RAVEN_END, RAVEN_LOW, RAVEN_HIGH)
TABLE_EXTENSIONS = (".txt",)


class AnnotationError(ManifestError):
    """An annotation file that cannot be read as boxes; the message names the file and the row."""


def read_boxes(source: str | Path | pd.DataFrame, label_column: str | None = None) -> pd.DataFrame:
    """The box table of `source`: a folder of recordings with tables beside them, one Raven or Audacity
    table, a CSV/parquet box list, or a box table already in memory (checked and returned in order).
    `label_column` names a Raven table's label column when it is not one of `RAVEN_LABEL_NAMES`."""
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        df["source"] = df["source"] if "source" in df else "the box table"
        df["row"] = df["row"] if "row" in df else np.arange(1, len(df) + 1)
        return _finish([df], list(source.attrs.get("recordings", [])))
    path = Path(source)
    if not path.exists():
        raise AnnotationError(f"{path}: no such file or folder of annotations")
    if path.is_dir():
        return boxes_from_folder(path, label_column)
    if path.suffix.lower() in (".csv", ".parquet"):
        return _finish([read_box_list(path)])
    recording = recording_of(path, _recordings_beside(path.parent))
    frame = read_table(path, recording, label_column)
    return _finish([frame], [recording] if recording else sorted(set(frame["path"])))


def boxes_from_folder(folder: Path, label_column: str | None = None) -> pd.DataFrame:
    """Every table below `folder` with the recording it belongs to (the one whose name, with or without its
    extension, starts the table's name: `rec.wav` ← `rec.Table.1.selections.txt`, `rec.wav.labels.txt`);
    a combined Raven table names its files itself. A table that fits neither is refused."""
    from learner.data.manifest import _audio_files

    folder = Path(folder)
    recordings = [str(p) for p in _audio_files(folder)]
    by_dir: dict[str, list[str]] = {}
    for r in recordings:
        by_dir.setdefault(os.path.dirname(r), []).append(r)
    frames, covered = [], []
    for table in _tables(folder):
        recording = recording_of(table, by_dir.get(str(table.parent), []))
        if recording is None and not _is_combined_raven(table):
            if _sniff(table) is None:
                continue  # a note or a README beside the recordings, not a table
            raise AnnotationError(
                f"{table}: matches no recording beside it (name it after one: REC.wav → REC.<anything>.txt) "
                f"and has no {RAVEN_PATH!r} column"
            )
        frame = read_table(table, recording, label_column)
        covered += [recording] if recording else sorted(set(frame["path"]))
        frames.append(frame)
    if not frames:
        raise AnnotationError(f"{folder}: no Raven or Audacity tables (.txt) beside its recordings")
    df = _finish(frames, covered)
    df.attrs["without_table"] = sorted(set(recordings) - set(df.attrs["recordings"]))
    return df


def _tables(folder: Path) -> list[Path]:
    from learner.data.manifest import files_under

    return files_under(folder, TABLE_EXTENSIONS)


def _recordings_beside(folder: Path) -> list[str]:
    from learner.audio import AUDIO_EXTENSIONS

    return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def recording_of(table: Path, recordings: list[str]) -> str | None:
    """The recording `table` annotates: the longest recording name (with or without extension) that starts
    the table's name followed by a dot."""
    best, best_len = None, -1
    for r in recordings:
        name = os.path.basename(r)
        for key in (name, os.path.splitext(name)[0]):
            if table.name.startswith(key + ".") and len(key) > best_len:
                best, best_len = r, len(key)
    return best


# --- one table --------------------------------------------------------------------------------------------


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except OSError as e:
        raise AnnotationError(f"{path}: unreadable ({e.strerror or e})") from None
    return ""


def _sniff(path: Path) -> str | None:
    """ "raven", "audacity" (an empty file is an empty label track), or None for any other text."""
    line = _first_line(path)
    if not line:
        return "audacity"
    cells = line.split("\t")
    if RAVEN_BEGIN in cells:
        return "raven"
    if cells[0].strip() == "\\":
        return "audacity"  # a frequency line, out of place: read_audacity names the row
    try:
        float(cells[0]), float(cells[1])
    except (ValueError, IndexError):
        return None
    return "audacity"


def _is_combined_raven(path: Path) -> bool:
    return _sniff(path) == "raven" and RAVEN_PATH in _first_line(path).split("\t")


def read_table(path: Path, recording: str | None, label_column: str | None = None) -> pd.DataFrame:
    """Boxes of one Raven or Audacity table for `recording` (None: a combined Raven table names them)."""
    kind = _sniff(path)
    if kind == "raven":
        return read_raven(path, recording, label_column)
    if kind == "audacity":
        if recording is None:
            raise AnnotationError(f"{path}: an Audacity label track needs its recording beside it (REC.wav)")
        return read_audacity(path, recording)
    raise AnnotationError(
        f"{path}: row 1 is neither a Raven selection table header ({RAVEN_BEGIN!r}, tab-separated) nor an "
        "Audacity label (start<TAB>end<TAB>label)"
    )


def _number(text: object, path: Path, row: int, what: str, blank_ok: bool = False) -> float:
    s = "" if text is None else str(text).strip()
    if not s and blank_ok:
        return math.nan
    try:
        value = float(s)
    except ValueError:
        raise AnnotationError(f"{path}: row {row}: {what} {s!r} is not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{path}: row {row}: {what} {s!r} is not a finite number")
    return value


def _raven_label_column(header: list[str], path: Path, label_column: str | None) -> str:
    if label_column is not None:
        if label_column not in header:
            raise AnnotationError(f"{path}: no column {label_column!r} (columns: {', '.join(header)})")
        return label_column
    for name in header:
        if name.strip().lower() in RAVEN_LABEL_NAMES:
            return name
    extra = [h for h in header if h not in (*RAVEN_MEASUREMENTS, RAVEN_PATH, RAVEN_FILE) and "(" not in h]
    if not extra:
        raise AnnotationError(
            f"{path}: no label column (looked for {', '.join(RAVEN_LABEL_NAMES)}); name it with label_column"
        )
    return extra[0]


def _resolve(recorded: str, table_dir: Path) -> str:
    """A combined table's `Begin Path` as it exists here: as written, below the table's folder, or (a table
    made on another machine) the file of that name beside the table; else as written."""
    if os.path.exists(recorded):
        return os.path.abspath(recorded)
    if not os.path.isabs(recorded) and (table_dir / recorded).exists():
        return str(table_dir / recorded)
    name = recorded.replace("\\", "/").rsplit("/", 1)[-1]
    return str(table_dir / name) if (table_dir / name).exists() else recorded


def read_raven(path: Path, recording: str | None, label_column: str | None = None) -> pd.DataFrame:
    """A Raven selection table's boxes; each selection once (its spectrogram view's row when both views are
    listed)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip() for h in lines[0]]
    label_col = _raven_label_column(header, path, label_column)
    combined = RAVEN_PATH in header
    if recording is None and not combined:
        raise AnnotationError(f"{path}: a per-file table needs its recording beside it, or a {RAVEN_PATH!r}")
    if combined and RAVEN_OFFSET not in header:
        raise AnnotationError(f"{path}: has {RAVEN_PATH!r} but no {RAVEN_OFFSET!r} column to place boxes")
    rows, seen = [], {}
    for line_no, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise AnnotationError(f"{path}: row {line_no} has {len(cells)} cells, the header {len(header)}")
        cell = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
        begin = _number(cell[RAVEN_BEGIN], path, line_no, RAVEN_BEGIN)
        end = _number(cell[RAVEN_END], path, line_no, RAVEN_END)
        start_s = _number(cell[RAVEN_OFFSET], path, line_no, RAVEN_OFFSET) if combined else begin
        where = _resolve(cell[RAVEN_PATH].strip(), path.parent) if combined else recording
        box = {
            "path": where,
            "start_s": start_s,
            "end_s": start_s + (end - begin),
            "label": cell[label_col].strip(),
            "low_hz": _number(cell.get(RAVEN_LOW, ""), path, line_no, RAVEN_LOW, blank_ok=True),
            "high_hz": _number(cell.get(RAVEN_HIGH, ""), path, line_no, RAVEN_HIGH, blank_ok=True),
            "source": str(path),
            "row": line_no,
        }
        selection = cell.get("Selection", "").strip()
        if selection and selection in seen:  # the same selection in another view
            if cell.get("View", "").startswith("Spectrogram") and not seen[selection][1]:
                rows[seen[selection][0]] = box
                seen[selection] = (seen[selection][0], True)
            continue
        if selection:
            seen[selection] = (len(rows), cell.get("View", "").startswith("Spectrogram"))
        rows.append(box)
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS))


def read_audacity(path: Path, recording: str) -> pd.DataFrame:
    """An Audacity label track's boxes; a `\\` line after a label carries its frequency range (−1 = none)."""
    rows = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            cells = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if cells[0].strip() == "\\":
                if not rows or len(cells) < 3:
                    raise AnnotationError(
                        f"{path}: row {line_no}: a frequency line (\\) with no label before"
                    )
                low, high = (_number(c, path, line_no, "frequency") for c in cells[1:3])
                rows[-1]["low_hz"] = low if low >= 0 else math.nan
                rows[-1]["high_hz"] = high if high >= 0 else math.nan
                continue
            if len(cells) < 2:
                raise AnnotationError(
                    f"{path}: row {line_no}: need start<TAB>end<TAB>label, got {line.strip()!r}"
                )
            start = _number(cells[0], path, line_no, "start")
            end = _number(cells[1], path, line_no, "end")
            label = "\t".join(cells[2:]).strip()
            rows.append(
                dict(path=recording, start_s=start, end_s=end, label=label, source=str(path), row=line_no)
            )
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS)).astype({"low_hz": float, "high_hz": float})


def read_box_list(path: Path) -> pd.DataFrame:
    """A CSV or parquet of `path,start_s,end_s,label[,low_hz,high_hz][,negative_of]`; relative paths resolve
    against its folder."""
    parquet = path.suffix.lower() == ".parquet"
    try:
        df = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise AnnotationError(f"{path}: unreadable {'parquet' if parquet else 'CSV'} ({e})") from None
    if "answer" in df.columns:  # a review file: its answers decide the labels (learner.data.review)
        from learner.data.review import read_review, review_boxes

        return review_boxes(read_review(path)).assign(source=str(path))
    missing = [c for c in ("path", "start_s", "end_s", "label") if c not in df.columns]
    if missing:
        raise AnnotationError(
            f"{path}: missing column(s) {', '.join(missing)} (need path,start_s,end_s,label)"
        )
    first = 1 if parquet else 2
    out = pd.DataFrame({"row": np.arange(first, first + len(df)), "source": str(path)})
    for col in ("start_s", "end_s", "low_hz", "high_hz"):
        if col not in df.columns:
            out[col] = math.nan
            continue
        values = df[col].tolist()
        blank_ok = col in ("low_hz", "high_hz")
        out[col] = [_number(v, path, r, col, blank_ok) for v, r in zip(values, out["row"], strict=True)]
    out["path"] = [
        str(p if os.path.isabs(str(p)) else path.parent / str(p)) if str(p).strip() else ""
        for p in df["path"].fillna("")
    ]
    out["label"] = df["label"].fillna("").astype(str).str.strip().tolist()
    if NEGATIVE in df.columns:
        out[NEGATIVE] = df[NEGATIVE].fillna("").astype(str).str.strip().tolist()
    return out


# --- checks -----------------------------------------------------------------------------------------------


def _finish(frames: list[pd.DataFrame], recordings: list[str] | None = None) -> pd.DataFrame:
    """One box table from `frames`, every row checked (the first bad one named), in path and time order."""
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(BOX_COLUMNS))
    for col in BOX_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan if col in ("low_hz", "high_hz") else ""
    if NEGATIVE in df.columns:
        df[NEGATIVE] = df[NEGATIVE].fillna("").astype(str)
    for r in df.itertuples(index=False):
        _check_row(r, NEGATIVE in df.columns)
    df = df.astype({"start_s": float, "end_s": float, "low_hz": float, "high_hz": float})
    df = df[list(BOX_COLUMNS) + [c for c in df.columns if c not in BOX_COLUMNS]]
    df = df.sort_values(["path", "start_s", "end_s", "label"], kind="stable").reset_index(drop=True)
    df.attrs["recordings"] = sorted(set(recordings or []) | set(df["path"]))
    return df


def _check_row(r, has_negative: bool) -> None:
    where = f"{r.source}: row {r.row}"
    negative = getattr(r, NEGATIVE, "") if has_negative else ""
    if not str(r.path).strip():
        raise AnnotationError(f"{where}: empty path")
    if not (r.start_s >= 0 and r.end_s >= r.start_s):
        raise AnnotationError(f"{where}: the box must run forward from 0 s, got {r.start_s} to {r.end_s}")
    if not str(r.label).strip() and not negative:
        raise AnnotationError(
            f"{where}: no label (a span known to hold no LABEL goes in a negative_of column)"
        )
    if negative and str(r.label).strip():
        raise AnnotationError(f"{where}: both a label ({r.label!r}) and negative_of ({negative!r})")
    if not (math.isnan(r.low_hz) or math.isnan(r.high_hz)) and r.low_hz > r.high_hz:
        raise AnnotationError(f"{where}: low frequency {r.low_hz} Hz above high {r.high_hz} Hz")


def is_annotations(data: str | Path) -> bool:
    """Whether training data `data` is annotated long recordings (not a manifest or a class-per-folder set):
    a .txt table, a CSV/parquet with `start_s` and `end_s`, or a folder holding a table that belongs to one
    of its recordings (or a combined Raven table)."""
    path = Path(data)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in TABLE_EXTENSIONS:
            return True
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return {"start_s", "end_s"} <= set(pq.read_schema(path).names)
        if suffix == ".csv":
            header = _first_line(path).split(",")
            return {"start_s", "end_s"} <= {h.strip().strip('"') for h in header}
        return False
    if not path.is_dir():
        return False
    from learner.data.manifest import _audio_files

    recordings: dict[str, list[str]] = {}
    for r in _audio_files(path):
        recordings.setdefault(os.path.dirname(r), []).append(str(r))
    return any(
        recording_of(t, recordings.get(str(t.parent), [])) is not None or _is_combined_raven(t)
        for t in _tables(path)
    )
