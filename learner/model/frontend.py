"""The model's front end as torch modules: waveform batch → the input view an architecture needs.

Modules, not functions, so the mel filterbank and DCT matrix are buffers that follow `.to(device)` and
so the same objects serve the fastai batch transform (training), the Predictor and the ONNX graph.
Every view keeps leading dims free: (B, 1, samples) → (B, 1, freq, frames) for spectrogram and MFCC,
(B, 1, samples) unchanged for the raw waveform.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from learner.config import AudioConfig

VIEWS = ("spectrogram", "mfcc", "waveform")


class LogMel(nn.Module):
    """Power mel spectrogram in dB. `top_db` clamps relative to each clip's own peak (per example)."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,  # power STFT, centred
            power=2.0, center=True, pad_mode="reflect",
            n_mels=cfg.n_mels, f_min=cfg.f_min, f_max=cfg.f_max, norm="slaney", mel_scale="slaney",
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=cfg.top_db)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.mel(x))


class MFCC(nn.Module):
    """`n_mfcc` cepstral coefficients from the same log-mel (DCT-II, orthonormal)."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        self.logmel = LogMel(cfg)
        dct = torchaudio.functional.create_dct(cfg.n_mfcc, cfg.n_mels, norm="ortho")  # (n_mels, n_mfcc)
        self.register_buffer("dct", dct)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.logmel(x)  # (..., n_mels, frames)
        return torch.matmul(mel.transpose(-1, -2), self.dct).transpose(-1, -2)


class Normalize(nn.Module):
    """Standardise features: dataset mean/std ("dataset"), each example on its own ("clip"), or not at all."""

    def __init__(self, mode: str, stats: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        if mode not in ("dataset", "clip", "none"):
            raise ValueError(f"unknown normalisation {mode!r}")
        self.mode = mode
        self.register_buffer("mean", torch.tensor(float(stats[0])))
        self.register_buffer("std", torch.tensor(max(float(stats[1]), 1e-6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "dataset":
            return (x - self.mean) / self.std
        if self.mode == "clip":
            dims = tuple(range(1, x.dim()))
            return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-5)
        return x


class FrontEnd(nn.Module):
    """Waveforms (B, 1, samples) → normalised features for one `view`."""

    def __init__(self, cfg: AudioConfig, view: str) -> None:
        super().__init__()
        if view not in VIEWS:
            raise ValueError(f"unknown input view {view!r}; expected one of {VIEWS}")
        self.view = view
        if view == "spectrogram":
            self.features: nn.Module = LogMel(cfg)
        elif view == "mfcc":
            self.features = MFCC(cfg)
        else:
            self.features = nn.Identity()
        self.norm = Normalize(cfg.norm if view != "waveform" else "none", cfg.norm_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.features(x))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Features before normalisation (used to measure dataset statistics)."""
        return self.features(x)


class SpecMasking(nn.Module):
    """SpecAugment's masking as a module (the fastai transform `learner.train.transforms.SpecAugment` wraps
    it):
    on (B, C, freq, frames), `n_masks` frequency and time masks, each example its own.

    Applied after normalisation, so a masked cell reads 0 = the dataset mean (not silence, not a loud band).
    """

    def __init__(self, freq_mask: int, time_mask: int, n_masks: int = 2) -> None:
        super().__init__()
        self.n_masks = n_masks
        self.freq = (
            torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True) if freq_mask > 0 else None
        )
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True) if time_mask > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.n_masks):
            if self.freq is not None:
                x = self.freq(x)
            if self.time is not None:
                x = self.time(x)
        return x


class AudioClassifier(nn.Module):
    """Front end + network: fixed-length mono waveforms (B, samples) or (B, 1, samples) → logits.

    This is the whole inference model — what the Predictor runs and what ONNX export traces.
    """

    def __init__(self, frontend: FrontEnd, net: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.net = net

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 2:
            wave = wave.unsqueeze(1)
        return self.net(self.frontend(wave))
