"""Google's `speech_embedding` as a torch backbone (`--arch speech_embedding`): frozen heads, fine-tuning,
export, embeddings and search, like aisfx.

The network is the published `embedding_model.onnx` (openwakeword 0.4.0) rebuilt in torch: a 3×3 conv, ReLU
and BatchNorm, then 18 convolutions alternating 1×3 (over mel bands, padded) and 3×1 (over time, valid),
each followed by LeakyReLU(0.2) clamped at −0.4, five max-poolings (three of them over time), and a last 3×1
conv → 96 values per 76-frame block. `speech_embedding_adapter` reads the ONNX file's weights in node order.
Its front end is the published mel graph's, declared as a `BlockFrontEnd`: int16-scaled 16 kHz audio, a
512-point STFT of a 400-sample Hann window every 160 samples (frames not centred), 32 Slaney mel bands
60–3800 Hz, dB floored 80 dB below each clip's peak, then dB / 10 + 2 (openWakeWord's scaling); blocks of 76
frames every 8 (its streaming hop). The ONNX feature graph of `learner.model.speech_embedding` (the demo's
shipped model) is the same computation, tested equal.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from learner.audio.frontends import BlockFrontEnd
from learner.model.backbone_registry import register_backbone
from learner.model.speech_embedding import CITATION, EMBEDDING_WEIGHTS, LICENCE

SPEECH_FRONT = BlockFrontEnd(
    sample_rate=16000, n_fft=512, hop_length=160, win_length=400, center=False,  # the published STFT
    n_mels=32, f_min=60.0, f_max=3800.0, mel_scale="slaney", mel_norm="slaney",  # its mel matrix, exactly
    compression="db", input_scale=32767.0, top_db=80.0, out_scale=0.1, out_offset=2.0, peak_normalise=False,
    block_frames=76, block_hop_frames=8,
)
WIDTHS = (24, 24, 48, 48, 48, 48, 72, 72, 72, 72, 96, 96, 96, 96, 96, 96, 96, 96)  # conv1 … conv18 out
POOL_AFTER = {2: (2, 2), 6: (1, 2), 10: (2, 2), 14: (1, 2), 18: (2, 2)}  # after conv k: (time, mel) kernel
CLAMP = -0.4  # the published graph's Max(x, −0.4) after each LeakyReLU


class SpeechEmbeddingNet(nn.Module):
    """(N, 76·k frames, 32 mels) → (N, 96) for one 76-frame block (the time axis must reduce to 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, 24, 3, bias=False)
        self.bn0 = nn.BatchNorm2d(24, eps=1e-3)
        convs, c_in = [], 24
        for k, c_out in enumerate(WIDTHS, start=1):
            kernel, pad = ((1, 3), (0, 1)) if k % 2 else ((3, 1), (0, 0))
            convs.append(nn.Conv2d(c_in, c_out, kernel, padding=pad))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.last = nn.Conv2d(96, 96, (3, 1), bias=False)

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """(N, frames, 32 mels) → (N, windows, 96): every 76-frame window at hop 8 in one pass (the time
        poolings' strides multiply to 8), as `learner.model.speech_embedding.feature_graph` computes them."""
        x = F.pad(x.unsqueeze(1), (1, 1))  # (N, 1, frames, mels + 2): the published zero padding over mels
        x = F.leaky_relu(self.bn0(F.relu(self.conv0(x))), 0.2).clamp(min=CLAMP)
        for k, conv in enumerate(self.convs, start=1):
            x = F.leaky_relu(conv(x), 0.2).clamp(min=CLAMP)
            if k in POOL_AFTER:
                x = F.max_pool2d(x, POOL_AFTER[k])
        return self.last(x).squeeze(3).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.windows(x).mean(dim=1)


def speech_embedding_adapter(graph: object) -> dict[str, torch.Tensor]:
    """The published ONNX model → SpeechEmbeddingNet's state dict: its Conv nodes in order (BatchNorm
    folded into 18 of them by the converter), and the one BatchNormalization after the first."""
    from onnx import numpy_helper

    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.graph.initializer}
    sd = {key: inits[name] for key, name in _initializer_names(graph).items()}
    sd["bn0.num_batches_tracked"] = torch.tensor(0)
    return sd


def with_weights(graph: object, state_dict: dict[str, torch.Tensor]) -> object:
    """`speech_embedding_adapter` backwards: a copy of the published ONNX model carrying `state_dict`'s
    weights (a fine-tuned SpeechEmbeddingNet), so `feature_graph` and everything built on it serve them."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(graph)
    names = _initializer_names(out)
    missing = sorted(set(names) - set(state_dict))
    if missing:
        raise ValueError(f"not a SpeechEmbeddingNet state dict: no {', '.join(missing[:3])}")
    key_of = {init: key for key, init in names.items()}
    for init in out.graph.initializer:
        if init.name in key_of:
            weight = state_dict[key_of[init.name]].detach().cpu().numpy()
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
    return out


def _initializer_names(graph: object) -> dict[str, str]:
    """SpeechEmbeddingNet state-dict key → the published graph's initializer holding it."""
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    (bn,) = [n for n in graph.graph.node if n.op_type == "BatchNormalization"]
    if len(convs) != 20:
        raise ValueError(f"not the published speech_embedding graph: {len(convs)} convolutions, not 20")
    names = {"conv0.weight": convs[0].input[1], "last.weight": convs[-1].input[1]}
    for k, node in enumerate(convs[1:-1]):
        names[f"convs.{k}.weight"], names[f"convs.{k}.bias"] = node.input[1], node.input[2]
    for name, arg in zip(("weight", "bias", "running_mean", "running_var"), bn.input[1:], strict=True):
        names[f"bn0.{name}"] = arg
    return names


def published_net(embedding_file: object) -> SpeechEmbeddingNet:
    """SpeechEmbeddingNet with the weights of the published ONNX file at `embedding_file`."""
    import onnx

    net = SpeechEmbeddingNet()
    net.load_state_dict(speech_embedding_adapter(onnx.load(str(embedding_file))))
    return net


@register_backbone(
    "speech_embedding", front=SPEECH_FRONT, emb_dim=96, weights=EMBEDDING_WEIGHTS,
    adapter=speech_embedding_adapter, licence=LICENCE, citation=CITATION,
)  # fmt: skip
def speech_embedding_net() -> nn.Module:
    """Google's speech_embedding (Lin et al. 2020: keyword spotting; Apache-2.0), 16 kHz speech."""
    return SpeechEmbeddingNet()
