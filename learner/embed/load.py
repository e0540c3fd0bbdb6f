"""An embedder by name: a pretrained backbone (`learner.embed.backbones`) or an earshot model folder or Hub
id (`PredictorEmbedder`: its penultimate features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learner.embed.backbones import backbone_embedder
from learner.embed.embedder import Embedder, PredictorEmbedder


def load_embedder(ref: str, *, clip_s: float | None = None, **run: Any) -> Embedder:
    """An embedder by reference: a pretrained backbone's name (when the backbone registry knows it), else
    an earshot model folder or Hub id (its penultimate features). `clip_s`: a backbone's input length (the
    window's, when embedding windows); a model's is fixed by its config. `run`: where and how either runs,
    as the Predictor takes it (`device`, `threads`, `batch_size`: 32 unless given)."""
    run = {"batch_size": 32, **run}
    backbone = _backbone(ref, clip_s=clip_s, **run)
    if backbone is not None:
        return backbone
    from learner.serve.predictor import Predictor

    return PredictorEmbedder(Predictor.from_pretrained(ref, backend="torch", **run))


def _backbone(ref: str, **kw: Any) -> Embedder | None:
    """The pretrained-backbone embedder named `ref`, or None (no such name, or no backbone registry)."""
    if Path(ref).exists():
        return None
    return backbone_embedder(ref, **kw)
