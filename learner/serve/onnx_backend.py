"""The ONNX Runtime backend of the Predictor: waveforms (B, n_samples) → logits with no torch at all.

Imports only numpy and onnxruntime (plus the stdlib), so a lean install (requirements-serve.txt) can
serve an exported model. The file is checked against the sha256 that `jobs.export` recorded in
config.json before ONNX Runtime reads it; any mismatch, corruption or missing record is a
`ModelDirError` naming the file — never a quiet fall back to torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from learner.folder import WEIGHTS, ModelDirError
from learner.serve.backends import BackendSpec

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAME = "waveform"
OUTPUT_NAME = "logits"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verified_path(folder: Path, config: dict[str, Any], filename: str) -> Path:
    """`folder/filename` after checking it against config.json's "onnx" record (sha256, source weights)."""
    path = Path(folder) / filename
    record = config.get("onnx")
    if not isinstance(record, dict) or filename not in record.get("files", {}):
        raise ModelDirError(
            f"{path}: not recorded in {Path(folder) / 'config.json'}; export the model first "
            f"(the export job{', int8=True' if filename == INT8_FILE else ''})"
        )
    if not path.is_file():
        raise ModelDirError(f"{path}: missing (config.json records it; export the model again)")
    if sha256_file(path) != record["files"][filename]:
        raise ModelDirError(
            f"{path}: sha256 does not match config.json (corrupt or replaced file; export the model again)"
        )
    weights = Path(folder) / WEIGHTS
    src = record.get("source", {}).get(WEIGHTS)
    if src and weights.is_file() and sha256_file(weights) != src:
        raise ModelDirError(
            f"{path}: exported from other weights than {weights} (stale export; export the model again)"
        )
    return path


class OnnxBackend:
    """An ONNX Runtime session over the exported graph (front end + network), CPU by default."""

    name = "onnx"
    filename = ONNX_FILE

    def __init__(self, spec: BackendSpec) -> None:
        import onnxruntime as ort

        config, cfg, device, threads = spec.config, spec.cfg, spec.device, spec.threads
        path = verified_path(spec.folder, config, self.filename)
        providers = ["CPUExecutionProvider"]
        if device and device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ModelDirError(
                    f"{path}: device {device!r} asked for, but this onnxruntime has no CUDA provider"
                )
            providers.insert(0, "CUDAExecutionProvider")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelDirError(f"{path}: ONNX Runtime cannot load it ({_first_line(e)})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.n_samples = inp.shape[-1] if isinstance(inp.shape[-1], int) else cfg.n_samples
        if self.n_samples != cfg.n_samples:
            raise ModelDirError(
                f"{path}: graph takes {self.n_samples} samples, config.json says {cfg.n_samples}"
            )
        self.device = providers[0]
        self._check_width(path, len(config["classes"]))

    def _check_width(self, path: Path, n_classes: int) -> None:
        """One score per class of config.json, or a one-line error now (an IndexError, or a wrong label with
        exit 0, later). The width is read from the graph, else from one silent clip."""
        width = self.session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            width = self(np.zeros((1, self.n_samples), np.float32)).shape[-1]
        if width != n_classes:
            raise ModelDirError(
                f"{path}: the graph gives {width} scores per clip, config.json lists {n_classes} classes "
                "(a model exported for other classes; export the model again)"
            )

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(waves, dtype=np.float32).reshape(len(waves), -1)
        return self.session.run(None, {self.input_name: x})[0]


class OnnxInt8Backend(OnnxBackend):
    """The int8-quantized graph (`jobs.export --int8`): smaller and faster, top-1 agreement recorded at
    export."""

    name = "onnx-int8"
    filename = INT8_FILE


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__
