"""What to score: folders (recursive), globs, manifests or single files → `FileRef`s, absolute and
deduplicated,
plus what the walk passed over (reported, never silent)."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from learner.audio import AUDIO_EXTENSIONS

MANIFEST_SUFFIXES = (".csv", ".tsv", ".txt", ".lst")


class FileRef(NamedTuple):
    """A file to score and its resume key (size and mtime; -1 when it cannot be stat'ed)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    """What the input named: files to score, plus what the walk passed over (reported, never silent)."""

    files: list[FileRef] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # walked files without an audio extension
    # directory links back into a folder already walked
    links_skipped: list[str] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)
    duplicates: int = 0


def _ref(path: str) -> FileRef:
    try:
        st = os.stat(path)
        return FileRef(path, int(st.st_size), int(st.st_mtime_ns))
    except OSError:
        return FileRef(path, -1, -1)


def _walk(root: str, found: list[str], d: Discovery, seen: set[tuple[int, int]]) -> None:
    """Depth first in name order; follows links, skips hidden names and any folder met before (loops)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                d.links_skipped.append(folder)
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            d.unreadable_dirs.append(f"{folder} ({e.strerror or e})")
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # follows links; a broken link is not a dir
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(e.path)
            elif Path(e.name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append(e.path)
            else:
                d.ignored.append(e.path)
        stack.extend(reversed(subdirs))


def read_manifest(path: Path) -> list[str]:
    """A CSV/TSV with a `path` column, or a plain list (one path a line, # comments); relative to its
    folder."""
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not rows.fieldnames or "path" not in rows.fieldnames:
                raise ValueError(f"{path}: a manifest needs a 'path' column (found {rows.fieldnames})")
            names = [r["path"] for r in rows if (r.get("path") or "").strip()]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        names = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
    return [n if os.path.isabs(n) else str(path.parent / n) for n in names]


def discover(inputs: list[str | Path]) -> Discovery:
    """Folders (recursive), globs (`**` recursive), manifests or single files → FileRefs, absolute,
    deduplicated.

    Walked folders and globs keep audio extensions only (others are listed in `ignored`); every entry of
    a manifest and every file named directly is scored, so a bad one becomes an error row.
    """
    d = Discovery()
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for item in map(str, inputs):
        p = Path(item)
        if p.is_dir():
            _walk(item, found, d, seen)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            found += read_manifest(p)
        elif p.exists() or p.is_symlink():
            found.append(item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{item}: the pattern matches nothing")
            for m in matches:
                if os.path.isdir(m):
                    _walk(m, found, d, seen)
                elif Path(m).suffix.lower() in AUDIO_EXTENSIONS:
                    found.append(m)
                else:
                    d.ignored.append(m)
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or manifest")
    uniq = list(dict.fromkeys(os.path.abspath(f) for f in found))
    d.duplicates = len(found) - len(uniq)
    d.files = [_ref(f) for f in uniq]
    return d
