"""The review file: what reviewers answered about candidate windows, one CSV line per answer, append-only.

    path,start_s,end_s,label,score,answer,answered_label,reviewer,answered_utc,pick,source_run

`answer` is yes / no / other / unsure / undo; `answered_label` is the label the reviewer gave for `other`
(else the label). The latest answer per window and label (path, start_s, end_s, label) wins; `undo`
retracts the one before it. Nothing is ever rewritten: an answer is one `write` of one whole line to a file
opened with O_APPEND, under an exclusive `flock`, then fsync'ed, so two reviewers (two processes) appending
at once never interleave, and a server killed mid-review loses at most the answer it had not yet written.
A line cut short by a crash (no newline at the end) is closed by the next append and skipped, with a
warning naming the file and line, when read.

`read_review` → the latest answers; `review_boxes` → a box table (learner.data.annotations' contract) to
train on; `write_raven` → one combined Raven selection table (`Begin Path`, `File Offset (s)`).
"""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = (
    "path", "start_s", "end_s", "label", "score", "answer", "answered_label",
    "reviewer", "answered_utc", "pick", "source_run",
)  # fmt: skip
ANSWERS = ("yes", "no", "other", "unsure", "undo")
KEY = ("path", "start_s", "end_s", "label")
BOX_COLUMNS = (
    "path", "start_s", "end_s", "label", "low_hz", "high_hz", "source", "row", "negative_of", "reviewed",
)  # fmt: skip
TIME_DECIMALS = 3  # window times are written and matched to the millisecond


class ReviewFileError(ValueError):
    """A review file that is not one (wrong header); names the file."""


@dataclass(frozen=True)
class Candidate:
    """A window offered for review: where it is, which label the model gave it, and how it was picked."""

    path: str
    start_s: float
    end_s: float
    label: str
    score: float
    pick: str = ""
    source_run: str = ""

    @property
    def key(self) -> tuple[str, float, float, str]:
        return window_key(self.path, self.start_s, self.end_s, self.label)


def default_review_file(source: str | Path) -> Path:
    """scores.parquet → scores.review.csv beside it."""
    src = Path(source)
    return src.with_name(f"{src.stem}.review.csv")


def window_key(path: str, start_s: float, end_s: float, label: str) -> tuple[str, float, float, str]:
    return (str(path), round(float(start_s), TIME_DECIMALS), round(float(end_s), TIME_DECIMALS), str(label))


