"""Classifiers built on a pretrained audio backbone: backbone (with its own front end) + an embedding head.

One network serves both uses: fine-tuning (`jobs.train --arch aisfx`: the head first, then everything with
discriminative learning rates) and a frozen-embedding head fitted in seconds on cached embeddings
(`learner.train.heads`). Its input view is the raw waveform at the backbone's rate, so `AudioClassifier`,
the Predictor, ONNX export and int8 take it like any other model. The head's shape is recorded in
`AudioConfig.extra["head"]` ({"hidden": units or 0, "l2": bool}) so a folder rebuilds it exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from learner.config import AudioConfig
from learner.model.backbones import build_backbone
from learner.model.registry import register


class EmbeddingHead(nn.Module):
    """Embedding → logits: optional L2 normalisation, standardisation (fitted statistics as buffers), an
    optional hidden layer, a linear layer. Standardising in the graph lets a head fitted on standardised
    embeddings (logistic regression) run unchanged on raw ones."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 0, l2: bool = False, dropout: float = 0.2):
        super().__init__()
        self.l2 = l2
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(hidden or dim, n_classes)  # the registry's `classifier`: what transfer renews

    def standardise(self, e: torch.Tensor) -> torch.Tensor:
        if self.l2:
            e = nn.functional.normalize(e, dim=-1)
        return (e - self.mean) / self.scale

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden(self.standardise(e)))


class BackboneClassifier(nn.Module):
    """Waveforms (N, 1, samples) or (N, samples) → logits, through a backbone and an `EmbeddingHead`."""

    def __init__(self, backbone_name: str, n_classes: int, cfg: AudioConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone_name)
        if cfg.sample_rate != self.backbone.sample_rate:
            raise ValueError(
                f"{backbone_name} needs {self.backbone.sample_rate} Hz audio, "
                f"the config says {cfg.sample_rate}"
            )
        head = dict(cfg.extra.get("head") or {})
        self.head = EmbeddingHead(
            self.backbone.dim, n_classes, int(head.get("hidden", 0)), bool(head.get("l2", False))
        )

    def front_end(self, wave: torch.Tensor) -> torch.Tensor:
        """The backbone's own features: where an export's float32 front end ends."""
        return self.backbone.features(wave.squeeze(1) if wave.dim() == 3 else wave)

    def from_features(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.from_features(feats))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.front_end(wave))


@register("aisfx", input="waveform", classifier="head.fc", backbone="aisfx")
def aisfx(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """aisfx CNN (sound effects, Ma & Lerch 2022) + embedding head; 44.1 kHz waveform in."""
    return BackboneClassifier("aisfx", n_classes, cfg)


@register("panns_cnn10", input="waveform", classifier="head.fc", backbone="panns_cnn10")
def panns_cnn10(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """PANNs CNN10 (AudioSet, Kong et al. 2020) + embedding head; 32 kHz waveform in (weights online)."""
    return BackboneClassifier("panns_cnn10", n_classes, cfg)


@register("speech_embedding", input="waveform", classifier="head.fc", backbone="speech_embedding")
def speech_embedding(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """Google's speech_embedding (keyword spotting, Lin et al. 2020) + embedding head; 16 kHz waveform in."""
    return BackboneClassifier("speech_embedding", n_classes, cfg)
