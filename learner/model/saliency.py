"""Which time–frequency regions drove a prediction, drawn over the log-mel the model saw (torch backend).

Two methods on the model's own forward pass (the same `AudioClassifier` the Predictor runs):
- "gradcam": Grad-CAM on the last stage of the network that contains a Conv2d (xresnet: the last residual
  stage), upsampled to the log-mel grid. That stage is 1/32 of the input: 4×7 cells for 5 s × 128 mels, but
  only 2×2 for 1 s × 64 mels, where it says nothing about *where*.
- "gradient": |d logit / d log-mel| (input gradient), lightly smoothed: fine-grained, a little noisier. MFCC
  models get it through the DCT; waveform models get it over time only.
"auto" picks Grad-CAM when the last stage keeps at least MIN_CAM_CELLS cells on both axes, else the gradient.

The explainer works on a private copy of the model: it registers hooks, and hooks on the Predictor's model
would fire inside concurrent inference requests.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learner.config import AudioConfig
from learner.model.frontend import AudioClassifier, LogMel

METHODS = ("auto", "gradcam", "gradient")
MIN_CAM_CELLS = 4


@dataclass
class Saliency:
    """`logmel` (n_mels, frames) in dB before normalisation — the model's input view — and `heat` (same shape,
    0–1)."""

    logmel: np.ndarray
    heat: np.ndarray
    target: int
    method: str  # "gradcam" | "gradient" | "gradient (time only)"
    layer: str = ""


def _last_conv_stage(net: nn.Module) -> tuple[str, nn.Module] | None:
    """The last top-level child of `net` that contains a Conv2d (None for 1-D nets)."""
    found = None
    for name, child in net.named_children():
        if any(isinstance(m, nn.Conv2d) for m in child.modules()):
            found = (name, child)
    return found


def _find_logmel(model: AudioClassifier) -> LogMel | None:
    return next((m for m in model.frontend.modules() if isinstance(m, LogMel)), None)


def _normalise(x: torch.Tensor) -> np.ndarray:
    x = x.detach().float().clamp_min(0)
    peak = float(x.max())
    return (x / peak).cpu().numpy() if peak > 0 else np.zeros(tuple(x.shape), dtype=np.float32)


def _smooth(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Box blur (k×k) of a (freq, frames) map: input gradients are speckled cell by cell."""
    return F.avg_pool2d(x[None, None], k, stride=1, padding=k // 2, count_include_pad=False)[0, 0]


class Explainer:
    """Saliency for one model. Thread-safe: one computation at a time on a private copy of the model."""

    def __init__(self, model: AudioClassifier, cfg: AudioConfig) -> None:
        self.model = copy.deepcopy(model).float().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = next(self.model.parameters()).device
        self.cfg = cfg
        self.view = model.frontend.view
        self.logmel = _find_logmel(self.model)
        if self.logmel is None:  # waveform models see no log-mel; draw one with the model's AudioConfig
            self.logmel = LogMel(cfg).to(self.device)
        self.stage = _last_conv_stage(self.model.net)
        self.cam_shape: tuple[int, int] = (0, 0)
        if self.stage is not None:  # one dry run tells how coarse Grad-CAM would be
            shape: list[tuple[int, ...]] = []
            h = self.stage[1].register_forward_hook(lambda m, i, out: shape.append(tuple(out.shape)))
            with torch.no_grad():
                self.model(torch.zeros(1, cfg.n_samples, device=self.device))
            h.remove()
            self.cam_shape = shape[0][-2:] if shape and len(shape[0]) == 4 else (0, 0)
        self._lock = threading.Lock()

    def default_method(self) -> str:
        """Grad-CAM when its map is fine enough to localise anything, else the input gradient."""
        return "gradcam" if min(self.cam_shape) >= MIN_CAM_CELLS else "gradient"

    def __call__(self, wave: np.ndarray, target: int | None = None, method: str = "auto") -> Saliency:
        """`wave`: one prepared clip (n_samples,), as `Predictor.prepare` returns. `target` defaults to the
        top class."""
        if method not in METHODS:
            raise ValueError(f"unknown saliency method {method!r}; choose one of {METHODS}")
        method = self.default_method() if method == "auto" else method
        if method == "gradcam" and not min(self.cam_shape):
            raise ValueError(
                f"{type(self.model.net).__name__} has no 2-D conv stage for Grad-CAM; use method='gradient'"
            )
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).reshape(1, 1, -1).to(self.device)
        with self._lock, torch.inference_mode(False), torch.enable_grad():
            return self._explain(x, target, method)

    def _explain(self, x: torch.Tensor, target: int | None, method: str) -> Saliency:
        seen: dict[str, torch.Tensor] = {}
        hooks = []
        if self.view != "waveform":

            def grab_logmel(module, inputs, out):  # the log-mel becomes a leaf we can differentiate against
                leaf = out.detach().requires_grad_(True)
                seen["logmel"] = leaf
                return leaf

            hooks.append(self.logmel.register_forward_hook(grab_logmel))
        else:
            x = x.requires_grad_(True)
        if method == "gradcam":
            hooks.append(self.stage[1].register_forward_hook(lambda m, i, out: seen.__setitem__("act", out)))
        try:
            logits = self.model(x)[0]
        finally:
            for h in hooks:
                h.remove()
        target = int(logits.argmax()) if target is None else int(target)
        if not 0 <= target < logits.numel():
            raise ValueError(
                f"target class {target} is out of range (the model has {logits.numel()} classes)"
            )
        if self.view == "waveform":
            with torch.no_grad():
                logmel = self.logmel(x.detach())[0, 0]
        else:
            logmel = seen["logmel"][0, 0]
        shape = tuple(logmel.shape)
        if method == "gradcam":
            act = seen["act"]
            (grad,) = torch.autograd.grad(logits[target], act)
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * act).sum(dim=1, keepdim=True))
            heat = F.interpolate(cam, size=shape, mode="bilinear", align_corners=False)[0, 0]
            return Saliency(logmel.detach().cpu().numpy(), _normalise(heat), target, "gradcam", self.stage[0])
        if self.view == "waveform":
            (grad,) = torch.autograd.grad(logits[target], x)
            energy = F.avg_pool1d(grad.abs()[0], self.cfg.hop_length, self.cfg.hop_length, ceil_mode=True)[0]
            energy = F.interpolate(energy[None, None], size=shape[1], mode="linear", align_corners=False)[
                0, 0
            ]
            heat = energy[None, :].expand(shape)
            return Saliency(logmel.detach().cpu().numpy(), _normalise(heat), target, "gradient (time only)")
        (grad,) = torch.autograd.grad(logits[target], seen["logmel"])
        heat = _smooth(grad[0, 0].abs())
        return Saliency(logmel.detach().cpu().numpy(), _normalise(heat), target, "gradient")
