"""The model directory: `model.safetensors` + `config.json` (+ metrics, plots, README.md, model.onnx).

Loading never unpickles: weights are safetensors, config is JSON. A fastai `model.pkl` may sit beside
them for fastai users, and is read only through `learner.train.pickled.load_pickle` (explicit opt-in, with a
warning).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from learner.folder.errors import ModelDirError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PICKLE = "model.pkl"
METRICS = "metrics.json"
CARD = "README.md"


# a POSIX path (/a/b, ~/a/b), a Windows one with its drive (C:\a\b) or a UNC one (\\srv\share): a lone
# backslash is a regex escape (`\d+\.wav`), never a path
_PART = r"[^\s/\\`'\"|,;()]+"
_LOCAL_PATH = re.compile(
    rf"(?<![\w.:/\\])(?:~?(?:/{_PART})+/|[A-Za-z]:(?:[/\\]{_PART})+[/\\]|\\\\(?:{_PART}\\)+)({_PART})"
)
#: values stored exactly as the user gave them (patterns, not paths)
KEEP_EXACT = frozenset({"group_regex"})


def strip_local_paths(value: Any) -> Any:
    """`value` with every absolute local path reduced to its last part (`/home/me/data/dogs` → `dogs`), in
    strings, lists and dicts: what a model card, a pushed config.json or a public demo may show. Keys in
    `KEEP_EXACT` (a `--group-regex` such as `^(\\w+)-\\d+\\.wav$`) keep their value as given."""
    if isinstance(value, str):
        return _LOCAL_PATH.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: v if k in KEEP_EXACT else strip_local_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(strip_local_paths(v) for v in value)
    return value


def write_json(path: Path, obj: Any) -> None:
    """Sorted, indented JSON written atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
        chmod_like_new_file(tmp)  # mkstemp makes it 0600; a served model must be readable by other users
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temp file may stay behind
        Path(tmp).unlink(missing_ok=True)
        raise


def chmod_like_new_file(path: Path | str) -> None:
    """Give `path` the mode `open()` would (0666 less the umask): writers that go through a private temp
    file (mkstemp, safetensors) otherwise leave 0600, which another user (a service account) cannot serve."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_model_dir(folder: Path, state_dict: dict, config: dict[str, Any]) -> Path:
    """Write weights and config; other files (metrics, plots, card) are added by their owners."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt", "arch": str(config.get("arch", ""))})
    chmod_like_new_file(folder / WEIGHTS)
    write_json(folder / CONFIG, config)
    return folder


def read_json(path: Path, *, missing_ok: bool = True) -> dict[str, Any]:
    """A JSON object file of a model folder (metrics.json, earshot-default.json, ...): {} when it is absent
    (unless `missing_ok` is False), one `ModelDirError` naming the file when it is not a JSON object."""
    path = Path(path)
    if path.is_symlink():
        raise ModelDirError(f"{path}: a symbolic link; model folders are read as regular files only")
    if not path.is_file():
        if missing_ok:
            return {}
        raise ModelDirError(f"{path}: no such file")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ModelDirError(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def check_model_dir(model_dir: str | Path, required: tuple[str, ...] = (WEIGHTS, CONFIG)) -> Path:
    """The folder as a Path, or a ModelDirError naming what is missing (before anything is read)."""
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such model directory")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise ModelDirError(f"{path} is not a complete earshot model directory: missing {', '.join(missing)}")
    return path


def refuse_links(folder: Path) -> None:
    """A model folder is read as regular files only: a symbolic link anywhere in it (to a file, a folder or
    nothing) is refused, so neither a push, a load nor the demo can publish or serve what it points to.

    The one exception is a Hugging Face cache snapshot, whose files are links into the same repo's `blobs/`
    folder (`models--USER--NAME/snapshots/REV/x` → `../../blobs/HASH`); a link leaving it is refused too."""
    folder = Path(folder)
    blobs = _snapshot_blobs(folder)
    for root, dirs, files in os.walk(folder):  # never follows a linked folder: it is listed, not entered
        for name in dirs + files:
            entry = Path(root) / name
            if not entry.is_symlink():
                continue
            target = os.path.realpath(entry)
            if blobs is not None and os.path.isfile(target) and target.startswith(blobs + os.sep):
                continue
            raise ModelDirError(
                f"{entry}: a symbolic link in a model folder (to {os.readlink(entry)}); "
                "model folders are read as regular files only: copy the file in instead"
            )


MAX_SHOWN_BYTES = 8 * 1024 * 1024  # a confusion matrix bigger than this is not shown


def read_regular(path: Path, limit: int = MAX_SHOWN_BYTES) -> bytes | None:
    """The bytes of `path` if it is a regular file (never read through a link) of at most `limit` bytes,
    else None: what the demo shows from a model folder lies in the folder itself."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return f.read(limit)


def _snapshot_blobs(folder: Path) -> str | None:
    """The real path of the repo's blobs/ folder when `folder` is a Hugging Face cache snapshot, else None."""
    if folder.parent.name != "snapshots" or not folder.parent.parent.name.startswith("models--"):
        return None
    blobs = folder.parent.parent / "blobs"
    return os.path.realpath(blobs) if blobs.is_dir() and not blobs.is_symlink() else None


def read_config(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG
    if folder.is_dir():
        refuse_links(folder)
    if not path.is_file():
        raise ModelDirError(f"{folder}: not an earshot model directory (no {CONFIG})")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ModelDirError(f"{path}: must hold a JSON object")
    for key in ("arch", "classes", "audio"):
        if key not in cfg:
            raise ModelDirError(f"{path}: missing {key!r}")
    from learner.folder.schema import check_config

    check_config(cfg, path)  # one clear error per broken value, before anything is built from it
    return cfg


def load_model_dir(folder: Path) -> tuple[dict[str, Any], dict]:
    """(config, state_dict) from safetensors; never unpickles."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg = read_config(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelDirError(f"{folder}: no {WEIGHTS}")
    try:
        sd = load_file(str(weights))
    except Exception as e:
        raise ModelDirError(f"{weights}: unreadable weights ({e})") from None
    import torch

    broken = [k for k, t in sd.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        raise ModelDirError(
            f"{weights}: {len(broken)} tensor(s) hold NaN or infinite values ({', '.join(broken[:3])}"
            f"{' …' if len(broken) > 3 else ''}); the model would predict nothing meaningful"
        )
    return cfg, sd
