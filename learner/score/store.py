"""Where scores go: a directory of parts, each complete the moment it appears, so a killed job loses at most
the part it was writing and `--resume` never duplicates or loses a row.

    OUT/                       (e.g. scores.parquet/)
      _earshot_score.json      what made the rows (model, revision, format, windows): resume checks it;
                               and every name the job wrote (`written`): all --overwrite may delete
      part-00000.parquet       committed parts; readers (pyarrow, pandas, DuckDB, Spark) read the folder
      .part-00003.parquet.tmp  the part being written (never read; removed on resume)
    OUT.windows/               (e.g. scores.windows.parquet/) per-window rows, same part numbers
    OUT.events/                (e.g. scores.events.parquet/) timestamped events, same part numbers

Commit order: close and fsync the temp files, rename the windows and events parts, then the file part. The
file part is the commit record: a windows or events part without its file part (a kill between the renames)
is deleted on resume, and its files are scored again.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from learner.folder import write_json
from learner.score.ownership import (
    META,
    NotOurOutputError,
    check_resumable,
    is_meta_temp,
    read_meta,
    remove_owned,
    written,
)
from learner.score.paths import original_path, stored_path
from learner.score.writers import WRITERS

KEY_COLUMNS = ("path", "file_size", "file_mtime_ns", "error")
_PART = re.compile(r"^part-(\d{5,})\.(\w+)$")


def _part_index(p: Path) -> int | None:
    """The number of a committed part of a known format (`part-00003.parquet` → 3), else None."""
    m = _PART.match(p.name)
    return int(m.group(1)) if m and m.group(2) in WRITERS else None


SAME_SETTINGS = ("format", "model_id", "model_revision", "windows", "threshold", "top_k", "start_times")
SIDES = ("windows", "events")  # tables beside the file rows, each in its own folder of parts


def side_output(out: str | Path, side: str) -> Path:
    """scores.parquet → scores.windows.parquet / scores.events.parquet; results → results.windows."""
    out = Path(out)
    if out.suffix.lower() in {f".{f}" for f in WRITERS}:
        return out.with_name(f"{out.stem}.{side}{out.suffix}")
    return out.with_name(f"{out.name}.{side}")


def windows_output(out: str | Path) -> Path:
    return side_output(out, "windows")


def events_output(out: str | Path) -> Path:
    return side_output(out, "events")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_temp(p: Path) -> bool:
    """A part being written, or a Ray engine's staging folder: what a killed run leaves behind."""
    return (p.name.startswith(".part-") and p.name.endswith(".tmp")) or p.name.startswith(".ray-staging-")


class _PartWriter:
    """One temp part file of one format (`WRITERS[fmt]`), written a batch (parquet row group) at a time."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self._w = WRITERS[fmt](path, schema)

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._w.write(table.select(self.schema.names).cast(self.schema))
        self.rows += table.num_rows

    def close(self) -> None:
        self._w.close()
        _fsync(self.path)


def _hex_column(t: pa.Table) -> list[str | None]:
    """`path_hex` of a part (parts written before it existed have none: all names were UTF-8 there)."""
    return t["path_hex"].to_pylist() if "path_hex" in t.column_names else [None] * t.num_rows


def out_of_space(out: Path | str, e: OSError) -> RuntimeError | None:
    """The one-line error for a full disk (or quota) while writing `out`; None for other OS errors."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = f" writing {e.filename}" if e.filename else ""
    return RuntimeError(
        f"{out}: no space left on the device{where}; the parts already committed are kept: "
        "free some space and run again with resume=True"
    )


