"""The model registry (name → constructor + the input view it needs), like timm's `register_model`.

XResNet is written out here with fastai's exact module layout (state dicts are interchangeable with
`fastai.vision.models.xresnet`, tested) so that inference never pays fastai's 4–5 s import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from learner.config import AudioConfig


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about an architecture."""

    name: str
    fn: Callable[[int, AudioConfig], nn.Module]
    input: str  # "spectrogram" | "mfcc" | "waveform"
    weights: str | None = None  # Hub id of ImageNet weights (timm), if any
    first_conv: str | None = None
    classifier: str | None = None
    description: str = ""


_REGISTRY: dict[str, ArchSpec] = {}


def register(
    name: str | None = None, *, input: str, weights: str | None = None, first_conv: str | None = None,
    classifier: str | None = None,
) -> Callable:
    """Decorator filing a constructor `fn(n_classes, cfg) -> nn.Module` under `name` (default: its own)."""

    def deco(fn: Callable[[int, AudioConfig], nn.Module]) -> Callable:
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ArchSpec(key, fn, input, weights, first_conv, classifier, doc[0] if doc else "")
        return fn

    return deco


def list_archs() -> list[str]:
    return sorted(_REGISTRY)


def get_arch(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}; choose one of: {', '.join(list_archs())}") from None


def create_model(name: str, n_classes: int, cfg: AudioConfig) -> nn.Module:
    """The network alone (no front end), randomly initialised."""
    return get_arch(name).fn(n_classes, cfg)


# --- XResNet (fastai's layout: stem ConvLayers, MaxPool, 4 stages of ResBlocks, pool, flatten, dropout, linear)


def _conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 1, act: bool = True, zero_bn: bool = False) -> nn.Sequential:
    bn = nn.BatchNorm2d(nf)
    nn.init.constant_(bn.weight, 0.0 if zero_bn else 1.0)
    conv = nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight)
    layers: list[nn.Module] = [conv, bn]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """fastai's ResBlock: conv path + (avg-pool, 1×1 conv) identity path, ReLU after the sum."""

    def __init__(self, expansion: int, ni: int, nf: int, stride: int = 1) -> None:
        super().__init__()
        nf, ni = nf * expansion, ni * expansion
        if expansion == 1:
            path = [_conv_layer(ni, nf, 3, stride), _conv_layer(nf, nf, 3, act=False, zero_bn=True)]
        else:
            nh = nf // expansion
            path = [_conv_layer(ni, nh, 1), _conv_layer(nh, nh, 3, stride), _conv_layer(nh, nf, 1, act=False, zero_bn=True)]
        self.convpath = nn.Sequential(*path)
        idpath: list[nn.Module] = []
        if ni != nf:
            idpath.append(_conv_layer(ni, nf, 1, act=False))
        if stride != 1:
            idpath.insert(0, nn.AvgPool2d(stride, ceil_mode=True))
        self.idpath = nn.Sequential(*idpath)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convpath(x) + self.idpath(x))


class XResNet(nn.Sequential):
    def __init__(self, expansion: int, layers: list[int], c_in: int = 1, n_out: int = 1000, p: float = 0.0) -> None:
        stem_szs = [c_in, 32, 32, 64]
        stem = [_conv_layer(stem_szs[i], stem_szs[i + 1], 3, stride=2 if i == 0 else 1) for i in range(3)]
        szs = [64 // expansion, 64, 128, 256, 512]
        stages = [
            nn.Sequential(*[ResBlock(expansion, szs[i] if j == 0 else szs[i + 1], szs[i + 1], (1 if i == 0 else 2) if j == 0 else 1)
                            for j in range(n)])
            for i, n in enumerate(layers)
        ]
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(szs[-1] * expansion, n_out)]
        super().__init__(*stem, nn.MaxPool2d(3, stride=2, padding=1), *stages, *head)


_XRES = dict(first_conv="0.0", classifier="11")


@register(input="spectrogram", weights="timm/resnet18d.ra2_in1k", **_XRES)
def xresnet18(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """xresnet18 on the log-mel spectrogram (11.2 M params), ImageNet-pretrainable via timm resnet18d."""
    return XResNet(1, [2, 2, 2, 2], c_in=1, n_out=n_classes)


@register(input="spectrogram", weights="timm/resnet34d.ra2_in1k", **_XRES)
def xresnet34(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """xresnet34 on the log-mel spectrogram (21.3 M params), ImageNet-pretrainable via timm resnet34d."""
    return XResNet(1, [3, 4, 6, 3], c_in=1, n_out=n_classes)


@register(input="spectrogram", weights="timm/resnet50d.ra2_in1k", **_XRES)
def xresnet50(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """xresnet50 on the log-mel spectrogram (23.5 M params), ImageNet-pretrainable via timm resnet50d."""
    return XResNet(4, [3, 4, 6, 3], c_in=1, n_out=n_classes)


class Conv1dRaw(nn.Module):
    """The published raw-waveform baseline: one wide strided Conv1d, then an MLP."""

    def __init__(self, n_classes: int, n_samples: int, p: float = 0.4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, kernel_size=4096, stride=1000, padding=2047), nn.BatchNorm1d(8), nn.ReLU(inplace=True)
        )
        n_frames = (n_samples + 2 * 2047 - 4096) // 1000 + 1
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * n_frames, 500), nn.ReLU(inplace=True), nn.Dropout(p),
            nn.Linear(500, 50), nn.ReLU(inplace=True), nn.Dropout(p), nn.Linear(50, 25), nn.ReLU(inplace=True),
            nn.Dropout(p), nn.Linear(25, n_classes),
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
            return [nn.Conv1d(ni, nf, k, padding=k // 2), nn.BatchNorm1d(nf), nn.ReLU(inplace=True), nn.MaxPool1d(2), nn.Dropout(p)]

        self.features = nn.Sequential(*block(n_mfcc, 128, 5, 0.4), *block(128, 256, 3, 0.5))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Dropout(0.6),
            nn.Linear(128, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.flatten(1, -2)))  # (B, 1, n_mfcc, T) → (B, n_mfcc, T)


@register(input="mfcc", classifier="head.5")
def mfcc_cnn1d(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """40 MFCCs → Conv1d 128 (k5) and 256 (k3) blocks, dropout 0.4/0.5/0.6, dense head."""
    return MFCCCNN1d(n_classes, cfg.n_mfcc)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


from learner import efficient  # noqa: E402, F401  (registers the timm families)
