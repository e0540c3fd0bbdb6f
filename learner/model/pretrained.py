"""Where starting weights come from: ImageNet (timm resnet-d, mapped onto XResNet), a weights file,
or an earlier earshot model (its body; a fresh head for the new classes). No source → an error, never
a quiet random init.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from learner.model.registry import ArchSpec, classifier_keys
from learner.model.xresnet import CLASSIFIER

log = logging.getLogger(__name__)

OFFLINE_HINT = "set pretrained=PATH (a downloaded weights file or an earshot model) or pretrained=none"


class PretrainedError(RuntimeError):
    """Starting weights could not be loaded; the message is one line that says what to do."""


def resnetd_to_xresnet(sd: dict[str, torch.Tensor], model: nn.Module, classifier: str = CLASSIFIER) -> dict[str, torch.Tensor]:
    """Map a timm resnet*d state dict onto fastai-layout XResNet keys, in order (same network).

    The classifier (timm's `fc`, the model's `classifier` module) is dropped (new task); an RGB stem is folded
    into the model's input channels by summing over colour (the one-channel spectrogram sees the sum of what
    the three filters saw).
    """
    target = [(k, v) for k, v in model.state_dict().items() if not k.startswith(classifier + ".")]
    source = [(k, v) for k, v in sd.items() if not k.startswith("fc.")]
    if len(source) != len(target):
        raise PretrainedError(f"weights do not fit: {len(source)} tensors for {len(target)} in the model")
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (tk, tv) in zip(source, target, strict=True):
        if sv.shape != tv.shape and sv.dim() == 4 and sv.shape[1] == 3 and tv.shape[1] != 3:
            sv = sv.sum(dim=1, keepdim=True).repeat(1, tv.shape[1], 1, 1) / tv.shape[1]
        if sv.shape != tv.shape:
            raise PretrainedError(f"weights do not fit: {sk} {tuple(sv.shape)} → {tk} {tuple(tv.shape)}")
        out[tk] = sv.clone()
    return out


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _imagenet_state_dict(spec: ArchSpec) -> dict[str, torch.Tensor]:
    if spec.weights is None:
        raise PretrainedError(f"{spec.name} has no ImageNet weights; set pretrained=none")
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(spec.weights, "model.safetensors")
    except Exception as e:  # offline, DNS, HTTP: all mean the same thing to the user
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise PretrainedError(
            f"ImageNet weights need the network ({spec.weights} on the Hugging Face Hub: {reason}); {OFFLINE_HINT}"
        ) from None
    return _load_weights_file(Path(path))


def load_pretrained(model: nn.Module, spec: ArchSpec, source: str) -> str:
    """Load starting weights into `model` in place; returns a short description of what was loaded.

    `source`: "none", "imagenet", a weights file (.safetensors/.pth of the timm network), or an earshot
    model directory / Hub id (its body, not its head).
    """
    if source == "none":
        return "none (random init)"
    if source == "imagenet":
        _load_without_head(model, spec, resnetd_to_xresnet(_imagenet_state_dict(spec), model, _head(spec)), spec.weights)
        return f"imagenet ({spec.weights})"
    path = Path(source)
    if path.is_file():
        sd = _load_weights_file(path)
        if any(k.startswith("conv1.") for k in sd):
            _load_without_head(model, spec, resnetd_to_xresnet(sd, model, _head(spec)), str(path))
            return f"imagenet file {path}"
        return _load_body(model, spec, sd, str(path))
    return load_from_earshot(model, spec, source)


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
        raise PretrainedError(f"pretrained={ref} is a {cfg['arch']} model; train with arch={cfg['arch']} to reuse it")
    return _load_body(model, spec, sd, ref)


def _head(spec: ArchSpec) -> str:
    if not spec.classifier:
        raise PretrainedError(f"{spec.name} names no classifier in the registry: cannot tell its head from its body")
    return spec.classifier


def _load_without_head(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> None:
    """Load everything but the classifier; strict about the rest: only the classifier's keys may be missing,
    nothing may be unexpected or of the wrong shape (else the starting weights were not what they claimed)."""
    head = set(classifier_keys(spec, model.state_dict()))
    sd = {k: v for k, v in sd.items() if k not in head}
    own = model.state_dict()
    wrong = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if wrong:
        raise PretrainedError(f"{name} does not fit {spec.name}: wrong shape {wrong[:3]}")
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if k not in head]
    if missing or result.unexpected_keys:
        raise PretrainedError(f"{name} does not fit {spec.name}: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]} "
                              f"(only the classifier {spec.classifier!r} may be left out)")


def _load_body(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> str:
    _load_without_head(model, spec, sd, name)
    return f"body of {name}"
