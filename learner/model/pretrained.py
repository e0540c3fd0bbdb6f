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

from learner.model.xresnet import resnetd_to_xresnet  # noqa: F401 (re-exported)
from learner.weights import IMAGENET_FILE, PretrainedError, fetch_imagenet  # noqa: F401  (torch-free)

log = logging.getLogger(__name__)


def imagenet_to_model(
    sd: dict[str, torch.Tensor], model: nn.Module, spec: ArchSpec
) -> dict[str, torch.Tensor]:
    """Pretrained weights fitted to one of our networks by the architecture's own adapter."""
    if spec.adapter is None:
        raise PretrainedError(
            f"{spec.name} has no weight adapter in the registry, so it cannot start from pretrained weights"
        )
    return spec.adapter(sd, model, spec)


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (never unpickling code), else one line."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors, pickle and zip errors alike: the file is not what was asked for
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise PretrainedError(
            f"{path}: not a weights file (.safetensors or a torch state dict): {first}", field="pretrained"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PretrainedError(f"{path}: holds no state dict of tensors", field="pretrained")
    return sd


def check_pretrained(source: str, spec: ArchSpec) -> None:
    """Read starting weights that are a file or an earlier earshot model now, before any audio is decoded
    (minutes, for a large set), so a wrong source fails in seconds with one line; ImageNet weights are
    fetched now (or found in the cache)."""
    if source == "imagenet":
        fetch_imagenet(spec.name, spec.weights)
    if source in ("none", "imagenet"):
        return
    path = Path(source).expanduser()
    if path.is_file():
        _load_weights_file(path)
        return
    from learner.folder import read_config
    from learner.hub import resolve

    try:
        cfg = read_config(resolve(source))
    except Exception as e:
        raise PretrainedError(f"pretrained={source}: {e}") from None
    if cfg["arch"] != spec.name:
        raise PretrainedError(
            f"pretrained={source} is a {cfg['arch']} model; train with arch={cfg['arch']} to reuse it"
        )


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
    from learner.folder import load_model_dir
    from learner.hub import resolve

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
