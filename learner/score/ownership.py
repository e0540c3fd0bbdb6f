"""What a scoring output may delete: only what its own metadata file says it wrote.

`_earshot_score.json` keeps `written`: the names the job created in OUT (`files`) and in the side folders
OUT.windows and OUT.events (`windows`, `events`): parts, the temp files they are written as, Ray staging
folders. A name is listed *before* the file is created, so a kill at any moment leaves nothing unlisted.
`--overwrite` empties OUT only
when every entry in it is listed (or is the metadata file and its own temp copies) and `--resume` only
continues a folder with that metadata; anything else (a user's file at OUT, a folder that happens to be
called `part-00000.parquet`, a symlink) is refused with one line that names it, and nothing is deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

META = "_earshot_score.json"
FOLDERS = ("files", "windows", "events")  # keys of meta["written"]: OUT, OUT.windows, OUT.events


class NotOurOutputError(FileExistsError):
    """OUT (or a side folder, OUT.windows / OUT.events) holds something this job cannot prove it wrote;
    nothing was deleted."""


def is_meta_temp(p: Path) -> bool:
    """A temp copy of the metadata file (`learner.folder.write_json`): what a kill or a full disk leaves."""
    return p.name.startswith(f".{META}.") and p.name.endswith(".tmp") and p.is_file() and not p.is_symlink()


def read_meta(out: Path) -> dict[str, Any] | None:
    """OUT's metadata, or None when OUT has none (not an earshot output, or not one yet)."""
    path = out / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return meta if isinstance(meta, dict) else None


def written(meta: dict[str, Any] | None) -> dict[str, set[str]]:
    """{"files": names in OUT, "windows": in OUT.windows, "events": in OUT.events} the job wrote (empty for
    older
    outputs)."""
    listed = (meta or {}).get("written") or {}
    return {k: set(listed.get(k) or []) for k in FOLDERS}


def _foreign(folder: Path, listed: set[str]) -> list[Path]:
    """Entries of `folder` the job did not write: unlisted, or a link, or a folder where it wrote a file."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.name == META and p.is_file() and not p.is_symlink() or is_meta_temp(p):
            continue
        ours = p.name in listed and not p.is_symlink() and (p.is_file() or p.name.startswith(".ray-staging-"))
        if not ours:
            out.append(p)
    return out


def _refuse(what: Path, why: str) -> NotOurOutputError:
    return NotOurOutputError(f"{what}: {why}; refusing to replace it (nothing was deleted)")


def check_owned(out: Path, sides: dict[str, Path]) -> dict[str, set[str]]:
    """Raise `NotOurOutputError` unless OUT (and its side folders {"windows": OUT.windows, ...}, when present)
    hold only what OUT's metadata lists; returns the listed names."""
    for f in (out, *sides.values()):
        if f.is_symlink():
            raise _refuse(f, "is a symbolic link, not an earshot scoring output folder")
        if f.exists() and not f.is_dir():
            raise _refuse(f, "is a file, not an earshot scoring output folder")
    meta = read_meta(out) if out.is_dir() else None
    names = written(meta)
    if out.is_dir() and any(out.iterdir()) and meta is None:
        raise _refuse(out, f"not an earshot scoring output (no readable {META})")
    for wout in sides.values():
        if wout.is_dir() and any(wout.iterdir()) and meta is None:
            raise _refuse(wout, f"holds files but {out} has no {META} that lists them")
    for key, folder in (("files", out), *sides.items()):
        if folder.is_dir():
            foreign = _foreign(folder, names[key])
            if foreign:
                more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
                raise _refuse(
                    folder, f"holds {foreign[0].name!r}{more}, which this scoring output did not write"
                )
    return names


def remove_owned(out: Path, sides: dict[str, Path]) -> None:
    """`--overwrite`: delete what OUT's metadata says the job wrote, after checking there is nothing else."""
    names = check_owned(out, sides)
    for key, folder in (*sides.items(), ("files", out)):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name in names[key] and p.is_dir():
                shutil.rmtree(p)
            elif p.name in names[key] or is_meta_temp(p):
                p.unlink()
        (folder / META).unlink(missing_ok=True)


def check_resumable(out: Path, sides: dict[str, Path]) -> None:
    """`--resume` continues only an earshot output (an empty folder is fine: there is nothing to mix with)."""
    for f in (out, *sides.values()):
        if f.is_symlink() and not f.is_dir():
            raise _refuse(f, "is a symbolic link that does not lead to a folder")
        if f.exists() and not f.is_dir():
            raise NotOurOutputError(
                f"{f}: is a file, not an earshot scoring output folder; refusing to resume into it"
            )
    meta = read_meta(out) if out.is_dir() else None
    if out.is_dir() and any(out.iterdir()) and meta is None:
        raise NotOurOutputError(
            f"{out}: not an earshot scoring output (no readable {META}); refusing to resume into it"
        )
    for side in sides.values():  # a user's parts beside a missing OUT must never be taken for ours
        if side.is_dir() and any(side.iterdir()) and meta is None:
            raise NotOurOutputError(
                f"{side}: holds files but {out} has no {META} that lists them; refusing to resume into it "
                "(nothing was deleted)"
            )
