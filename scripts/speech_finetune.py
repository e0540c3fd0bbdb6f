"""Step 3b of scripts/build_demo_model.py: Google's `speech_embedding` fine-tuned on the fit clips.

The network (learner.model.speech_embedding_net) sees each clip padded with 0.25 s of silence on both sides,
as the served feature graph does (learner.model.speech_embedding.feature_graph): nine 76-frame windows,
flattened, standardised, one linear layer. It starts from the published weights and from the frozen
logistic head (`learner.model.head_fit.fit_linear`), then trains everything but the first BatchNorm's
statistics for `FINETUNE["epochs"]` epochs (AdamW, one-cycle), each batch at a random place in its padding
and half the word clips mixed with a `silence` clip at 5–30 dB SNR. The result goes back into the
published ONNX graph (`with_weights`), so the shipped file serves it like the frozen network.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from learner.model.backbones import BlockFeatures
from learner.model.head_fit import HeadFit
from learner.model.speech_embedding import PAD_S, SAMPLE_RATE
from learner.model.speech_embedding_net import SPEECH_FRONT, SpeechEmbeddingNet

# the epochs and learning rate chosen by 4-fold cross-validation by speaker on the fit speakers
# (`bench/speech_embedding.py --finetune`; bench/RESULTS.md: the default model, session 11); nothing here was
# chosen on the calibration or valid speakers
FINETUNE = {
    "epochs": 16, "lr": 3e-4, "head_lr_factor": 3.0, "batch": 32, "weight_decay": 0.01,
    "label_smoothing": 0.1, "noise_share": 0.5, "snr_db": (5.0, 30.0), "gain_db": 6.0, "left_s": (0.1, 0.4),
}  # fmt: skip


class WindowedHead(nn.Module):
    """Waveform (N, samples) → logits: padding, the published front end, the network's windows, flattened,
    standardised (`HeadFit`'s frame), a linear layer; the computation of the served member graph."""

    def __init__(self, net: SpeechEmbeddingNet, head: HeadFit) -> None:
        super().__init__()
        self.front = BlockFeatures(SPEECH_FRONT)
        self.net = net
        self.register_buffer("mean", torch.as_tensor(np.asarray(head.mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(head.scale, np.float32)))
        self.fc = nn.Linear(head.weight.shape[1], head.weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(torch.as_tensor(np.asarray(head.weight, np.float32)))
            self.fc.bias.copy_(torch.as_tensor(np.asarray(head.bias, np.float32)))

    def forward(self, wave: torch.Tensor, left: int | None = None) -> torch.Tensor:
        pad = round(PAD_S * SAMPLE_RATE)
        left = pad if left is None else left
        e = self.net.windows(self.front(F.pad(wave, (left, 2 * pad - left))))
        return self.fc((e.flatten(1) - self.mean) / self.scale)

    def head_fit(self, like: HeadFit) -> HeadFit:
        w, b = (t.detach().numpy().astype(np.float64) for t in (self.fc.weight, self.fc.bias))
        return HeadFit(w, b, like.mean, like.scale, like.C, like.l2)


def _augment(x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, silence: int, rng,
             cfg: dict) -> torch.Tensor:  # fmt: skip
    """Half the word clips get a background clip at a random SNR; every clip a random gain."""
    x = x.clone()
    for i in range(len(x)):
        if len(noise) and int(y[i]) != silence and rng.random() < cfg["noise_share"]:
            n = noise[rng.integers(len(noise))]
            snr = rng.uniform(*cfg["snr_db"])
            power = x[i].pow(2).mean() / n.pow(2).mean().clamp(min=1e-10)
            x[i] = x[i] + n * torch.sqrt(power / 10 ** (snr / 10))
        x[i] = x[i] * 10 ** (rng.uniform(-cfg["gain_db"], cfg["gain_db"]) / 20)
    return x.clamp(-1, 1)


def finetune(net: SpeechEmbeddingNet, head: HeadFit, clips: np.ndarray, y: np.ndarray, silence: int,
             seed: int = 0, cfg: dict = FINETUNE) -> tuple[SpeechEmbeddingNet, HeadFit]:  # fmt: skip
    """The network and head after `cfg` (FINETUNE's keys) on `clips` (N, samples) at 16 kHz with class
    indices `y`; `silence` is the background class whose clips are mixed into the others."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = WindowedHead(net, head)
    x, t = torch.from_numpy(np.ascontiguousarray(clips, np.float32)), torch.as_tensor(y, dtype=torch.long)
    noise = x[t == silence]
    groups = [{"params": model.net.parameters(), "lr": cfg["lr"]},
              {"params": model.fc.parameters(), "lr": cfg["lr"] * cfg["head_lr_factor"]}]  # fmt: skip
    opt = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])
    per_epoch = len(x) // cfg["batch"]
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=cfg["epochs"] * per_epoch, pct_start=0.2
    )
    lo, hi = (round(s * SAMPLE_RATE) for s in cfg["left_s"])
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        model.net.bn0.eval()  # the published statistics stay
        start, total, order = time.time(), 0.0, torch.randperm(len(x))
        for b in range(per_epoch):
            idx = order[b * cfg["batch"] : (b + 1) * cfg["batch"]]
            xb = _augment(x[idx], t[idx], noise, silence, rng, cfg)
            logits = model(xb, int(rng.integers(lo, hi)))
            loss = F.cross_entropy(logits, t[idx], label_smoothing=cfg["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"+ speech_embedding fine-tune epoch {epoch}/{cfg['epochs']}: loss {total / per_epoch:.3f} "
              f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
    model.eval()
    return model.net, model.head_fit(head)