def _line(values: list[object]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


HEADER = _line(list(COLUMNS))


def append_answer(
    review_file: str | Path,
    candidate: Candidate,
    answer: str,
    answered_label: str | None = None,
    reviewer: str = "",
) -> dict[str, object]:
    """Append one answer about `candidate` (creating the file with its header) and return the row written.
    `other` needs `answered_label`; for every other answer it is the candidate's label."""
    if answer not in ANSWERS:
        raise ValueError(f"answer {answer!r}: give one of {', '.join(ANSWERS)}")
    if answer == "other" and not (answered_label or "").strip():
        raise ValueError("answer 'other' needs the label the reviewer heard (answered_label)")
    given = answered_label.strip() if answer == "other" and answered_label else candidate.label
    row = {
        "path": candidate.path,
        "start_s": f"{candidate.start_s:.{TIME_DECIMALS}f}",
        "end_s": f"{candidate.end_s:.{TIME_DECIMALS}f}",
        "label": candidate.label,
        "score": f"{candidate.score:.6g}",
        "answer": answer,
        "answered_label": given,
        "reviewer": reviewer,
        "answered_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "pick": candidate.pick,
        "source_run": candidate.source_run,
    }
    _append(Path(review_file), _line([row[c] for c in COLUMNS]))
    return row


def _append(path: Path, line: bytes) -> None:
    """One locked, appended, fsync'ed write: the header too when the file is new or empty; a newline first
    when the last write was cut short (so the torn fragment stays a line of its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            line = HEADER + line
        elif not _ends_with_newline(path, size):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def read_answers(review_file: str | Path) -> pd.DataFrame:
    """Every well-formed answer line in file order, with its 1-based line number (`row`)."""
    path = Path(review_file)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if not lines:
        return pd.DataFrame(columns=[*COLUMNS, "row"])
    header = next(csv.reader([lines[0]]))
    if tuple(header) != COLUMNS:
        raise ReviewFileError(f"{path}: not a review file (its header is {','.join(header)[:120]})")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = next(csv.reader([line]), [])
        if not line.endswith("\n") or len(values) != len(COLUMNS) or values[5] not in ANSWERS:
            log.warning("%s: line %d skipped: an answer cut short (an interrupted write?)", path, number)
            continue
        rows.append([*values, number])
    df = pd.DataFrame(rows, columns=[*COLUMNS, "row"])
    for c in ("start_s", "end_s", "score"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def read_review(review_file: str | Path) -> pd.DataFrame:
    """The latest answer per (path, start_s, end_s, label) of a review file (`latest_answers`)."""
    out = latest_answers(read_answers(review_file))
    out.attrs["source"] = str(review_file)
    return out


def latest_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """Answers in file order → the latest per (path, start_s, end_s, label): later lines win, `undo`
    retracts the answer before it (a second undo the one before that). Windows whose answers were all
    undone are absent. `attrs`: lines, undone. Latest answers come back unchanged."""
    stacks: dict[tuple, list[int]] = {}
    undone = 0
    for i, r in enumerate(answers[["path", "start_s", "end_s", "label", "answer"]].itertuples(index=False)):
        stack = stacks.setdefault(window_key(r.path, r.start_s, r.end_s, r.label), [])
        if r.answer == "undo":
            if stack:
                stack.pop()
                undone += 1
        else:
            stack.append(i)
    latest = sorted(s[-1] for s in stacks.values() if s)
    out = answers.iloc[latest].reset_index(drop=True)
    out.attrs.update(answers.attrs)
    out.attrs.update(lines=len(answers), undone=undone)
    return out


def review_boxes(review: pd.DataFrame) -> pd.DataFrame:
    """Answers (`read_review`'s latest, or a review file's lines as read by pandas) → a box table: yes → the
    label, other → the label the reviewer gave, no → an explicit negative (label "" and `negative_of` the
    label), unsure → dropped (counted in `attrs["unsure"]`). `reviewed` is True on every row: training
    takes only these windows from the recordings (nobody listened to the rest)."""
    if "row" not in review:  # the lines of a file as pandas read them: line 1 is the header
        review = review.assign(row=np.arange(2, len(review) + 2))
    review = latest_answers(review)
    review["answered_label"] = review["answered_label"].fillna(review["label"])
    df = review.loc[review["answer"] != "unsure"]
    label = np.where(
        df["answer"] == "yes", df["label"], np.where(df["answer"] == "other", df["answered_label"], "")
    )
    boxes = pd.DataFrame(
        {
            "path": df["path"].astype(str).to_numpy(),
            "start_s": df["start_s"].astype(float).to_numpy(),
            "end_s": df["end_s"].astype(float).to_numpy(),
            "label": label.astype(str),
            "low_hz": np.nan,
            "high_hz": np.nan,
            "source": review.attrs.get("source", ""),
            "row": df["row"].astype(int).to_numpy(),
            "negative_of": np.where(df["answer"] == "no", df["label"], None),
            "reviewed": True,  # training: the rest of these recordings is unknown, not background
        },
        columns=list(BOX_COLUMNS),
    )
    boxes.attrs["unsure"] = int((review["answer"] == "unsure").sum())
    return boxes


RAVEN_COLUMNS = (
    "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
    "Begin Path", "File Offset (s)", "Annotation", "Model Label", "Score", "Answer", "Reviewer",
)  # fmt: skip


def write_raven(review: pd.DataFrame, out: str | Path, high_hz: float = 0.0) -> Path:
    """The reviewed windows that hold a sound (yes, other) as one combined Raven selection table: `Begin
    Path` and `File Offset (s)` per row, `Annotation` the label heard. Written to a temp name, then renamed;
    an existing `out` is refused (nothing is overwritten)."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another name (nothing was overwritten)")
    heard = review.loc[review["answer"].isin(["yes", "other"])].sort_values(["path", "start_s"])
    lines = ["\t".join(RAVEN_COLUMNS)]
    for n, r in enumerate(heard.itertuples(index=False), start=1):
        cells = (
            n, "Spectrogram 1", 1, f"{r.start_s:.3f}", f"{r.end_s:.3f}", "0.0", f"{high_hz:.1f}",
            os.path.abspath(r.path), f"{r.start_s:.3f}", r.answered_label, r.label, f"{r.score:.4f}",
            r.answer, r.reviewer,
        )  # fmt: skip
        lines.append("\t".join(map(str, cells)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def with_original(review: pd.DataFrame, boxes: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """The answers plus the data the model was first trained on (`boxes`: a box table of its annotated
    recordings, or one box per whole clip), as one review-format table that training reads like a review
    file: each box becomes a `yes` of its label (a negative row a `no`), `pick` "original". Training then
    takes only these windows: the original's unboxed stretches are not drawn as background."""
    negative = boxes["negative_of"].fillna("") if "negative_of" in boxes else pd.Series("", boxes.index)
    no = negative != ""
    rows = pd.DataFrame(
        {
            "path": boxes["path"].astype(str),
            "start_s": boxes["start_s"].astype(float),
            "end_s": boxes["end_s"].astype(float),
            "label": np.where(no, negative, boxes["label"]),
            "score": np.nan,
            "answer": np.where(no, "no", "yes"),
            "answered_label": np.where(no, negative, boxes["label"]),
            "reviewer": "",
            "answered_utc": "",
            "pick": "original",
            "source_run": source,
        }
    )
    return pd.concat([rows, review[list(COLUMNS)]], ignore_index=True)
