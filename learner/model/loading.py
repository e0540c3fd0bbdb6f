"""A model folder's network: built from the registry and loaded strictly from model.safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learner.config import AudioConfig
from learner.folder import CONFIG, WEIGHTS, ModelDirError, load_model_dir
from learner.model.registry import create_model


def network_from_dir(folder: Path, config: dict[str, Any] | None = None) -> Any:
    """The network of a model folder (no front end), its weights loaded strictly from model.safetensors: the
    one
    builder behind the torch backend and ONNX export. A wrong arch or class count fails loudly."""
    cfg, sd = load_model_dir(folder)
    config = config or cfg
    try:
        net = create_model(config["arch"], len(config["classes"]), AudioConfig.from_dict(config["audio"]))
    except (KeyError, ValueError) as e:  # an arch this earshot does not know, say: name the file
        raise ModelDirError(f"{Path(folder) / CONFIG}: 'arch': {str(e).strip(chr(39))}") from None
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ModelDirError(
            f"{Path(folder) / WEIGHTS}: does not fit a {config['arch']} with "
            f"{len(config['classes'])} classes ({str(e).splitlines()[0]})"
        ) from None
    return net
