"""Waveform augmentations while training, one small class each, in one registry (`AUGMENTATIONS`).

Each class names the `AudioConfig` field that turns it on (0 / None = off) and whether it acts on the
signal before the crop to the clip length (it changes the signal's length: stretch, pitch) or after it.
`WaveAugment` runs the enabled ones in registry order with one random generator, training only. A new
augmentation is one class here plus its `AudioConfig` field (whose metadata makes its flag).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

AUGMENTATIONS: dict[str, type[WaveAug]] = {}


def augmentation(cls: type[WaveAug]) -> type[WaveAug]:
    """Class decorator: file an augmentation under its config field."""
    AUGMENTATIONS[cls.field] = cls
    return cls


class WaveAug:
    """One augmentation: `setting` is its AudioConfig value; `__call__` draws from `rng` once per clip."""

    field: ClassVar[str]
    before_crop: ClassVar[bool] = False

    def __init__(self, setting: Any) -> None:
        self.setting = setting

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError


@augmentation
class TimeStretch(WaveAug):
    """Tempo × a rate drawn in 1 ± setting, pitch kept (phase vocoder)."""

    field, before_crop = "aug_stretch", True

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        return time_stretch(y, float(rng.uniform(1 - self.setting, 1 + self.setting)))


@augmentation
class PitchShift(WaveAug):
    """Pitch shifted by ± setting semitones, tempo kept."""

    field, before_crop = "aug_pitch", True

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        return pitch_shift(y, sr, float(rng.uniform(-self.setting, self.setting)))


@augmentation
class AddNoise(WaveAug):
    """White noise at an SNR drawn in [lo, hi] dB of the clip's own power."""

    field = "aug_noise_snr"

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        snr = rng.uniform(*self.setting)
        power = float(torch.mean(y**2)) + 1e-12
        noise = rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), tuple(y.shape)).astype(np.float32)
        return y + torch.from_numpy(noise)


@augmentation
class Hum(WaveAug):
    """Mains hum at an SNR drawn in [lo, hi] dB of the clip's own power: 50 or 60 Hz (± 1 %) and its first
    eight harmonics with random levels and phases. A live microphone hears it and the recordings of a speech
    set rarely do; mixed into every class (noise clips too) it becomes a sound that names no class."""

    field = "aug_hum_snr"

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        f0 = float(rng.choice([50.0, 60.0])) * float(rng.uniform(0.99, 1.01))
        k = np.arange(1, 9)
        level = rng.uniform(0, 1, k.size) / k
        level[0] = max(level[0], 0.3)  # the fundamental is never missing
        t = np.arange(y.shape[-1]) / sr
        hum = (
            level[:, None] * np.sin(2 * np.pi * f0 * k[:, None] * t + rng.uniform(0, 2 * np.pi, (k.size, 1)))
        ).sum(0)
        hum *= np.sqrt(self._power(y, rng) / (np.mean(hum**2) + 1e-12))
        return y + torch.from_numpy(hum.astype(np.float32)).reshape(y.shape)

    def _power(self, y: torch.Tensor, rng: np.random.Generator) -> float:
        """The hum's power: the clip's, divided by 10^(snr/10)."""
        return (float(torch.mean(y**2)) + 1e-12) / 10 ** (rng.uniform(*self.setting) / 10)


@augmentation
class Gain(WaveAug):
    """Loudness × a gain drawn in ± setting dB."""

    field = "aug_gain_db"

    def __call__(self, y: torch.Tensor, sr: int, rng: np.random.Generator) -> torch.Tensor:
        return y * np.float32(10 ** (rng.uniform(-self.setting, self.setting) / 20))


def enabled(settings: dict[str, Any]) -> list[WaveAug]:
    """The augmentations `settings` (AudioConfig field → value) turn on, in registry order."""
    return [cls(settings[f]) for f, cls in AUGMENTATIONS.items() if settings.get(f)]


def pitch_shift(y: torch.Tensor, sr: int, semitones: float, step: int = 50) -> torch.Tensor:
    """Resample (pitch and tempo × 2^(semitones/12)), then time-stretch back to the original tempo.

    The resampling rate is rounded to a multiple of `step` Hz (≤ 0.03 semitone at 16 kHz): torchaudio's
    `pitch_shift` resamples between int(sr / rate) and sr, whose gcd is usually tiny, which makes its
    polyphase kernel huge (≈ 18 s per 1 s clip at 16 kHz instead of ≈ 30 ms).
    """
    import torchaudio.functional as AF

    src = max(step, int(round(sr * 2 ** (semitones / 12) / step)) * step)
    return time_stretch(AF.resample(y, src, sr), sr / src)


def time_stretch(y: torch.Tensor, rate: float, n_fft: int = 512) -> torch.Tensor:
    """Phase-vocoder time stretch (pitch kept): STFT → torchaudio TimeStretch → iSTFT."""
    import torchaudio

    hop = n_fft // 4
    window = torch.hann_window(n_fft)
    spec = torch.stft(y, n_fft, hop, window=window, return_complex=True)
    stretched = torchaudio.transforms.TimeStretch(hop_length=hop, n_freq=n_fft // 2 + 1)(spec, rate)
    return torch.istft(stretched, n_fft, hop, window=window)
