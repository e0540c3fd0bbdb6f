"""Where scores go: a directory of parts, each complete the moment it appears, so a killed job loses at most
the part it was writing and `--resume` never duplicates or loses a row.

    OUT/                       (e.g. scores.parquet/)
      _earshot_score.json      what made the rows (model, revision, format, windows): resume checks it;
                               and every name the job wrote (`written`): all --overwrite may delete
      part-00000.parquet       committed parts; readers (pyarrow, pandas, DuckDB, Spark) read the folder
      .part-00003.parquet.tmp  the part being written (never read; removed on resume)
    OUT.windows/               (e.g. scores.windows.parquet/) per-window rows, same part numbers

Commit order: close and fsync both temp files, rename the windows part, then the file part. The file part is
the commit record: a windows part without its file part (a kill between the two renames) is deleted on
resume, and its files are scored again.
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

from learner.modeldir import write_json
from learner.score.ownership import META, check_resumable, is_meta_temp, read_meta, remove_owned, written
from learner.score.paths import original_path, stored_path
from learner.score.writers import WRITERS

KEY_COLUMNS = ("path", "file_size", "file_mtime_ns", "error")
_PART = re.compile(r"^part-(\d{5,})\.(\w+)$")


def _part_index(p: Path) -> int | None:
    """The number of a committed part of a known format (`part-00003.parquet` → 3), else None."""
    m = _PART.match(p.name)
    return int(m.group(1)) if m and m.group(2) in WRITERS else None


def windows_output(out: str | Path) -> Path:
    """scores.parquet → scores.windows.parquet; results → results.windows."""
    out = Path(out)
    if out.suffix.lower() in {f".{f}" for f in WRITERS}:
        return out.with_name(f"{out.stem}.windows{out.suffix}")
    return out.with_name(out.name + ".windows")


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
    return RuntimeError(f"{out}: no space left on the device{where}; the parts already committed are kept: "
                        "free some space and run again with resume=True")


def read_part(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One committed part of any format, as Arrow (CSV/JSONL nested columns come back as JSON text / lists)."""
    return WRITERS[path.suffix[1:]].read(path, columns)


def read_results(out: str | Path, windows: bool = False) -> pa.Table:
    """All committed rows of a scoring output (files, or with `windows=True` the per-window rows)."""
    folder = windows_output(out) if windows else Path(out)
    parts = sorted(p for p in folder.iterdir() if _part_index(p) is not None)
    tables = [read_part(p) for p in parts]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


