"""Efficient ImageNet families from timm with a one-channel stem: cheaper than xresnet18 on a CPU.

timm builds the network (`in_chans=1`, a fresh `num_classes` head); ImageNet weights come from the Hub
(online only) and are adapted here the way timm's own loader does: the RGB stem summed to one channel,
the ImageNet classifier dropped, and nothing else allowed to be missing.
"""

from __future__ import annotations

import torch
from torch import nn

from learner.config import AudioConfig
from learner.model.registry import register


def _timm(name: str, n_classes: int) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, in_chans=1, num_classes=n_classes)


def timm_adapter(sd: dict[str, torch.Tensor], model: nn.Module, spec) -> dict[str, torch.Tensor]:
    """The registry's adapter for timm's own families: by name, stem folded, ImageNet head dropped."""
    return timm_to_model(sd, model, spec.first_conv, spec.classifier)


_TIMM = dict(input="spectrogram", first_conv="conv_stem", classifier="classifier", adapter=timm_adapter)


@register(weights="timm/mobilenetv3_large_100.ra_in1k", **_TIMM)
def mobilenetv3_large_100(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """timm MobileNetV3-Large 1.0 on the log-mel spectrogram (4.2 M params), ImageNet via timm."""
    return _timm("mobilenetv3_large_100", n_classes)


@register(weights="timm/efficientnet_b0.ra_in1k", **_TIMM)
def efficientnet_b0(n_classes: int, cfg: AudioConfig) -> nn.Module:
    """timm EfficientNet-B0 on the log-mel spectrogram (4.0 M params), ImageNet via timm."""
    return _timm("efficientnet_b0", n_classes)


def timm_to_model(
    sd: dict[str, torch.Tensor], model: nn.Module, first_conv: str, classifier: str
) -> dict[str, torch.Tensor]:
    """A timm ImageNet state dict made to fit `model` (same timm network, other stem channels and head)."""
    from learner.weights import PretrainedError

    own = model.state_dict()
    out = {k: v for k, v in sd.items() if not k.startswith(classifier + ".")}
    stem = first_conv + ".weight"
    if stem in out and stem in own and out[stem].shape[1] != own[stem].shape[1]:
        out[stem] = (
            out[stem].sum(dim=1, keepdim=True).repeat(1, own[stem].shape[1], 1, 1) / own[stem].shape[1]
        )
    missing = [k for k in own if k not in out and not k.startswith(classifier + ".")]
    unexpected = [k for k in out if k not in own]
    wrong = [k for k in out if k in own and out[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise PretrainedError(
            f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    return out
