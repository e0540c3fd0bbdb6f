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

from pathlib import Path

import numpy as np
import torch
from torch import nn

from learner.audio.frontends import BlockFrontEnd, filters_of, stft_window
from learner.model.backbone_registry import (  # noqa: F401  (the registry's names, re-exported)
    BackboneSpec,
    WeightsSource,
    get_backbone,
    list_backbones,
    register_backbone,
)


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
        self.register_buffer("window", torch.from_numpy(stft_window(front)).float())
        self.register_buffer("fb", torch.from_numpy(filters_of(front)).float())  # (n/2 + 1, n_mels)
        if dft:
            t = torch.arange(n, dtype=torch.float64)
            k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
            w = torch.from_numpy(stft_window(front))
            basis = torch.cat([torch.cos(2 * np.pi * k * t / n) * w, -torch.sin(2 * np.pi * k * t / n) * w])
            self.register_buffer("basis", basis.float()[:, None], persistent=False)

    def onnx_form(self) -> BlockFeatures:
        return BlockFeatures(self.front, dft=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        f = self.front
        if f.peak_normalise:
            peak = wave.abs().amax(dim=-1, keepdim=True)
            wave = wave / torch.where(peak > 0, peak, torch.ones_like(peak))
        if f.input_scale != 1.0:
            wave = wave * f.input_scale
        if self.dft:
            pad = wave[:, None]
            if f.center:
                pad = nn.functional.pad(pad, (f.n_fft // 2, f.n_fft // 2), mode=f.pad_mode)
            spec = nn.functional.conv1d(pad, self.basis, stride=f.hop_length)  # (N, 2K, frames)
            re, im = spec.chunk(2, dim=1)
            power = (re * re + im * im).transpose(1, 2)
        else:
            spec = torch.stft(
                wave,
                f.n_fft,
                f.hop_length,
                window=self.window,
                center=f.center,
                pad_mode=f.pad_mode,
                return_complex=True,
            )
            power = (spec.real**2 + spec.imag**2).transpose(1, 2)  # (N, frames, n/2 + 1)
        mel = power @ self.fb
        if f.compression == "log10_shift":
            return torch.log10(mel * f.shift_scale + 1.0) / f.divisor
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        if f.top_db is not None:  # each clip's own peak
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - f.top_db)
        if f.out_scale != 1.0 or f.out_offset != 0.0:
            db = db * f.out_scale + f.out_offset
        return db


def to_blocks(feats: torch.Tensor, front: BlockFrontEnd) -> torch.Tensor:
    """(N, frames, n_mels) → (N, blocks, block_frames, n_mels), the last block zero-padded.

    The block count is plain arithmetic on the clip length, so it is fixed (a Python int) in an exported
    graph, whose clip length is fixed too; traced, the ceiling division would be truncated instead."""
    if front.block_frames is None:
        return feats[:, None]
    b, step = front.block_frames, front.step_frames
    frames = int(feats.shape[1])
    count = front.n_blocks(frames)
    need = b + step * (count - 1)
    if need > frames:
        feats = nn.functional.pad(feats, (0, 0, 0, need - frames))
    return torch.stack([feats[:, i * step : i * step + b] for i in range(count)], dim=1)  # ONNX: no Unfold


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
        return self._blocks_of(self.features(waves))

    def _blocks_of(self, feats: torch.Tensor) -> torch.Tensor:
        blocks = to_blocks(feats, self.spec.front)  # (N, B, frames, mels)
        n, count = blocks.shape[:2]
        out = self.net(blocks.reshape(n * count, *blocks.shape[2:]))
        return out.reshape(n, count, -1)

    def from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, frames, n_mels) front-end features → (N, dim): what follows the front end (the ONNX export
        keeps the front end in float32 and quantizes only this part)."""
        e = self._blocks_of(feats)
        return torch.cat([e.mean(dim=1), e.amax(dim=1)], dim=1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.dim() == 3:
            waves = waves.squeeze(1)
        return self.from_features(self.features(waves))

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
