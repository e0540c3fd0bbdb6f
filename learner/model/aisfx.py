"""The aisfx CNN (Ma & Lerch, ISMIR 2022): a 9-layer CNN trained on sound-effects libraries, as a backbone.

The network is the wheel's `EmbeddingNet('max', 3, 1, 64)` (DCASE cross-task baseline layout): four
blocks of two 3×3 conv + BN + ReLU, 2×2 max pooling after the first three, then the mean over mel bands
and the max over time → 512 values per 100-frame block. The weights ship inside the PyPI wheel
`aisfx==0.1.2` (`aisfx/models/checkpoint.pth`, a pickle of (state_dict, dataset table) holding numpy
scalars); `aisfx_adapter` keeps the `embedding_net.*` tensors and drops the nine dataset heads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from learner.audio.frontends import BlockFrontEnd
from learner.model.backbone_registry import WeightsSource, register_backbone

AISFX_FRONT = BlockFrontEnd(
    sample_rate=44100, n_fft=2048, hop_length=1024, pad_mode="constant",  # the STFT (zero-padded, centred)
    n_mels=96, f_min=0.0, f_max=22050.0, mel_scale="htk", mel_norm="l1",  # the mel bank
    # log10(mel · 10⁴ + 1), over the authors' min-max constant of their training spectrograms, peak-normalised
    compression="log10_shift", shift_scale=10000.0, divisor=9.457798957824707, peak_normalise=True,
    block_frames=100,  # 100-frame inputs, half-overlapped (aisfx's inference)
)

AISFX_WEIGHTS = WeightsSource(
    file="checkpoint.pth",
    sha256="499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5",
    package="aisfx==0.1.2",
    member="aisfx/models/checkpoint.pth",
    how="pip install --no-deps aisfx==0.1.2 (make does it; never without --no-deps: its pins are old), "
    "or let earshot fetch that wheel once with the network",
)

AISFX_LICENCE = "model weights CC BY 4.0, code MIT (aisfx 0.1.2, Alison B. Ma and Alexander Lerch)"
AISFX_CITATION = (
    'Alison B. Ma and Alexander Lerch, "Representation Learning for the Automatic Indexing of Sound '
    'Effects Libraries", Proc. 23rd International Society for Music Information Retrieval Conference '
    "(ISMIR), 2022, pp. 866-875."
)


class ConvBlock(nn.Module):
    """Two 3×3 conv + BN + ReLU, then max pooling (kernel `pool`)."""

    def __init__(self, c_in: int, c_out: int, pool: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pool = pool
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, self.pool) if self.pool > 1 else x


class AisfxNet(nn.Module):
    """(N, frames, n_mels) → (N, 512): mean over mel bands, max over time of the last block."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = [1, width, 2 * width, 4 * width, 8 * width]
        self.conv_block1 = ConvBlock(w[0], w[1], 2)
        self.conv_block2 = ConvBlock(w[1], w[2], 2)
        self.conv_block3 = ConvBlock(w[2], w[3], 2)
        self.conv_block4 = ConvBlock(w[3], w[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # (N, 1, frames, mels)
        for block in (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4):
            x = block(x)
        return x.mean(dim=3).amax(dim=2)


def aisfx_adapter(checkpoint: object) -> dict[str, torch.Tensor]:
    """The wheel's checkpoint ((state_dict, datasets) or a state dict) → AisfxNet's state dict."""
    sd = checkpoint[0] if isinstance(checkpoint, tuple | list) else checkpoint
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


@register_backbone(
    "aisfx", front=AISFX_FRONT, emb_dim=512, weights=AISFX_WEIGHTS, adapter=aisfx_adapter,
    licence=AISFX_LICENCE, citation=AISFX_CITATION,
)
def aisfx() -> nn.Module:
    """aisfx CNN (Ma & Lerch 2022), sound-effects libraries; 44.1 kHz, 2.3 s blocks, 512-d."""
    return AisfxNet()
