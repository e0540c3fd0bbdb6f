"""One interface for everything that turns fixed-length waveforms into vectors.

An `Embedder` has a `name` (recorded with every vector: `--resume` and search refuse to mix two), the
`sample_rate` and clip length (`clip_s`) its network hears, the vector size `dim`, and
`embed_batch(waves (n, samples)) -> (n, dim) float32`. Its `pipeline` is the earshot `ClipPipeline` that
decodes, resamples, trims and crops for it, so the scorer's discovery, decoding workers, windows and
streaming of long files (`learner.score`) serve embeddings unchanged: they call `predict_waves`, which is
`embed_batch` in batches.

Two kinds fit: a trained earshot model's penultimate-layer features (`PredictorEmbedder`, the input of its
final layer), and a pretrained audio backbone (`learner.model`'s backbone registry, when present).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.audio import ClipPipeline
from learner.config import AudioConfig


class Embedder:
    """Base class: subclasses set `name`, `cfg` (an AudioConfig: rate, clip length, trim, pad), `dim`, and
    implement `embed_batch`."""

    name: str = ""
    dim: int = 0
    cfg: AudioConfig
    batch_size: int = 32
    weights_sha256: str | None = None  # of the weights file, when there is one (resume compares it)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def clip_s(self) -> float:
        return self.cfg.duration

    @property
    def pipeline(self) -> ClipPipeline:
        return ClipPipeline(self.cfg)

    @property
    def config(self) -> dict[str, Any]:
        """What decoding processes and Ray actors rebuild the pipeline from (as a model's config.json)."""
        return {"audio": self.cfg.to_dict(), "embedder": self.name, "dim": self.dim}

    def embed_batch(self, waves: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_waves(self, waves: np.ndarray) -> np.ndarray:
        """(n, samples) → (n, dim) float32, `batch_size` at a time (the name the scorer calls)."""
        waves = np.asarray(waves, dtype=np.float32).reshape(len(waves), -1)
        out = [
            self.embed_batch(waves[i : i + self.batch_size]) for i in range(0, len(waves), self.batch_size)
        ]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def meta(self) -> dict[str, Any]:
        """What made the vectors: stored beside them, compared on resume and by search."""
        return {
            "embedder": self.name,
            "dim": self.dim,
            "sample_rate": self.sample_rate,
            "clip_s": self.clip_s,
            "weights_sha256": self.weights_sha256,
        }


class PredictorEmbedder(Embedder):
    """A trained earshot model's penultimate features: the input of its final layer (the registry's
    `classifier`), flattened. Needs the torch backend (an ONNX graph ends at the logits)."""

    def __init__(self, predictor: Any) -> None:
        from learner.model.registry import get_arch

        model = getattr(predictor.backend, "model", None)
        if model is None:
            raise ValueError(
                f"{predictor.model_id}: embeddings need the torch backend (model.safetensors), "
                f"not {getattr(predictor.backend, 'name', '?')}; pass backend='torch'"
            )
        head_name = get_arch(predictor.arch).classifier
        if not head_name:
            raise ValueError(f"arch {predictor.arch!r} names no final layer to take features before")
        self.predictor, self.model = predictor, model
        self.head = model.net.get_submodule(head_name)
        self.name = predictor.model_id
        self.cfg = predictor.cfg
        self.batch_size = predictor.batch_size
        self.dim = int(getattr(self.head, "in_features", 0)) or self._probe_dim()
        weights = predictor.folder / "model.safetensors" if predictor.folder is not None else None
        if weights is not None and weights.is_file():
            from learner.serve.onnx_backend import sha256_file

            self.weights_sha256 = sha256_file(weights)

    def _features(self, waves: np.ndarray) -> np.ndarray:
        torch = self.predictor.backend._torch
        got: list[Any] = []
        hook = self.head.register_forward_pre_hook(lambda _m, inputs: got.append(inputs[0]))
        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
                self.model(x.to(self.predictor.backend.device))
        finally:
            hook.remove()
        return got[0].flatten(1).float().cpu().numpy()

    def _probe_dim(self) -> int:
        return int(self._features(np.zeros((1, self.cfg.n_samples), np.float32)).shape[1])

    def embed_batch(self, waves: np.ndarray) -> np.ndarray:
        return self._features(waves)
