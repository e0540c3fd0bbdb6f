"""A pretrained audio backbone (`learner.model.backbones`) as an `Embedder`.

The backbone pools its half-overlapping blocks (mean ‖ max), so any clip of at least one block works: the
clip length is the window's when embedding windows, else `DEFAULT_CLIP_S`. Inputs are not trimmed (a
window's vector belongs to its times) and short ones are repeat-padded (silence would pull the mean of the
blocks towards silence's vector). Peak normalisation, where the backbone has it, happens inside it, per clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learner.config import AudioConfig
from learner.embed.embedder import Embedder

DEFAULT_CLIP_S = 5.0  # one vector per file: files up to twice this are one centred clip, longer ones windowed
FORWARD_CLIPS = 8  # clips per forward pass: a block CNN's activations are ~30 MB per 5 s clip (aisfx)


class BackboneEmbedder(Embedder):
    def __init__(
        self, backbone: Any, clip_s: float | None = None, batch_size: int = 16, device: str | None = None
    ) -> None:
        import torch

        self.backbone = backbone.eval()
        self.name = backbone.name
        self.dim = int(backbone.dim)
        clip = max(float(clip_s or DEFAULT_CLIP_S), float(backbone.block_s or 0.0))
        self.cfg = AudioConfig(
            sample_rate=int(backbone.sample_rate), duration=clip, trim_db=None, pad_mode="repeat"
        )
        self.batch_size = max(1, min(batch_size, FORWARD_CLIPS))  # the scorer still batches files as asked
        self.device = torch.device(device or "cpu")
        self.backbone.to(self.device)
        w = backbone.spec.weights
        self.weights_sha256 = w.sha256 or w.md5
        self._torch = torch

    def embed_batch(self, waves: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device)
            return self.backbone(x).float().cpu().numpy()

    def meta(self) -> dict[str, Any]:
        return {
            **super().meta(),
            "licence": self.backbone.spec.licence,
            "citation": self.backbone.spec.citation,
        }


def backbone_embedder(
    ref: str,
    *,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 16,
    clip_s: float | None = None,
    weights: str | None = "pretrained",
) -> BackboneEmbedder | None:
    """The embedder of the backbone named `ref` (its published weights), or None if no backbone has that
    name."""
    from learner.model.backbones import list_backbones, load_backbone

    if ref not in list_backbones():
        return None
    if threads:
        import torch

        torch.set_num_threads(threads)
    return BackboneEmbedder(load_backbone(ref, weights=weights), clip_s, batch_size, device)
