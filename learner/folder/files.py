"""The model directory: `model.safetensors` + `config.json` (+ metrics, plots, README.md, model.onnx).

Loading never unpickles: weights are safetensors, config is JSON. A fastai `model.pkl` may sit beside
them for fastai users, and is read only through `learner.train.pickled.load_pickle` (explicit opt-in, with a
warning).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from learner.folder.errors import ModelDirError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PICKLE = "model.pkl"
METRICS = "metrics.json"
CARD = "README.md"


_LOCAL_PATH = re.compile(r"(?<![\w.:/])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\`'\"|,;()]+)+[/\\]([^\s/\\`'\"|,;()]+)")


def strip_local_paths(value: Any) -> Any:
    """`value` with every absolute local path reduced to its last part (`/home/me/data/dogs` → `dogs`), in
    strings, lists and dicts: what a model card, a pushed config.json or a public demo may show."""
    if isinstance(value, str):
        return _LOCAL_PATH.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: strip_local_paths(v) for k, v in value.items()}
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


def read_config(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG
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
