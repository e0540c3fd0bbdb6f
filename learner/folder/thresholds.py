"""Per-class decision thresholds written into a model's config.json on request (event evaluation, review
calibration): one writer, so every tool records where a threshold came from and keeps the ones it replaced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from learner.folder.files import CONFIG, read_config, write_json

HISTORY_KEY = "thresholds_history"  # earlier thresholds, newest last: nothing written before is lost


def write_thresholds(model_dir: str | Path, thresholds: Mapping[str, float], source: str) -> dict[str, float]:
    """Set `thresholds` ({class: value in [0, 1]}) in `model_dir`/config.json; classes not named keep theirs.

    `source` says how they were chosen (it becomes `thresholds_rule`, which the model card shows); the
    thresholds and rule they replace are appended to `thresholds_history` with the time. Returns the
    model's thresholds after the write. A class the model does not have, or a value outside [0, 1], is a
    `ValueError` and nothing is written."""
    folder = Path(model_dir)
    config = read_config(folder)
    classes = list(config.get("classes") or [])
    unknown = sorted(set(thresholds) - set(classes))
    if unknown:
        raise ValueError(
            f"{folder / CONFIG}: no class {', '.join(map(repr, unknown))} in this model "
            f"(its classes: {', '.join(classes)})"
        )
    clean: dict[str, float] = {}
    for name, value in thresholds.items():
        v = float(value)
        if not (0.0 <= v <= 1.0) or math.isnan(v):
            raise ValueError(f"{folder / CONFIG}: threshold of {name!r} must lie in [0, 1], got {value!r}")
        clean[name] = round(v, 6)
    if not source or not str(source).strip():
        raise ValueError("write_thresholds needs a source (how the thresholds were chosen)")
    old = dict(config.get("thresholds") or {})
    history: list[dict[str, Any]] = list(config.get(HISTORY_KEY) or [])
    history.append(
        {
            "thresholds": old,
            "thresholds_rule": config.get("thresholds_rule"),
            "replaced_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "replaced_by": str(source),
        }
    )
    config["thresholds"] = {**old, **clean}
    config["thresholds_rule"] = str(source)
    config[HISTORY_KEY] = history
    write_json(folder / CONFIG, config)
    return dict(config["thresholds"])
