"""XResNet with fastai's exact module layout (state dicts are interchangeable with
`fastai.vision.models.xresnet`, tested), so that inference never pays fastai's 4–5 s import."""

from __future__ import annotations

import torch
from torch import nn

from learner.config import AudioConfig
from learner.model.registry import register
from learner.weights import PretrainedError

# fastai's layout: stem ConvLayers, MaxPool, 4 stages of ResBlocks, pool, flatten, dropout, linear (index 11)


def _conv_layer(
    ni: int, nf: int, ks: int = 3, stride: int = 1, act: bool = True, zero_bn: bool = False
) -> nn.Sequential:
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
            path = [
                _conv_layer(ni, nh, 1),
                _conv_layer(nh, nh, 3, stride),
                _conv_layer(nh, nf, 1, act=False, zero_bn=True),
            ]
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
    def __init__(
        self, expansion: int, layers: list[int], c_in: int = 1, n_out: int = 1000, p: float = 0.0
    ) -> None:
        stem_szs = [c_in, 32, 32, 64]
        stem = [_conv_layer(stem_szs[i], stem_szs[i + 1], 3, stride=2 if i == 0 else 1) for i in range(3)]
        szs = [64 // expansion, 64, 128, 256, 512]
        stages = [
            nn.Sequential(
                *[
                    ResBlock(
                        expansion,
                        szs[i] if j == 0 else szs[i + 1],
                        szs[i + 1],
                        (1 if i == 0 else 2) if j == 0 else 1,
                    )
                    for j in range(n)
                ]
            )
            for i, n in enumerate(layers)
        ]
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(szs[-1] * expansion, n_out)]
        super().__init__(*stem, nn.MaxPool2d(3, stride=2, padding=1), *stages, *head)


CLASSIFIER = "11"  # the final Linear: what ImageNet transfer drops and fine-tuning trains first


def resnetd_to_xresnet(
    sd: dict[str, torch.Tensor], model: nn.Module, timm_name: str | None = None, classifier: str = "11"
) -> dict[str, torch.Tensor]:
    """Map a timm resnet*d state dict onto fastai-layout XResNet keys, in order (same network).

    A safetensors file stores its tensors sorted by name, not in the network's order, so with `timm_name`
    the source is first put in the order of timm's own module (BatchNorm counters are skipped both sides).
    The classifier is dropped (new task); an RGB stem is folded into the model's input channels by
    summing over colour (the one-channel spectrogram sees the sum of what the three filters saw).
    """
    if timm_name is not None:
        import timm
        import torch

        with torch.device("meta"):
            order = list(timm.create_model(timm_name, pretrained=False).state_dict())
        sd = {k: sd[k] for k in order if k in sd}
    target = [
        (k, v)
        for k, v in model.state_dict().items()
        if not k.startswith(classifier + ".") and not k.endswith("num_batches_tracked")
    ]
    source = [
        (k, v) for k, v in sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    ]
    if len(source) != len(target):
        raise PretrainedError(f"weights do not fit: {len(source)} tensors for {len(target)} in the model")
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (tk, tv) in zip(source, target, strict=True):
        if sv.shape != tv.shape and sv.dim() == 4 and sv.shape[1] == 3 and tv.shape[1] != 3:
            sv = sv.sum(dim=1, keepdim=True).repeat(1, tv.shape[1], 1, 1) / tv.shape[1]
        if sv.shape != tv.shape:
            raise PretrainedError(f"weights do not fit: {sk} {tuple(sv.shape)} → {tk} {tuple(tv.shape)}")
        out[tk] = sv.clone()
    out.update(
        {
            k: v.clone()
            for k, v in model.state_dict().items()
            if k.endswith("num_batches_tracked") and not k.startswith(classifier + ".")
        }
    )
    return out


def resnetd_adapter(sd: dict[str, torch.Tensor], model: nn.Module, spec) -> dict[str, torch.Tensor]:
    """The registry's adapter for timm resnet*d weights: ordered as timm's own network, then by position (a
    state dict already in our layout is matched by name)."""
    if not any(k.startswith("conv1.") for k in sd):
        from learner.model.efficient import timm_to_model

        return timm_to_model(sd, model, spec.first_conv, spec.classifier)
    timm_name = spec.weights.split("/")[-1].split(".")[0] if spec.weights else None
    return resnetd_to_xresnet(sd, model, timm_name, spec.classifier)


_XRES = dict(first_conv="0.0", classifier=CLASSIFIER, adapter=resnetd_adapter)


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
