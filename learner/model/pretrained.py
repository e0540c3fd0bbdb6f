"""Where starting weights come from: ImageNet (timm resnet-d, mapped onto XResNet), a weights file,
or an earlier earshot model (its body; a fresh head for the new classes). No source → an error, never
a quiet random init.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of the import, so a job can check the weights before paying for it
    import torch
    from torch import nn

    from learner.model.registry import ArchSpec

log = logging.getLogger(__name__)

IMAGENET_FILE = "model.safetensors"
PROBE_TIMEOUT_S = 2.0  # one HEAD request: an offline machine answers in milliseconds (DNS) or after this


class PretrainedError(RuntimeError):
    """Starting weights could not be loaded; the message is one line that says what to do.

    `problem` is what went wrong and `field` the setting that chose the weights, so a CLI can name its
    own flag instead of the field (`jobs._cli.run`).
    """

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem, self.field = problem, field
        fix = f"; set {field} to a weights file, an earlier earshot model or 'none'" if field else ""
        super().__init__(problem + fix)


def resnetd_to_xresnet(sd: dict[str, torch.Tensor], model: nn.Module, timm_name: str | None = None,
                       classifier: str = "11") -> dict[str, torch.Tensor]:
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
    target = [(k, v) for k, v in model.state_dict().items()
              if not k.startswith(classifier + ".") and not k.endswith("num_batches_tracked")]
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
                if k.endswith("num_batches_tracked") and not k.startswith(classifier + ".")})
    return out


def imagenet_to_model(sd: dict[str, torch.Tensor], model: nn.Module, spec: ArchSpec) -> dict[str, torch.Tensor]:
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


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _unreachable(repo: str, filename: str, timeout_s: float) -> str | None:
    """None when the Hub answers one HEAD request within `timeout_s`, else a short reason (one line).

    huggingface_hub retries a failed request five times with back-off (about 20 s, one stderr line per
    try); probing once first keeps an offline start fast and quiet.
    """
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    from huggingface_hub import constants, hf_hub_url

    url = hf_hub_url(repo, filename, endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    slow = f"no answer from {urlsplit(url).netloc} within {timeout_s:g} s"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None  # the Hub answered; what it said is for the download to judge
    except TimeoutError:
        return slow
    except OSError as e:  # URLError and socket errors
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            return slow
        text = " ".join(str(getattr(reason, "strerror", None) or reason).split())
        return f"{urlsplit(url).netloc}: {text}" if text else type(e).__name__
    return None


def fetch_imagenet(arch: str, weights: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> Path:
    """The local path of `arch`'s ImageNet weights (Hub id `weights`): from the Hugging Face cache, else
    downloaded now. Imports no torch.

    Called before any audio is decoded (`learner.train.check_start`, and by jobs.train before it even
    imports torch), so an offline run fails within `timeout_s` with one line instead of after decoding
    the data and five retries.
    """
    if weights is None:
        raise PretrainedError(f"{arch} has no ImageNet weights (pretrained='imagenet')", field="pretrained")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(weights, IMAGENET_FILE)  # a look in the cache folder: no request, no headers
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    where = f"ImageNet weights for {arch} ({weights} on the Hugging Face Hub) are not cached here"
    if _offline():
        raise PretrainedError(f"{where} and HF_HUB_OFFLINE is set", field="pretrained")
    reason = _unreachable(weights, IMAGENET_FILE, timeout_s)
    if reason:
        raise PretrainedError(f"{where} and the Hub cannot be reached ({reason})", field="pretrained")
    try:
        return Path(hf_hub_download(weights, IMAGENET_FILE))
    except Exception as e:  # DNS, HTTP, a dropped connection: all mean the same thing to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PretrainedError(f"{where} and the download failed ({' '.join(first.split())})", field="pretrained") from None


def _imagenet_state_dict(spec: ArchSpec) -> dict[str, torch.Tensor]:
    return _load_weights_file(fetch_imagenet(spec.name, spec.weights))


def load_pretrained(model: nn.Module, spec: ArchSpec, source: str) -> str:
    """Load starting weights into `model` in place; returns a short description of what was loaded.

    `source`: "none", "imagenet", a weights file (.safetensors/.pth of the timm network), or an earshot
    model directory / Hub id (its body, not its head).
    """
    if source == "none":
        return "none (random init)"
    if source == "imagenet":
        _load_without_head(model, spec, imagenet_to_model(_imagenet_state_dict(spec), model, spec), spec.weights or "")
        return f"imagenet ({spec.weights})"
    path = Path(source)
    if path.is_file():
        sd = _load_weights_file(path)
        if any(k.startswith("conv1.") or k.startswith(f"{spec.first_conv}.") for k in sd):
            _load_without_head(model, spec, imagenet_to_model(sd, model, spec), str(path))
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
        raise PretrainedError(f"{name} does not fit {spec.name}: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]} "
                              f"(only the classifier {spec.classifier!r} may be left out)")


def _load_body(model: nn.Module, spec: ArchSpec, sd: dict[str, torch.Tensor], name: str) -> str:
    _load_without_head(model, spec, sd, name)
    return f"body of {name}"
