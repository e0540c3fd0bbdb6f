"""config.json of a model folder, checked before anything is built from it.

A hand-written schema (no jsonschema in the lean serving install): each rule says what a value must be,
and the first one broken becomes one `ModelDirError` naming the file, the key and what is wrong. The
bounds are generous but finite, so a typo or a hostile folder fails at load instead of allocating
gigabytes per prediction. Unknown keys are accepted: folders written by newer versions still load.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from learner.folder.errors import ModelDirError

MAX_CLASSES = 20_000
MAX_CLASS_NAME = 200  # characters
SAMPLE_RATES = (1_000, 768_000)  # Hz
MAX_CLIP_S = 600.0  # one model input; longer files are scored in windows of this
MAX_CLIP_SAMPLES = 48_000 * 600
TASKS = ("single", "multi")
# audio key → (allowed types, low, high, may be null); ints must be whole numbers, never bools
AUDIO_NUMBERS: dict[str, tuple[tuple[type, ...], float, float, bool]] = {
    "duration": ((int, float), 1e-3, MAX_CLIP_S, False),
    "n_fft": ((int,), 16, 65_536, False),
    "hop_length": ((int,), 1, 1_000_000, False),
    "n_mels": ((int,), 1, 1_024, False),
    "n_mfcc": ((int,), 1, 1_024, False),
    "f_min": ((int, float), 0.0, SAMPLE_RATES[1], False),
    "f_max": ((int, float), 0.0, SAMPLE_RATES[1], True),
    "top_db": ((int, float), 0.0, 1_000.0, True),
    "trim_db": ((int, float), 0.0, 1_000.0, True),
}


def _error(path: Path, message: str) -> Exception:
    return ModelDirError(f"{path}: {message}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)


def class_name_problem(name: Any, max_chars: int = 200) -> str | None:
    """Why `name` cannot be a class name (the one rule for training data and config.json), or None.

    A class name is printed in tab-separated lines, tables and the demo: blank names, names with control
    characters (newline, tab, ...) or surrounding spaces would be invisible or forge lines."""
    if not isinstance(name, str):
        return f"is not text ({type(name).__name__})"
    if not name.strip():
        return "is blank"
    if len(name) > max_chars:
        return f"is longer than {max_chars} characters"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in name):
        return "holds a control character (newline, tab, ...)"
    if name != name.strip():
        return "starts or ends with a space"
    return None


def check_classes(path: Path, classes: Any) -> None:
    if not isinstance(classes, list):
        raise _error(
            path, f"'classes' must be a list of class names, got {type(classes).__name__} {_short(classes)}"
        )
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise _error(path, f"'classes' must hold 1 to {MAX_CLASSES} names, it holds {len(classes)}")
    seen: set[str] = set()
    for i, name in enumerate(classes):
        if problem := class_name_problem(name, MAX_CLASS_NAME):
            raise _error(
                path,
                f"'classes'[{i}] must be a non-empty name of at most {MAX_CLASS_NAME} printable characters; "
                f"{_short(name)} {problem}",
            )
        if name in seen:
            raise _error(path, f"'classes' names {name!r} twice; every class needs its own name")
        seen.add(name)


def check_audio(path: Path, audio: Any) -> None:
    if not isinstance(audio, dict):
        raise _error(path, f"'audio' must be an object of preprocessing settings, got {_short(audio)}")
    sr = audio.get("sample_rate")
    if "sample_rate" in audio and not (_number(sr, (int,)) and SAMPLE_RATES[0] <= sr <= SAMPLE_RATES[1]):
        raise _error(
            path,
            f"'audio.sample_rate' must be a whole number of Hz from {SAMPLE_RATES[0]} to "
            f"{SAMPLE_RATES[1]}, got {_short(sr)}",
        )
    for key, (types, low, high, nullable) in AUDIO_NUMBERS.items():
        if key not in audio or (audio[key] is None and nullable):
            continue
        v = audio[key]
        if not (_number(v, types) and low <= v <= high):
            kind = "a whole number" if types == (int,) else "a number"
            raise _error(path, f"'audio.{key}' must be {kind} from {low:g} to {high:g}, got {_short(v)}")
    if (
        isinstance(sr, int)
        and isinstance(audio.get("duration"), (int, float))
        and sr * audio["duration"] > MAX_CLIP_SAMPLES
    ):
        raise _error(
            path,
            f"'audio': a clip of {audio['duration']:g} s at {sr} Hz is more than {MAX_CLIP_SAMPLES} samples",
        )
    stats = audio.get("norm_stats")
    if stats is not None and not (
        isinstance(stats, list) and len(stats) == 2 and all(_number(v, (int, float)) for v in stats)
    ):
        raise _error(
            path, f"'audio.norm_stats' must be [mean, std] (two finite numbers), got {_short(stats)}"
        )
    from learner.config import AudioConfig

    try:
        AudioConfig.from_dict(audio)
    except (TypeError, ValueError) as e:
        raise _error(path, f"'audio': {e}") from None


def check_config(config: Any, path: Path) -> None:
    """Raise `ModelDirError` (one line: file, key, problem) unless `config` is a usable earshot config."""
    if not isinstance(config, dict):
        raise _error(path, f"must hold a JSON object, got {type(config).__name__}")
    arch = config.get("arch")
    if not isinstance(arch, str) or not arch.strip():
        raise _error(path, f"'arch' must be an architecture name, got {_short(arch)}")
    check_classes(path, config.get("classes"))
    check_audio(path, config.get("audio"))
    if "input" in config and not isinstance(config["input"], str):
        raise _error(path, f"'input' must be a name such as 'spectrogram', got {_short(config['input'])}")
    task = config.get("task")
    if task is not None and task not in TASKS:
        raise _error(path, f"'task' must be one of {', '.join(TASKS)}, got {_short(task)}")
    thresholds = config.get("thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, dict):
            raise _error(
                path, f"'thresholds' must map class names to numbers from 0 to 1, got {_short(thresholds)}"
            )
        known = set(config["classes"])
        for name, t in thresholds.items():
            if name not in known:
                raise _error(path, f"'thresholds' names {name!r}, which is not one of 'classes'")
            if not (_number(t, (int, float)) and 0.0 <= t <= 1.0):
                raise _error(path, f"'thresholds'[{name!r}] must be a number from 0 to 1, got {_short(t)}")
    check_reject_record(path, config.get("reject"), config["classes"])
    check_onnx_record(path, config.get("onnx"))


def check_reject_record(path: Path, record: Any, classes: list[str]) -> None:
    """config.json's "reject" record: {"classes": [class, ...], "answer": name, "names": {answer: text}}."""
    if record is None:
        return
    if not isinstance(record, dict):
        raise _error(path, f"'reject' must be an object (classes, answer, names), got {_short(record)}")
    listed = record.get("classes", [])
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise _error(path, f"'reject.classes' must be a list of class names, got {_short(listed)}")
    if missing := [c for c in listed if c not in classes]:
        raise _error(path, f"'reject.classes' names {missing[0]!r}, which is not one of 'classes'")
    answer = record.get("answer", "unknown")
    if class_name_problem(answer, MAX_CLASS_NAME):
        raise _error(path, f"'reject.answer' must be a name such as 'unknown', got {_short(answer)}")
    names = record.get("names", {})
    if not isinstance(names, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and not class_name_problem(v, MAX_CLASS_NAME)
        for k, v in names.items()
    ):
        raise _error(path, f"'reject.names' must map answers to printable text, got {_short(names)}")


def check_onnx_record(path: Path, record: Any) -> None:
    """config.json's "onnx" record (written by the export job): files and source map names to sha256s."""
    if record is None:
        return
    if not isinstance(record, dict):
        raise _error(path, f"'onnx' must be the export job's record (an object), got {_short(record)}")
    for key in ("files", "source"):
        value = record.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _error(
                path, f"'onnx.{key}' must map file names to sha256 digests, got {_short(value)}; export again"
            )
