"""The folder a training run writes: a new one, or one it can prove an earlier run wrote.

A run marks its folder with `.earshot-train.json` before writing anything else, so even a killed run leaves
a folder that is provably earshot's. An existing folder is written only with `overwrite` and only when it is
marked (or holds an earshot config.json from before the marker) and holds nothing but training outputs; its
old files are removed first, so no stale export (model.onnx, model.int8.onnx and their records in
config.json) outlives the weights it was made from, and nothing is written through a link. Anything else is
refused with one line naming the folder, and nothing is touched (the same rule as `learner.score.ownership`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from learner.folder import CARD, CONFIG, METRICS, PICKLE, WEIGHTS, write_json

MARKER = ".earshot-train.json"
# What training, the card and ONNX export write into a model folder: all an --overwrite may delete.
TRAIN_OUTPUTS = frozenset(
    {
        MARKER,
        CONFIG,
        WEIGHTS,
        METRICS,
        PICKLE,
        CARD,
        "history.csv",
        "curves.png",
        "confusion_matrix.png",
        "per_class.csv",
        "pr_curves.png",
        "model.onnx",
        "model.int8.onnx",
        ".checkpoints",
    }
)
_TEMP = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")  # learner.folder.write_json's temp files (a kill)


class TrainOutputError(FileExistsError):
    """--out names something training cannot prove it wrote; nothing was changed."""


def _is_output(p: Path) -> bool:
    """An entry training wrote: a known name (or its temp file), a regular file, never a link."""
    temp = _TEMP.match(p.name)
    if p.name not in TRAIN_OUTPUTS and not (temp and temp["name"] in TRAIN_OUTPUTS):
        return False
    if p.is_symlink():
        return False
    return p.is_dir() if p.name == ".checkpoints" else p.is_file()


def _marked(out: Path) -> bool:
    """True if `out` carries the marker, or an earshot config.json (a model trained before the marker)."""
    marker, config = out / MARKER, out / CONFIG
    if marker.is_file() and not marker.is_symlink():
        return True
    if not config.is_file() or config.is_symlink():
        return False
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(cfg, dict) and {"earshot_version", "arch", "classes", "audio"} <= cfg.keys()


def claim_output(out: Path, overwrite: bool = False) -> bool:
    """Make `out` this run's folder (marked, empty but for the marker); True when the run created it.

    Refuses (TrainOutputError, one line) a link, a file, a folder training did not write, and — without
    `overwrite` — an earlier model."""
    out = Path(out)
    if out.is_symlink():
        raise TrainOutputError(f"{out}: is a symbolic link; refusing to write a model through it")
    if out.exists() and not out.is_dir():
        raise TrainOutputError(f"{out}: is a file, not a model folder; refusing to replace it")
    created = not out.exists()
    entries = sorted(out.iterdir()) if not created else []
    if [p.name for p in entries] == [MARKER] and _is_output(entries[0]):
        entries = []  # a run that wrote nothing yet (this one, handing over to another train() call): reuse
    if entries:
        if not _marked(out):
            raise TrainOutputError(
                f"{out}: holds files but is not a model folder earshot trained (no {MARKER}); refusing to "
                "write into it (nothing was changed): give another out="
            )
        if not overwrite:
            raise TrainOutputError(
                f"{out}: already holds a trained model; pass overwrite=True to replace it, or another out="
            )
        foreign = [p for p in entries if not _is_output(p)]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise TrainOutputError(
                f"{out}: holds {foreign[0].name!r}{more}, which training did not write; refusing to "
                "replace the folder (nothing was deleted)"
            )
        for p in entries:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"written_by": "earshot train"})
    return created


def remove_unfinished(out: Path, remove_folder: bool) -> None:
    """After a failed run: remove what it wrote (only training outputs), then the folder if the run created it
    and nothing else is left, so a failure leaves no partial model folder."""
    out = Path(out)
    if out.is_symlink() or not out.is_dir():
        return
    for p in out.iterdir():
        if _is_output(p):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if not remove_folder:
        return
    try:
        out.rmdir()
    except OSError:
        pass  # something else appeared in it: left as it is


@contextmanager
def owned_output(out: Path, overwrite: bool, writes: bool = True) -> Iterator[Path]:
    """`claim_output` before the run, `remove_unfinished` if it fails. `writes` False (a launcher's other
    processes): neither, the first process owns the folder."""
    created = claim_output(out, overwrite) if writes else False
    try:
        yield out
    except BaseException:
        if writes:
            remove_unfinished(out, remove_folder=created)
        raise
