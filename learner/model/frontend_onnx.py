"""The ONNX-friendly form of the log-mel front end: `DftLogMel`, built from a torchaudio `LogMel` (same
window, filterbank and settings) as plain matrix algebra, and `onnx_ready`, which swaps it in.

The TorchScript exporter cannot take `torch.stft`'s complex output, and ONNX Runtime runs this ~4× faster
than its own STFT operator; it equals torchaudio within float32 rounding (tested, and checked at every
export by `learner.serve.export`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from learner.model.frontend import AudioClassifier, LogMel


def _phases(n_fft: int, hop: int, most: int = 16) -> int:
    """The polyphase split R: the largest power of two ≤ `most` dividing both n_fft and hop."""
    r = 1
    while r * 2 <= most and n_fft % (r * 2) == 0 and hop % (r * 2) == 0 and n_fft // (r * 2) >= 4:
        r *= 2
    return r


class DftLogMel(nn.Module):
    """A torchaudio `LogMel` (power mel spectrogram → dB, per-example top_db) as plain matrix algebra.

    The STFT is one decimation-in-time FFT stage written as GEMMs: the padded signal is split into R
    phases x_r[m] = x[R·m + r]; a grouped Conv1d (kernel n_fft/R, stride hop/R) computes, per frame,
    A_r[k] = Σ_m w[Rm+r]·x[Rm+r]·e^{-2πi·k(Rm+r)/n_fft} for k ≤ n_fft/2R only; an R-point DFT across the
    phases (a 2R×2R real matmul) gives X[k + q·n_fft/R] for every q, and conjugate symmetry covers the
    bins between. The mel filterbank rows are laid out to match, so |X|² → mel is one matmul. With R = 16
    this is ~4× fewer multiply-adds than a full DFT Conv1d, and equal to torchaudio within float32 rounding
    (checked at every export). Built from an existing LogMel: same window, filterbank and settings.
    """

    def __init__(self, logmel: LogMel, phases: int | None = None) -> None:
        super().__init__()
        spec, mel_scale, to_db = logmel.mel.spectrogram, logmel.mel.mel_scale, logmel.to_db
        if spec.power != 2.0 or spec.normalized or not spec.center or spec.onesided is False:
            raise ValueError("DftLogMel supports power=2, centred, one-sided, unnormalised spectrograms only")
        n, hop, win_len = spec.n_fft, spec.hop_length, spec.win_length
        R = phases or _phases(n, hop)
        if n % R or hop % R:
            raise ValueError(f"{R} phases must divide n_fft={n} and hop_length={hop}")
        window = torch.zeros(n, dtype=torch.float64)
        left = (n - win_len) // 2  # torch.stft centres a shorter window inside n_fft
        window[left : left + win_len] = spec.window.double()
        K = n // (2 * R) + 1
        m = torch.arange(n // R, dtype=torch.float64)[None]
        k = torch.arange(K, dtype=torch.float64)[:, None]
        rows = []
        for r in range(R):  # output channels ordered (phase r, re/im, k)
            angle = 2 * math.pi * k * (R * m + r) / n
            rows += [torch.cos(angle) * window[r::R], -torch.sin(angle) * window[r::R]]
        self.register_buffer("basis", torch.cat(rows).float()[:, None])  # (R·2K, 1, n/R), groups = R
        twiddle = torch.zeros(2 * R, 2 * R, dtype=torch.float64)  # rows (q, re/im), columns (r, re/im)
        for q in range(R):
            for r in range(R):
                c, s = math.cos(2 * math.pi * q * r / R), math.sin(2 * math.pi * q * r / R)
                twiddle[2 * q, 2 * r : 2 * r + 2] = torch.tensor([c, s], dtype=torch.float64)
                twiddle[2 * q + 1, 2 * r : 2 * r + 2] = torch.tensor([-s, c], dtype=torch.float64)
        self.register_buffer("twiddle", twiddle.float())
        fb = mel_scale.fb.detach().double()  # (n/2 + 1, n_mels)
        fb_rows = torch.zeros(R * K, fb.shape[1], dtype=torch.float64)
        seen: set[int] = set()
        for q in range(R):  # row (q, k) holds bin j = k + q·n/R, folded to n - j above Nyquist; each bin once
            for kk in range(K):
                j = kk + q * (n // R)
                j = j if j <= n // 2 else n - j
                if j not in seen:
                    seen.add(j)
                    fb_rows[q * K + kk] = fb[j]
        if len(seen) != n // 2 + 1:
            raise ValueError(
                f"polyphase DFT with {R} phases misses {n // 2 + 1 - len(seen)} of the n_fft={n} bins"
            )
        self.register_buffer("fb_t", fb_rows.t().contiguous().float())  # (n_mels, R·K)
        self.n_fft, self.hop, self.phases, self.k, self.pad_mode = n, hop, R, K, spec.pad_mode
        self.multiplier, self.amin, self.db_multiplier = to_db.multiplier, to_db.amin, to_db.db_multiplier
        self.top_db = to_db.top_db

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, samples) → (B, 1, n_mels, frames)
        R, K, B = self.phases, self.k, x.shape[0]
        frames = x.shape[-1] // self.hop + 1
        x = nn.functional.pad(x, (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        if x.shape[-1] % R:
            x = nn.functional.pad(x, (0, R - x.shape[-1] % R))  # past the last frame: never read
        x = x.reshape(B, -1, R).transpose(1, 2)  # (B, R, samples / R)
        y = nn.functional.conv1d(x, self.basis, stride=self.hop // R, groups=R)[..., :frames]  # (B, R·2K, T)
        y = torch.matmul(self.twiddle, y.reshape(B, 2 * R, K * frames))  # (B, 2R, K·T): X re/im per q
        power = (y * y).reshape(B, R, 2, K * frames).sum(dim=2).reshape(B, R * K, frames)
        mel = torch.matmul(self.fb_t, power)  # (B, n_mels, T)
        db = (
            self.multiplier * torch.log10(torch.clamp(mel, min=self.amin))
            - self.multiplier * self.db_multiplier
        )
        if self.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - self.top_db)
        return db.unsqueeze(1)


def onnx_ready(model: AudioClassifier) -> AudioClassifier:
    """A copy of the model with every torchaudio LogMel replaced by its `DftLogMel` twin (same buffers), and
    every other front end that has one (a backbone's `BlockFeatures`) by its `onnx_form()`."""
    twin = copy.deepcopy(model).eval()
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LogMel):
                setattr(module, child_name, DftLogMel(child))
            elif hasattr(child, "onnx_form"):
                setattr(module, child_name, child.onnx_form())
    return twin
