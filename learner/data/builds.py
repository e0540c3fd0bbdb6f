"""Build a generated dataset folder once, safely: built in a temporary sibling folder and renamed into place,
so concurrent processes (two tests, two ranks of a distributed run) never see half a set, and a folder that
is not a build of ours is never deleted."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def build_once(
    out: Path, is_complete: Callable[[Path], bool], build: Callable[[Path], object], marker: str, what: str
) -> Path:
    """`out/manifest.csv`, calling `build(tmp)` first unless `is_complete(out)`.

    `marker` is the file a build of ours writes (its version and parameters): a folder holding it (a stale
    build) or an empty folder is replaced; anything else at `out` is left alone and reported.
    """
    if is_complete(out):
        return out / "manifest.csv"
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
        if not is_complete(out):  # another process may have finished meanwhile
            if out.exists() and ((out / marker).exists() or not any(out.iterdir())):
                shutil.rmtree(out, ignore_errors=True)  # our own stale build, or an empty folder
            try:
                os.rename(tmp, out)
            except OSError:  # another process renamed its build first
                pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(out):
        raise RuntimeError(f"{out} exists but holds no {what} build; move it away and try again")
    return out / "manifest.csv"