class PartStore:
    """Streams rows into numbered parts under `out` (and `windows_output(out)`); see the module docstring."""

    def __init__(self, out: str | Path, fmt: str, file_schema: pa.Schema, window_schema: pa.Schema | None,
                 part_rows: int = 2048, part_seconds: float = 60.0) -> None:
        if fmt not in WRITERS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(WRITERS)}")
        self.out, self.fmt = Path(out), fmt
        self.wout = windows_output(out) if window_schema is not None else None
        self.file_schema, self.window_schema = file_schema, window_schema
        self.part_rows, self.part_seconds = max(1, part_rows), part_seconds
        self.next_index = 0
        self.committed_rows = 0
        self._cur: tuple[_PartWriter, _PartWriter | None] | None = None
        self._meta: dict[str, Any] = {}
        self._written = written(None)  # names this job created, saved in the metadata (see `open`)
        self._opened = 0.0

    # --- opening -------------------------------------------------------------------------------------

    def open(self, meta: dict[str, Any], resume: bool = False, overwrite: bool = False) -> dict[str, tuple[int, int, bool]]:
        """Prepare the folder. Returns what is already scored: path → (size, mtime_ns, had_error).

        `overwrite` deletes only what the old metadata lists (`learner.score.ownership`); `resume`
        continues only an earshot output; anything else is refused and left as it is."""
        meta = json.loads(json.dumps(meta))  # as it will read back (tuples become lists)
        wpath = windows_output(self.out)
        exists = [f for f in (self.out, wpath) if f.exists() or f.is_symlink()]
        if exists and overwrite:
            remove_owned(self.out, wpath)
        elif exists and not resume:
            raise FileExistsError(f"{exists[0]} already exists; pass resume=True to continue it or overwrite=True to replace it")
        elif exists:
            check_resumable(self.out, wpath)
        self._written = written(read_meta(self.out)) if exists and resume else written(None)
        done = self._recover(meta) if exists and resume else {}
        self.out.mkdir(parents=True, exist_ok=True)
        if self.wout:
            self.wout.mkdir(parents=True, exist_ok=True)
        self._meta = meta
        self._save_meta()
        return done

    def _save_meta(self) -> None:
        write_json(self.out / META, {**self._meta, "written": {k: sorted(v) for k, v in self._written.items()}})

    def claim(self, *names: str, windows: bool = False) -> None:
        """List `names` (in OUT, or OUT.windows) as written by this job, before creating them."""
        mine = self._written["windows" if windows else "files"]
        if not set(names) <= mine:
            mine.update(names)
            self._save_meta()

    def _parts(self, folder: Path) -> dict[int, Path]:
        return {i: p for p in folder.iterdir() if (i := _part_index(p)) is not None} if folder.is_dir() else {}

    def _recover(self, meta: dict[str, Any]) -> dict[str, tuple[int, int, bool]]:
        old_meta = self.out / META
        if old_meta.is_file():
            old = json.loads(old_meta.read_text())
            for key in ("format", "model_id", "model_revision", "windows", "threshold", "top_k"):
                if old.get(key) != meta.get(key):
                    raise ValueError(f"{self.out} was made with {key}={old.get(key)!r}, this run has {meta.get(key)!r}; "
                                     "resume with the same settings or pass overwrite=True")
            for key, what in (("backend", "backend"), ("weights_sha256", "model weights"), ("classes", "classes")):
                if key in old and old[key] != meta.get(key):  # outputs of older versions do not record them
                    said = (f"{old[key]!r}, this run has {meta.get(key)!r}" if key != "weights_sha256" else
                            f"sha256 {str(old[key])[:12]}…, this run's are {str(meta.get(key))[:12]}…")
                    raise ValueError(f"{self.out} was made with other {what} ({key}={said}); resume with the same "
                                     "model and backend, or pass overwrite=True")
        wfolder = windows_output(self.out)
        for folder, key in ((self.out, "files"), (wfolder, "windows")):
            if folder.is_dir():
                for p in folder.iterdir():
                    if _is_temp(p) and p.name in self._written[key]:  # what a killed run was writing
                        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    elif is_meta_temp(p):
                        p.unlink()
        parts = self._parts(self.out)
        if self.wout is None and self._parts(wfolder):
            raise ValueError(f"{self.out} has per-window rows in {wfolder}; resume with the same windows= or pass overwrite=True")
        legacy = not any(self._written.values())  # an output of an earshot that did not list its files
        for i, p in self._parts(wfolder).items():
            if i not in parts and (legacy or p.name in self._written["windows"]):
                p.unlink()  # killed between the two renames: its files are not in OUT, so they are scored again
        done: dict[str, tuple[int, int, bool]] = {}
        for p in parts.values():
            try:
                t = read_part(p, list(KEY_COLUMNS) + ["path_hex"])
            except (pa.ArrowInvalid, KeyError):  # a part written before `path_hex` existed
                t = read_part(p, list(KEY_COLUMNS))
            for path, size, mtime, err, raw in zip(*(t[c].to_pylist() for c in KEY_COLUMNS), _hex_column(t)):
                done[original_path(path, raw)] = (int(size), int(mtime), err is not None)
            self.committed_rows += t.num_rows
        self.next_index = max(parts, default=-1) + 1
        return done

    def drop(self, paths: set[str]) -> int:
        """Remove the rows of `paths` (files changed since, or errors to retry) from committed parts."""
        if not paths:
            return 0
        import pyarrow.compute as pc

        dropped = 0
        wparts = self._parts(windows_output(self.out))
        shown = pa.array(sorted({stored_path(p) for p in paths}), pa.string())  # window rows carry `path` only
        for i, p in sorted(self._parts(self.out).items()):
            t = read_part(p)
            keep = pa.array([original_path(a, h) not in paths for a, h in zip(t["path"].to_pylist(), _hex_column(t))])
            n = t.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
            if not n:
                continue
            if i in wparts:  # windows first: a kill in between leaves stale file rows, which resume drops again
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
        self.claim(tmp.name, windows=path.parent != self.out)
        WRITERS[self.fmt].dump(tmp, table)
        _fsync(tmp)
        os.replace(tmp, path)

    # --- writing -------------------------------------------------------------------------------------

    def add(self, files: pa.Table, windows: pa.Table | None = None) -> None:
        """Append one batch (one parquet row group); commits the part when it is full or old enough."""
        if self._cur is None:
            name = f"part-{self.next_index:05d}.{self.fmt}"
            self.claim(name, f".{name}.tmp")
            if self.wout:
                self.claim(name, f".{name}.tmp", windows=True)
            fw = _PartWriter(self.out / f".{name}.tmp", self.file_schema, self.fmt)
            ww = _PartWriter(self.wout / f".{name}.tmp", self.window_schema, self.fmt) if self.wout else None
            self._cur, self._opened = (fw, ww), time.monotonic()
        fw, ww = self._cur
        fw.write(files)
        if ww is not None and windows is not None:
            ww.write(windows)
        if fw.rows >= self.part_rows or time.monotonic() - self._opened >= self.part_seconds:
            self.commit()

    def commit(self) -> None:
        """Close the current part and make it visible (windows part first, then the file part)."""
        if self._cur is None:
            return
        fw, ww = self._cur
        name = f"part-{self.next_index:05d}.{self.fmt}"
        try:
            fw.close()
            if ww is not None:
                ww.close()
        except BaseException:  # a full disk at the last write: no temp part may stay behind
            self.abandon()
            raise
        self._cur = None
        if fw.rows == 0:
            fw.path.unlink()
            if ww is not None:
                ww.path.unlink()
            return
        if ww is not None:
            os.replace(ww.path, self.wout / name)
        os.replace(fw.path, self.out / name)
        for folder in (self.out, self.wout):
            if folder is not None:
                _fsync(folder)
        self.next_index += 1
        self.committed_rows += fw.rows

    def abandon(self) -> None:
        """Drop the part in flight (after an error): its temp files go, committed parts stay."""
        if self._cur is not None:
            for w in self._cur:
                if w is not None:
                    try:
                        w._w.close()
                    except Exception:
                        pass
                    w.path.unlink(missing_ok=True)
            self._cur = None
