"""The published small baselines: a raw-waveform Conv1d and a 1-D CNN over MFCCs."""

from __future__ import annotations

import torch
from torch import nn

from learner.config import AudioConfig
from learner.model.registry import register


class Conv1dRaw(nn.Module):
    """The published raw-waveform baseline: one wide strided Conv1d, then an MLP."""

    def __init__(self, n_classes: int, n_samples: int, p: float = 0.4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, kernel_size=4096, stride=1000, padding=2047),
            nn.BatchNorm1d(8),
            nn.ReLU(inplace=True),
        )
        n_frames = (n_samples + 2 * 2047 - 4096) // 1000 + 1
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * n_frames, 500),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(500, 50),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(50, 25),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(25, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register(input="waveform", classifier="head.10")
def conv1d_raw(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """Conv1d(1→8, k4096, s1000) on the raw waveform + MLP 500→50→25 (the baseline to beat)."""
    return Conv1dRaw(n_classes, cfg.n_samples)


class MFCCCNN1d(nn.Module):
    """1D CNN over MFCC frames: two conv blocks with progressive dropout, global pooling, dense head."""

    def __init__(self, n_classes: int, n_mfcc: int) -> None:
        super().__init__()

        def block(ni: int, nf: int, k: int, p: float) -> list[nn.Module]:
            return [
                nn.Conv1d(ni, nf, k, padding=k // 2),
                nn.BatchNorm1d(nf),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
                nn.Dropout(p),
            ]

        self.features = nn.Sequential(*block(n_mfcc, 128, 5, 0.4), *block(128, 256, 3, 0.5))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.6),
            nn.Linear(128, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.flatten(1, -2)))  # (B, 1, n_mfcc, T) → (B, n_mfcc, T)


@register(input="mfcc", classifier="head.5")
def mfcc_cnn1d(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """40 MFCCs → Conv1d 128 (k5) and 256 (k3) blocks, dropout 0.4/0.5/0.6, dense head."""
    return MFCCCNN1d(n_classes, cfg.n_mfcc)
