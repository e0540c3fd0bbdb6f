"""What turns fixed-length waveforms (B, n_samples) into logits: torch, a fastai pickle, or ONNX Runtime.

`BACKENDS` is the one list of names: the Predictor picks from it and every command line offers exactly
these (plus "auto"). Nothing heavy is imported here: torch loads when a torch backend is built,
onnxruntime when an ONNX one is.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.config import AudioConfig


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits over the last axis (the one softmax: Predictor, export parity checks)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Independent per-class probabilities (multi-label models), numerically stable for large |logits|."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)


def scores_from_logits(logits: np.ndarray, task: str = "single") -> np.ndarray:
    """Class scores as the model was trained to give them: softmax over classes for single-label models,
    a sigmoid per class for multi-label ones (config.json's "task"; absent = single)."""
    if task == "multi":
        return sigmoid(logits)
    if task != "single":
        raise ValueError(f"task {task!r}: expected 'single' or 'multi'")
    return softmax(logits)


@dataclass(frozen=True)
class BackendSpec:
    """What every backend in `BACKENDS` is built from (the Predictor makes one): the model folder, its
    config.json, its audio settings, and where and on how many threads to run."""

    folder: Path
    config: dict[str, Any]
    cfg: AudioConfig
    device: str | None = None
    threads: int | None = None


class TorchBackend:
    """AudioClassifier (front end + net) under `torch.inference_mode`; weights loaded strictly."""

    name = "torch"

    def __init__(self, spec: BackendSpec) -> None:
        try:
            import torch
        except ModuleNotFoundError:  # the lean serving install (requirements-serve.txt) has no torch
            from learner.folder import ModelDirError

            raise ModelDirError(_no_torch(spec.folder)) from None

        from learner.model.frontend import AudioClassifier, FrontEnd
        from learner.model.registry import get_arch

        if spec.threads:
            torch.set_num_threads(spec.threads)
        net = self.load_net(spec.folder, spec.config)
        self.device = torch.device(spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        front = FrontEnd(spec.cfg, get_arch(spec.config["arch"]).input)
        self.model = AudioClassifier(front, net).to(self.device).eval()
        self._torch = torch

    def load_net(self, folder: Path, config: dict[str, Any]) -> Any:
        """The network from model.safetensors (never unpickles)."""
        from learner.model.loading import network_from_dir

        return network_from_dir(folder, config)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()


class PickleBackend(TorchBackend):
    """The network from a fastai `model.pkl` export (opt-in only: unpickling runs code from the file)."""

    name = "pickle"

    loader = "learner.train.pickled:load_pickle"  # by name: serving never imports the training room itself

    def load_net(self, folder: Path, config: dict[str, Any]) -> Any:
        module, name = self.loader.split(":")
        return getattr(importlib.import_module(module), name)(folder).model


def _lazy(module: str, cls: str) -> Any:
    """A backend constructor that imports its module on first use (onnxruntime only when asked for)."""

    def make(*args: Any, **kw: Any) -> Any:
        return getattr(importlib.import_module(module), cls)(*args, **kw)

    return make


BACKENDS: dict[str, Any] = {
    "torch": TorchBackend,
    "pickle": PickleBackend,
    "onnx": _lazy("learner.serve.onnx_backend", "OnnxBackend"),
    "onnx-int8": _lazy("learner.serve.onnx_backend", "OnnxInt8Backend"),
}
#: What a command line offers: "auto" (ONNX when the folder has model.onnx, else torch) and BACKENDS, but for
# : "pickle", which runs code from the file and is opt-in from Python only
# (`Predictor.from_dir(allow_pickle=True)`).
BACKEND_CHOICES = ("auto", *(name for name in BACKENDS if name != "pickle"))


def _no_torch(folder: Path) -> str:
    """One line for a model that needs torch where only ONNX Runtime is installed."""
    if (Path(folder) / "model.onnx").is_file():
        return (
            f"{folder}: the torch backend needs torch, which is not installed here; "
            "serve model.onnx (backend onnx)"
        )
    return (
        f"{folder}: no model.onnx, and torch (needed for model.safetensors) is not installed here; run "
        f"`python -m jobs.export --model {folder}` where torch is installed (requirements.txt), then serve "
        "it here"
    )
