"""earshot's library: audio in, a fine-tuned classifier out. Jobs and the app are thin shells over it.

Rooms along the path of one clip (see README "Layout"): `audio` (NumPy decode, signal steps, ClipPipeline)
→ `model` (front end, registry, archs, weights, saliency) → `serve` (Predictor, backends, ONNX export, demo)
→ `score` (batch scoring) and `report` (metrics, plots); `data` and `train` (the only fastai importer)
make models. Heavy imports (torch, fastai, timm) stay inside the modules that need them, so that serving
with the ONNX backend imports none of them; the names below load on first use (`learner.train` is the training
package: its `train` function is `from learner.train import train`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "AudioConfig": "learner.config",
    "ClipPipeline": "learner.audio.pipeline",
    "Prediction": "learner.serve.prediction",
    "Predictor": "learner.serve.predictor",
    "BACKENDS": "learner.serve.backends",
    "TrainArgs": "learner.train.args",
    "evaluate": "learner.score.evaluate",
    "resolve": "learner.hub",
    "push": "learner.hub",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'learner' has no attribute {name!r}")
