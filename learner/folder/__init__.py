"""The model folder: `model.safetensors` + `config.json` (+ metrics, plots, README.md, model.onnx).

One room owns it: the file names, `ModelConfig` (schema, validation, tolerant read, write), the JSON
readers and writers, and the local-path scrubbing for anything published. Loading never unpickles."""

from learner.folder.config import ModelConfig
from learner.folder.errors import ModelDirError
from learner.folder.files import (
    CARD,
    CONFIG,
    METRICS,
    PICKLE,
    WEIGHTS,
    check_model_dir,
    chmod_like_new_file,
    load_model_dir,
    read_config,
    read_json,
    read_regular,
    refuse_links,
    save_model_dir,
    strip_local_paths,
    write_json,
)
from learner.folder.thresholds import write_thresholds

__all__ = [
    "CARD",
    "CONFIG",
    "METRICS",
    "PICKLE",
    "WEIGHTS",
    "ModelConfig",
    "ModelDirError",
    "check_model_dir",
    "chmod_like_new_file",
    "load_model_dir",
    "read_config",
    "read_json",
    "read_regular",
    "refuse_links",
    "save_model_dir",
    "strip_local_paths",
    "write_json",
    "write_thresholds",
]