def read_part(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One committed part of any format, as Arrow (CSV/JSONL nested columns: JSON text / lists)."""
    return WRITERS[path.suffix[1:]].read(path, columns)


def read_results(out: str | Path, windows: bool = False, events: bool = False) -> pa.Table:
    """All committed rows of a scoring output (files, or with `windows=True` the per-window rows, with
    `events=True` the events)."""
    folder = windows_output(out) if windows else events_output(out) if events else Path(out)
    parts = sorted(p for p in folder.iterdir() if _part_index(p) is not None)
    tables = [read_part(p) for p in parts]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


class PartStore:
    """Streams rows into numbered parts under `out` (+ `windows_output(out)`, `events_output(out)`)."""

    def __init__(
        self,
        out: str | Path,
        fmt: str,
        file_schema: pa.Schema,
        window_schema: pa.Schema | None,
        part_rows: int = 2048,
        part_seconds: float = 60.0,
        event_schema: pa.Schema | None = None,
    ) -> None:
        if fmt not in WRITERS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(WRITERS)}")
        self.out, self.fmt = Path(out), fmt
        self.wout = windows_output(out) if window_schema is not None else None
        self.file_schema, self.window_schema = file_schema, window_schema
        self.sides = {
            side: (side_output(out, side), schema)
            for side, schema in (("windows", window_schema), ("events", event_schema))
            if schema is not None
        }
        self.part_rows, self.part_seconds = max(1, part_rows), part_seconds
        self.next_index = 0
        self.committed_rows = 0
        self._cur: tuple[_PartWriter, dict[str, _PartWriter]] | None = None
        self._meta: dict[str, Any] = {}
        self._written = written(None)  # names this job created, saved in the metadata (see `open`)
        self._opened = 0.0

    # --- opening -------------------------------------------------------------------------------------

    def open(
        self, meta: dict[str, Any], resume: bool = False, overwrite: bool = False
    ) -> dict[str, tuple[int, int, bool]]:
        """Prepare the folder. Returns what is already scored: path → (size, mtime_ns, had_error).

        `overwrite` deletes only what the old metadata lists (`learner.score.ownership`); `resume`
        continues only an earshot output; anything else is refused and left as it is."""
        meta = json.loads(json.dumps(meta))  # as it will read back (tuples become lists)
        side_folders = {side: side_output(self.out, side) for side in SIDES}
        exists = [f for f in (self.out, *side_folders.values()) if f.exists() or f.is_symlink()]
        if exists and overwrite:
            remove_owned(self.out, side_folders)
        elif exists and not resume:
            raise FileExistsError(
                f"{exists[0]} already exists; pass resume=True to continue it or overwrite=True to replace it"
            )
        elif exists:
            check_resumable(self.out, side_folders)
        self._written = written(read_meta(self.out)) if exists and resume else written(None)
        done = self._recover(meta) if exists and resume else {}
        self.out.mkdir(parents=True, exist_ok=True)
        for folder, _ in self.sides.values():
            folder.mkdir(parents=True, exist_ok=True)
        self._meta = meta
        self._save_meta()
        return done

    def _save_meta(self) -> None:
        write_json(
            self.out / META, {**self._meta, "written": {k: sorted(v) for k, v in self._written.items()}}
        )

    def claim(self, *names: str, side: str = "files") -> None:
        """List `names` (in OUT, or in the side folder `side`: "windows", "events") as written by this job,
        before creating them."""
        mine = self._written[side]
        if not set(names) <= mine:
            mine.update(names)
            self._save_meta()

    def _parts(self, folder: Path) -> dict[int, Path]:
        return (
            {i: p for p in folder.iterdir() if (i := _part_index(p)) is not None} if folder.is_dir() else {}
        )

    def _refuse_unlisted(self, folders: tuple[tuple[str, Path], ...]) -> None:
        """A part the metadata does not list is not provably this output's: never read, replaced or
        deleted; resuming is refused in one line naming it."""
        for key, folder in folders:
            stray = sorted(p for p in self._parts(folder).values() if p.name not in self._written[key])
            if stray:
                raise NotOurOutputError(
                    f"{stray[0]}: a part this scoring output did not write; refusing to resume into "
                    f"{folder} (nothing was deleted)"
                )

    def _recover(self, meta: dict[str, Any]) -> dict[str, tuple[int, int, bool]]:
        old_meta = self.out / META
        if old_meta.is_file():
            old = json.loads(old_meta.read_text())
            for key in SAME_SETTINGS:
                if old.get(key) != meta.get(key):
                    raise ValueError(
                        f"{self.out} was made with {key}={old.get(key)!r}, this run has {meta.get(key)!r}; "
                        "resume with the same settings or pass overwrite=True"
                    )
            for key, what in (
                ("backend", "backend"),
                ("weights_sha256", "model weights"),
                ("classes", "classes"),
                ("events", "event settings"),
                ("kind", "output kind"),
                ("dim", "vector size"),
            ):
                if key in old and old[key] != meta.get(key):  # outputs of older versions do not record them
                    said = (
                        f"{old[key]!r}, this run has {meta.get(key)!r}"
                        if key != "weights_sha256"
                        else f"sha256 {str(old[key])[:12]}…, this run's are {str(meta.get(key))[:12]}…"
                    )
                    raise ValueError(
                        f"{self.out} was made with other {what} ({key}={said}); resume with the same "
                        "model and backend, or pass overwrite=True"
                    )
        folders = (("files", self.out), *((s, side_output(self.out, s)) for s in SIDES))
        legacy = not any(self._written.values())  # an output of an earshot that did not list its files
        if not legacy:
            self._refuse_unlisted(folders)
        for key, folder in folders:
            if folder.is_dir():
                for p in folder.iterdir():
                    if _is_temp(p) and p.name in self._written[key]:  # what a killed run was writing
                        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    elif is_meta_temp(p):
                        p.unlink()
        parts = self._parts(self.out)
        for side in SIDES:
            sfolder = side_output(self.out, side)
            if side not in self.sides and self._parts(sfolder):
                raise ValueError(
                    f"{self.out} has {side} rows in {sfolder}; resume with the same windows= or pass "
                    "overwrite=True"
                )
            for i, p in self._parts(sfolder).items():
                if i not in parts and (legacy or p.name in self._written[side]):
                    # killed between the renames: its files are not in OUT, so they are scored again
                    p.unlink()
        done: dict[str, tuple[int, int, bool]] = {}
        for p in parts.values():
            t = self._read_keys(p)
            for path, size, mtime, err, raw in zip(*(t[c].to_pylist() for c in KEY_COLUMNS), _hex_column(t)):
                done[original_path(path, raw)] = (int(size), int(mtime), err is not None)
            self.committed_rows += t.num_rows
        self.next_index = max(parts, default=-1) + 1
        return done

    def _read_keys(self, p: Path) -> pa.Table:
        """The resume keys of a committed part; a file that is no part of ours is one line naming it."""
        try:
            return read_part(p, list(KEY_COLUMNS) + ["path_hex"])
        except (pa.ArrowInvalid, KeyError):  # a part written before `path_hex` existed
            pass
        try:
            return read_part(p, list(KEY_COLUMNS))
        except (pa.ArrowException, KeyError, OSError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"{p}: not a part of these scores ({reason}); move it out of {self.out} or pass "
                "overwrite=True"
            ) from None

    def drop(self, paths: set[str]) -> int:
        """Remove the rows of `paths` (files changed since, or errors to retry) from committed parts."""
        if not paths:
            return 0
        import pyarrow.compute as pc

        dropped = 0
        sparts = [self._parts(side_output(self.out, s)) for s in SIDES]
        shown = pa.array(sorted({stored_path(p) for p in paths}), pa.string())  # side rows carry `path` only
        for i, p in sorted(self._parts(self.out).items()):
            t = read_part(p)
            keep = pa.array(
                [original_path(a, h) not in paths for a, h in zip(t["path"].to_pylist(), _hex_column(t))]
            )
            n = t.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
            if not n:
                continue
            # sides first: a kill in between leaves stale file rows, which resume drops again
            for wparts in sparts:
                if i in wparts:
                    wt = read_part(wparts[i])
                    self._rewrite(wparts[i], wt.filter(pc.invert(pc.is_in(wt["path"], shown))))
            self._rewrite(p, t.filter(keep))
            dropped += n
        self.committed_rows -= dropped
        return dropped

    def _rewrite(self, path: Path, table: pa.Table) -> None:
        if table.num_rows == 0:
            path.unlink()
            return
        tmp = path.with_name(f".{path.name}.tmp")
        self.claim(tmp.name, side=next((s for s, (f, _) in self.sides.items() if f == path.parent), "files"))
        WRITERS[self.fmt].dump(tmp, table)
        _fsync(tmp)
        os.replace(tmp, path)

    # --- writing -------------------------------------------------------------------------------------

    def add(self, files: pa.Table, windows: pa.Table | None = None, events: pa.Table | None = None) -> None:
        """Append one batch (one parquet row group); commits the part when it is full or old enough."""
        if self._cur is None:
            name = f"part-{self.next_index:05d}.{self.fmt}"
            self.claim(name, f".{name}.tmp")
            for side in self.sides:
                self.claim(name, f".{name}.tmp", side=side)
            fw = _PartWriter(self.out / f".{name}.tmp", self.file_schema, self.fmt)
            sides = {
                side: _PartWriter(folder / f".{name}.tmp", schema, self.fmt)
                for side, (folder, schema) in self.sides.items()
            }
            self._cur, self._opened = (fw, sides), time.monotonic()
        fw, sides = self._cur
        fw.write(files)
        for side, table in (("windows", windows), ("events", events)):
            if side in sides and table is not None:
                sides[side].write(table)
        if fw.rows >= self.part_rows or time.monotonic() - self._opened >= self.part_seconds:
            self.commit()

    def tick(self) -> None:
        """Commit the part in flight once it is `part_seconds` old (called while a long file streams, when
        no rows arrive to trigger it)."""
        if self._cur is not None and time.monotonic() - self._opened >= self.part_seconds:
            self.commit()

    def commit(self) -> None:
        """Close the current part and make it visible (windows and events parts first, then the file part)."""
        if self._cur is None:
            return
        fw, sides = self._cur
        name = f"part-{self.next_index:05d}.{self.fmt}"
        try:
            for w in (fw, *sides.values()):
                w.close()
        except BaseException:  # a full disk at the last write: no temp part may stay behind
            self.abandon()
            raise
        self._cur = None
        if fw.rows == 0:
            for w in (fw, *sides.values()):
                w.path.unlink()
            return
        for side, w in sides.items():
            os.replace(w.path, self.sides[side][0] / name)
        os.replace(fw.path, self.out / name)
        for folder in (self.out, *(f for f, _ in self.sides.values())):
            _fsync(folder)
        self.next_index += 1
        self.committed_rows += fw.rows

    def abandon(self) -> None:
        """Drop the part in flight (after an error): its temp files go, committed parts stay."""
        if self._cur is not None:
            fw, sides = self._cur
            for w in (fw, *sides.values()):
                try:
                    w._w.close()
                except Exception:
                    pass
                w.path.unlink(missing_ok=True)
            self._cur = None
