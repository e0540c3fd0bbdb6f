"""The exact input a pretrained audio backbone was trained on, declared once, and its NumPy reference.

A `BlockFrontEnd` names every step between a waveform and the network (rate, peak normalisation, STFT,
mel scale and filter normalisation, compression, block length); `learner.model.backbones` builds the torch
form (training, the torch backend, ONNX) from the same record and tests hold the two equal. NumPy only, so
the lean serving install and the docs can describe a backbone without importing torch.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = ("l1", "slaney", "none")
COMPRESSIONS = ("log10_shift", "db")


@dataclass(frozen=True)
class BlockFrontEnd:
    """Waveform → (blocks, block_frames, n_mels) features, the way a backbone's authors computed them.

    `compression`: "log10_shift" is `log10(mel · shift_scale + 1) / divisor` (Essentia's shift_scale_log,
    then the authors' min-max constant); "db" is `10 · log10(max(mel, 1e-10))` (librosa's power_to_db).
    `block_frames`: frames per network input (None: the whole clip is one input); blocks overlap by
    `block_hop_frames` (half a block by default, as aisfx's inference).
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    mel_scale: str = "htk"
    mel_norm: str = "l1"
    compression: str = "log10_shift"
    shift_scale: float = 10000.0
    divisor: float = 1.0
    peak_normalise: bool = True
    pad_mode: str = "constant"  # centred STFT padding: "constant" (zeros) or "reflect"
    block_frames: int | None = 100
    block_hop_frames: int | None = None
    # for fronts not built like librosa's (speech_embedding): frames not centred, a Hann window of
    # `win_length` centred in the n_fft frame, samples scaled before the STFT (int16 units), dB floored
    # `top_db` below each clip's own peak, then `out_scale · dB + out_offset`
    center: bool = True
    win_length: int | None = None
    input_scale: float = 1.0
    top_db: float | None = None
    out_scale: float = 1.0
    out_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.mel_scale not in MEL_SCALES:
            raise ValueError(f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}")
        if self.mel_norm not in MEL_NORMS:
            raise ValueError(f"mel_norm must be one of {MEL_NORMS}, got {self.mel_norm!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= Nyquist, got {self.f_min}, {self.f_max}")

    @property
    def block_s(self) -> float | None:
        """Seconds of audio one network input sees (None: any length)."""
        if self.block_frames is None:
            return None
        return (self.block_frames - 1) * self.hop_length / self.sample_rate

    @property
    def step_frames(self) -> int | None:
        if self.block_frames is None:
            return None
        return self.block_hop_frames or max(1, self.block_frames // 2)

    def n_frames(self, n_samples: int) -> int:
        """Frames of the STFT over `n_samples` (centred: one per hop, plus one)."""
        if not self.center:
            return max(0, (n_samples - self.n_fft) // self.hop_length + 1)
        return n_samples // self.hop_length + 1

    def n_blocks(self, n_frames: int) -> int:
        """Blocks covering every frame; the last one is zero-padded (0 = silence after compression)."""
        if self.block_frames is None or n_frames <= self.block_frames:
            return 1
        return 1 + -(-(n_frames - self.block_frames) // self.step_frames)

    def to_dict(self) -> dict:
        return asdict(self)


def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, f / (200.0 / 3))


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@functools.lru_cache(maxsize=8)
def mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: str, norm: str
) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters as librosa builds them (`htk=` scale; `norm=1` makes each
    filter sum to 1, "slaney" gives equal area)."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale), n_mels + 2), scale)
    diff = np.diff(pts)
    ramps = pts[None, :] - freqs[:, None]
    down = -ramps[:, :-2] / diff[:-1]
    up = ramps[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        fb = fb * (2.0 / (pts[2 : n_mels + 2] - pts[:n_mels]))[None, :]
    elif norm == "l1":
        fb = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)
    return fb


def filters_of(front: BlockFrontEnd) -> np.ndarray:
    return mel_filters(
        front.sample_rate,
        front.n_fft,
        front.n_mels,
        float(front.f_min),
        float(front.f_max),
        front.mel_scale,
        front.mel_norm,
    )


def stft_window(front: BlockFrontEnd) -> np.ndarray:
    """The periodic Hann window of `win_length` (default n_fft), zero-padded to n_fft around its centre."""
    n, w = front.n_fft, front.win_length or front.n_fft
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w)
    left = (n - w) // 2
    return np.pad(win, (left, n - w - left))


def peak_normalise(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x / peak if peak > 0 else x


def features(x: np.ndarray, front: BlockFrontEnd) -> np.ndarray:
    """One waveform (samples,) at `front.sample_rate` → compressed mel features (frames, n_mels)."""
    x = np.asarray(x, dtype=np.float64)
    if front.peak_normalise:
        x = peak_normalise(x)
    x = x * front.input_scale
    n = front.n_fft
    if front.center:
        x = np.pad(x, n // 2, mode=front.pad_mode)
    frames = 1 + (x.size - n) // front.hop_length
    idx = np.arange(n)[None, :] + front.hop_length * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[idx] * stft_window(front), axis=1)
    mel = (spec.real**2 + spec.imag**2) @ filters_of(front)
    return compress(mel, front)


def compress(mel: np.ndarray, front: BlockFrontEnd) -> np.ndarray:
    if front.compression == "log10_shift":
        return np.log10(mel * front.shift_scale + 1.0) / front.divisor
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if front.top_db is not None and db.size:
        db = np.maximum(db, db.max() - front.top_db)
    return db * front.out_scale + front.out_offset


def blocks(feats: np.ndarray, front: BlockFrontEnd) -> np.ndarray:
    """(frames, n_mels) → (blocks, block_frames, n_mels), the last block zero-padded."""
    if front.block_frames is None:
        return feats[None]
    b, step = front.block_frames, front.step_frames
    count = front.n_blocks(feats.shape[0])
    need = b + step * (count - 1)
    padded = np.zeros((max(need, feats.shape[0]), feats.shape[1]), dtype=feats.dtype)
    padded[: feats.shape[0]] = feats
    return np.stack([padded[i * step : i * step + b] for i in range(count)])
