"""Where starting weights come from: ImageNet (timm resnet-d, mapped onto XResNet), a weights file,
or an earlier earshot model (its body; a fresh head for the new classes). No source → an error, never
a quiet random init.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of the import, so a job can check the weights before paying for it
    import torch
    from torch import nn

    from learner.model.registry import ArchSpec

from learner.hub import IMAGENET_FILE, PretrainedError, fetch_imagenet  # noqa: F401  (torch-free: jobs check first)

log = logging.getLogger(__name__)


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


def imagenet_to_model(
    sd: dict[str, torch.Tensor], model: nn.Module, spec: ArchSpec
) -> dict[str, torch.Tensor]:
    """timm ImageNet weights fitted to one of our networks: resnet-d → XResNet by position, timm's own
    families by name (stem folded to one channel, ImageNet head dropped)."""
    if any(k.startswith("conv1.") for k in sd) and not any(k.startswith(f"{spec.first_conv}.") for k in sd):
        timm_name = spec.weights.split("/")[-1].split(".")[0] if spec.weights else None
        return resnetd_to_xresnet(sd, model, timm_name, _head(spec))
    from learner.model.efficient import timm_to_model

    return timm_to_model(sd, model, spec.first_conv or "", _head(spec))


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _imagenet_state_dict(spec: ArchSpec) -> dict[str, torch.Tensor]:
    return _load_weights_file(fetch_imagenet(spec.name, spec.weights))


def load_pretrained(model: nn.Module, spec: ArchSpec, source: str) -> str:
    """Load starting weights into `model` in place; returns a short description of what was loaded.

    `source`: "none", "imagenet", a weights file (.safetensors/.pth of the timm network), or an earshot
    model directory / Hub id (its body, not its head).
    """
    if source == "none":
        return "none (random init)"
    if spec.backbone and (source in ("imagenet", "backbone", spec.backbone) or Path(source).is_file()):
        return load_backbone_weights(model, spec.backbone, None if not Path(source).is_file() else source)
    if source == "imagenet":
        _load_without_head(
            model, spec, imagenet_to_model(_imagenet_state_dict(spec), model, spec), spec.weights or ""
        )
        return f"imagenet ({spec.weights})"
    path = Path(source)
    if path.is_file():
        sd = _load_weights_file(path)
        if any(k.startswith("conv1.") or k.startswith(f"{spec.first_conv}.") for k in sd):
            _load_without_head(model, spec, imagenet_to_model(sd, model, spec), str(path))
            return f"imagenet file {path}"
        return _load_body(model, spec, sd, str(path))
    return load_from_earshot(model, spec, source)


def load_backbone_weights(model: nn.Module, backbone: str, path: str | None = None) -> str:
    """A backbone classifier's body from the backbone's published weights (or a file of them); the head
    stays new. "imagenet" (the jobs' default) means this for a backbone arch: its own pretrained start."""
    from learner.model.backbone_weights import backbone_state_dict
    from learner.model.backbones import get_backbone

    bspec = get_backbone(backbone)
    model.backbone.net.load_state_dict(backbone_state_dict(bspec, Path(path) if path else None), strict=True)
    return f"{backbone} ({path or bspec.weights.package or bspec.weights.url})"


def load_from_earshot(model: nn.Module, spec: ArchSpec, ref: str) -> str:
    """Transfer from an earlier earshot model (directory or Hub id): same arch, body only."""
    from learner.hub import resolve
    from learner.modeldir import load_model_dir

    try:
        folder = resolve(ref)
    except Exception as e:
        raise PretrainedError(f"pretrained={ref}: {e}") from None
    cfg, sd = load_model_dir(folder)
    if cfg["arch"] != spec.name:
        raise PretrainedError(
            f"pretrained={ref} is a {cfg['arch']} model; train with arch={cfg['arch']} to reuse it"
        )
    return _load_body(model, spec, sd, ref)


def _head(spec: ArchSpec) -> str:
    if not spec.classifier:
        raise PretrainedError(
            f"{spec.name} names no classifier in the registry: cannot tell its head from its body"
        )
    return spec.classifier


def _load_without_head(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> None:
    """Load everything but the classifier; strict about the rest: only the classifier's keys may be missing,
    nothing may be unexpected or of the wrong shape (else the starting weights were not what they claimed)."""
    from learner.model.registry import classifier_keys

    head = set(classifier_keys(spec, model.state_dict()))
    sd = {k: v for k, v in sd.items() if k not in head}
    own = model.state_dict()
    wrong = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if wrong:
        raise PretrainedError(f"{name} does not fit {spec.name}: wrong shape {wrong[:3]}")
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if k not in head]
    if missing or result.unexpected_keys:
        raise PretrainedError(
            f"{name} does not fit {spec.name}: missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]} "
            f"(only the classifier {spec.classifier!r} may be left out)"
        )


def _load_body(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> str:
    _load_without_head(model, spec, sd, name)
    return f"body of {name}"
