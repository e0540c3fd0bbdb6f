"""Where starting weights come from: ImageNet (timm resnet-d, mapped onto XResNet), a weights file,
or an earlier earshot model (its body; a fresh head for the new classes). No source → an error, never
a quiet random init.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from learner.models import ArchSpec

log = logging.getLogger(__name__)

OFFLINE_HINT = "use --pretrained PATH (a downloaded weights file or an earshot model) or --pretrained none"


class PretrainedError(RuntimeError):
    """Starting weights could not be loaded; the message is one line that says what to do."""


def resnetd_to_xresnet(sd: dict[str, torch.Tensor], model: nn.Module, timm_name: str | None = None) -> dict[str, torch.Tensor]:
    """Map a timm resnet*d state dict onto fastai-layout XResNet keys, in order (same network).

    A safetensors file stores its tensors sorted by name, not in the network's order, so with `timm_name`
    the source is first put in the order of timm's own module (BatchNorm counters are skipped both sides).
    The classifier is dropped (new task); an RGB stem is folded into the model's input channels by
    summing over colour (the one-channel spectrogram sees the sum of what the three filters saw).
    """
    if timm_name is not None:
        import timm

        with torch.device("meta"):
            order = list(timm.create_model(timm_name, pretrained=False).state_dict())
        sd = {k: sd[k] for k in order if k in sd}
    target = [(k, v) for k, v in model.state_dict().items()
              if not k.startswith("11.") and not k.endswith("num_batches_tracked")]
    source = [(k, v) for k, v in sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise PretrainedError(f"weights do not fit: {len(source)} tensors for {len(target)} in the model")
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (tk, tv) in zip(source, target, strict=True):
        if sv.shape != tv.shape and sv.dim() == 4 and sv.shape[1] == 3 and tv.shape[1] != 3:
            sv = sv.sum(dim=1, keepdim=True).repeat(1, tv.shape[1], 1, 1) / tv.shape[1]
        if sv.shape != tv.shape:
            raise PretrainedError(f"weights do not fit: {sk} {tuple(sv.shape)} → {tk} {tuple(tv.shape)}")
        out[tk] = sv.clone()
    out.update({k: v.clone() for k, v in model.state_dict().items()
                if k.endswith("num_batches_tracked") and not k.startswith("11.")})
    return out


def imagenet_to_model(sd: dict[str, torch.Tensor], model: nn.Module, spec: ArchSpec) -> dict[str, torch.Tensor]:
    """timm ImageNet weights fitted to one of our networks: resnet-d → XResNet by position, timm's own
    families by name (stem folded to one channel, ImageNet head dropped)."""
    if any(k.startswith("conv1.") for k in sd) and not any(k.startswith(f"{spec.first_conv}.") for k in sd):
        timm_name = spec.weights.split("/")[-1].split(".")[0] if spec.weights else None
        return resnetd_to_xresnet(sd, model, timm_name)
    from learner.efficient import timm_to_model

    return timm_to_model(sd, model, spec.first_conv or "", spec.classifier or "")


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _imagenet_state_dict(spec: ArchSpec) -> dict[str, torch.Tensor]:
    if spec.weights is None:
        raise PretrainedError(f"{spec.name} has no ImageNet weights; use --pretrained none")
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
        model.load_state_dict(imagenet_to_model(_imagenet_state_dict(spec), model, spec), strict=False)
        return f"imagenet ({spec.weights})"
    path = Path(source)
    if path.is_file():
        sd = _load_weights_file(path)
        if any(k.startswith("conv1.") or k.startswith(f"{spec.first_conv}.") for k in sd):
            model.load_state_dict(imagenet_to_model(sd, model, spec), strict=False)
            return f"imagenet file {path}"
        return _load_body(model, spec, sd, str(path))
    return load_from_earshot(model, spec, source)


def load_from_earshot(model: nn.Module, spec: ArchSpec, ref: str) -> str:
    """Transfer from an earlier earshot model (directory or Hub id): same arch, body only."""
    from learner.modeldir import load_model_dir, resolve

    try:
        folder = resolve(ref)
    except Exception as e:
        raise PretrainedError(f"--pretrained {ref}: {e}") from None
    cfg, sd = load_model_dir(folder)
    if cfg["arch"] != spec.name:
        raise PretrainedError(f"--pretrained {ref} is a {cfg['arch']} model; train with --arch {cfg['arch']} to reuse it")
    return _load_body(model, spec, sd, ref)


def _load_body(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> str:
    head = spec.classifier or ""
    body = {k: v for k, v in sd.items() if not (head and k.startswith(head + "."))}
    own = model.state_dict()
    missing = [k for k in own if k not in body and not (head and k.startswith(head + "."))]
    unexpected = [k for k in body if k not in own]
    wrong = [k for k in body if k in own and body[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise PretrainedError(
            f"{name} does not fit {spec.name}: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    model.load_state_dict(body, strict=False)
    return f"body of {name}"
