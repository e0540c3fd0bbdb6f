"""PANNs CNN10 (Kong et al. 2020), trained on AudioSet, as a backbone (online weights from Zenodo).

The network is `Cnn10` of qiuqiangkong/audioset_tagging_cnn (pytorch/models.py): BatchNorm over the 64
mel bands (`bn0`), four blocks of two 3×3 conv + BN + ReLU with 2×2 average pooling, the mean over mel
bands, max + mean over time, and `fc1` (512 → 512, ReLU) whose output is the embedding. Its front end is
torchlibrosa's: 32 kHz, 1024-point Hann STFT (reflect-padded), hop 320, 64 Slaney mel bands 50–14000 Hz,
10·log10 power. The whole clip is one input (no blocks). `panns_adapter` drops the checkpoint's own
STFT/mel buffers (we compute the same features) and the AudioSet head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from learner.audio.frontends import BlockFrontEnd
from learner.model.backbone_registry import WeightsSource, register_backbone

CNN10_FRONT = BlockFrontEnd(
    sample_rate=32000, n_fft=1024, hop_length=320, pad_mode="reflect",  # the STFT (torchlibrosa's)
    n_mels=64, f_min=50.0, f_max=14000.0, mel_scale="slaney", mel_norm="slaney",  # the mel bank
    compression="db", peak_normalise=False,  # 10·log10 power
    block_frames=None,  # the whole clip is one input
)

CNN10_WEIGHTS = WeightsSource(
    file="Cnn10_mAP=0.380.pth",
    md5="bfb1f1f9968938fa8ef4012b8471f5f6",  # Zenodo record 3987831's published checksum
    url="https://zenodo.org/record/3987831/files/Cnn10_mAP%3D0.380.pth?download=1",
    how="needs the network once (zenodo.org, 20 MB); or pass the downloaded .pth as the weights file",
)

PANNS_LICENCE = "model weights CC BY 4.0 (Zenodo record 3987831), code MIT (audioset_tagging_cnn)"
PANNS_CITATION = (
    'Qiuqiang Kong, Yin Cao, Turab Iqbal, Yuxuan Wang, Wenwu Wang and Mark D. Plumbley, "PANNs: '
    'Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition", IEEE/ACM Transactions '
    "on Audio, Speech, and Language Processing 28 (2020), 2880-2894."
)


class PannsConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2)


class Cnn10Net(nn.Module):
    """(N, frames, 64) log-mel in dB → (N, 512) PANNs embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(64)
        self.conv_block1 = PannsConvBlock(1, 64)
        self.conv_block2 = PannsConvBlock(64, 128)
        self.conv_block3 = PannsConvBlock(128, 256)
        self.conv_block4 = PannsConvBlock(256, 512)
        self.fc1 = nn.Linear(512, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(x.unsqueeze(1).transpose(1, 3)).transpose(1, 3)  # BN over mel bands
        for block in (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4):
            x = F.dropout(block(x), p=0.2, training=self.training)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        return F.relu(self.fc1(F.dropout(x, p=0.5, training=self.training)))


def panns_adapter(checkpoint: object) -> dict[str, torch.Tensor]:
    """Zenodo's {'model': state_dict, ...} → Cnn10Net's state dict (no STFT/mel buffers, no AudioSet head)."""
    sd = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    drop = ("spectrogram_extractor.", "logmel_extractor.", "fc_audioset.")
    return {k: v for k, v in sd.items() if not k.startswith(drop)}


@register_backbone(
    "panns_cnn10", front=CNN10_FRONT, emb_dim=512, weights=CNN10_WEIGHTS, adapter=panns_adapter,
    licence=PANNS_LICENCE, citation=PANNS_CITATION,
)
def panns_cnn10() -> nn.Module:
    """PANNs CNN10 (Kong et al. 2020), AudioSet; 32 kHz, whole clip, 512-d (weights need the network)."""
    return Cnn10Net()
