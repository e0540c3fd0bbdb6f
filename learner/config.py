"""One `AudioConfig` rules all preprocessing; it is saved in the model's config.json so that the demo,
the scorer and evaluation rebuild exactly the pipeline the model was trained with."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_ENV = "EARSHOT_CACHE"


def cache_home() -> Path:
    """`$EARSHOT_CACHE`, default `~/.cache/earshot`: models/, datasets/ and converted weights."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "earshot").expanduser()


@dataclass
class AudioConfig:
    """Everything between a file on disk and the tensor a model sees.

    Item steps (NumPy, shared by every backend): decode → mono → resample to `sample_rate` → trim silence
    quieter than `trim_db` below the peak → crop / repeat-pad to `duration` seconds.
    Batch steps (torch, in the model's front end): log-mel (`n_fft`, `hop_length`, `n_mels`, `f_min`,
    `f_max`, `top_db`) or MFCC (`n_mfcc`), then normalisation (`norm`: "dataset" uses `norm_stats`
    measured on the training set, "clip" standardises each example, "none").
    Augmentation settings (`spec_*`, `mixup`, waveform `aug_*`) act during training only.
    """

    sample_rate: int = 22050
    duration: float = 5.0
    trim_db: float | None = 60.0
    trim_mode: str = "edges"  # "edges" trims leading/trailing silence; "all" also drops silent gaps
    pad_mode: str = "zeros"  # short clips: placed in silence ("zeros"; randomly while training) or "repeat"ed
    n_fft: int = 512
    hop_length: int = (
        512  # jobs.train picks it from the clip length (about 100 frames a clip, 10 ms at least)
    )
    n_mels: int = 64
    f_min: float = 20.0
    f_max: float | None = None
    top_db: float | None = 80.0
    n_mfcc: int = 40
    norm: str = "clip"
    norm_stats: tuple[float, float] = (0.0, 1.0)
    # training-time augmentation
    spec_freq_mask: int = 24
    spec_time_mask: int = 40
    spec_masks: int = 2
    mixup: float = 0.0
    aug_pitch: float = 0.0  # semitones (±); 0 disables
    aug_stretch: float = 0.0  # rate spread (0.2 → 0.8–1.2); 0 disables
    aug_noise_snr: tuple[float, float] | None = None  # dB range of additive noise
    aug_gain_db: float = 0.0  # ± dB
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.f_max is not None and self.f_max <= self.f_min:
            raise ValueError(f"f_max ({self.f_max}) must be above f_min ({self.f_min})")
        if self.norm not in ("dataset", "clip", "none"):
            raise ValueError(f"norm must be 'dataset', 'clip' or 'none', got {self.norm!r}")
        if self.pad_mode not in ("repeat", "zeros"):
            raise ValueError(f"pad_mode must be 'repeat' or 'zeros', got {self.pad_mode!r}")
        if self.trim_mode not in ("edges", "all"):
            raise ValueError(f"trim_mode must be 'edges' or 'all', got {self.trim_mode!r}")
        self.norm_stats = tuple(float(v) for v in self.norm_stats)  # type: ignore[assignment]
        if self.aug_noise_snr is not None:
            self.aug_noise_snr = tuple(float(v) for v in self.aug_noise_snr)  # type: ignore[assignment]

    @property
    def n_samples(self) -> int:
        """Samples in one fixed-length clip."""
        return int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Spectrogram frames of one clip (centred STFT)."""
        return self.n_samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioConfig:
        """Unknown keys are ignored so that folders written by newer versions still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {"pad_mode": "repeat", **d}  # folders written before pad_mode existed repeat-padded short clips
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> AudioConfig:
        return dataclasses.replace(self, **changes)
