"""An embedder by name: a pretrained backbone (`learner.embed.backbones`) or an earshot model folder or Hub
id (`PredictorEmbedder`: its penultimate features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learner.embed.backbones import backbone_embedder
from learner.embed.embedder import Embedder, PredictorEmbedder


def load_embedder(
    ref: str,
    *,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 32,
    clip_s: float | None = None,
) -> Embedder:
    """An embedder by reference: a pretrained backbone's name (when the backbone registry knows it), else
    an earshot model folder or Hub id (its penultimate features). `clip_s`: a backbone's input length (the
    window's, when embedding windows); a model's is fixed by its config."""
    backbone = _backbone(ref, device=device, threads=threads, batch_size=batch_size, clip_s=clip_s)
    if backbone is not None:
        return backbone
    from learner.serve.predictor import Predictor

    predictor = Predictor.from_pretrained(
        ref, backend="torch", device=device, threads=threads, batch_size=batch_size
    )
    return PredictorEmbedder(predictor)


def _backbone(ref: str, **kw: Any) -> Embedder | None:
    """The pretrained-backbone embedder named `ref`, or None (no such name, or no backbone registry)."""
    if Path(ref).exists():
        return None
    return backbone_embedder(ref, **kw)
