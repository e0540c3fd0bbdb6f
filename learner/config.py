"""One `AudioConfig` rules all preprocessing; it is saved in the model's config.json so that the demo,
the scorer and evaluation rebuild exactly the pipeline the model was trained with."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_ENV = "EARSHOT_CACHE"
#: frames × n_fft of one clip's STFT (float32 values): 2^28 is 1 GiB; 600 s at 48 kHz with hop 512 and a
#: 2048-point FFT is 115 M, hop 1 with a 65536-point FFT 1.9 million M (what one prediction would allocate)
MAX_STFT_VALUES = 2**28


def flag(help: str, *, name: str | None = None, group: str = "", **argparse: Any) -> dict[str, Any]:
    """Field metadata saying how a job offers this setting on the command line (`jobs._cli` turns every
    field that has it into a flag): its help, its flag (default `--field-name`), its group, and argparse
    extras (`type`, `choices`, `metavar`, `aliases`). A new flag is one field with this metadata."""
    return {"flag": {"help": help, "name": name, "group": group, **argparse}}


def option(default: Any, help: str, **flag_kw: Any) -> Any:
    """A settings field with its default and its flag (`flag`'s metadata) in one declaration:
    `epochs: int = option(15, "passes over the data")`."""
    return field(default=default, metadata=flag(help, **flag_kw))


def required(help: str, **flag_kw: Any) -> Any:
    """A settings field the caller must give (no default), offered as a flag like `option`'s."""
    return field(metadata=flag(help, **flag_kw))


def audio_option(default: Any, help: str, **flag_kw: Any) -> Any:
    """`option` in the "audio" group: the preprocessing and augmentation settings every training job takes."""
    return option(default, help, group="audio", **flag_kw)


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

    sample_rate: int = audio_option(
        22050, "Hz; jobs.train uses the files' own rate (at most 22.05 kHz) unless given", auto=True,
    )
    duration: float = audio_option(5.0, "seconds; jobs.train picks it from the data by default", auto=True)
    trim_db: float | None = audio_option(60.0, "trim silence quieter than this many dB below the peak")
    trim_mode: str = "edges"  # "edges" trims leading/trailing silence; "all" also drops silent gaps
    pad_mode: str = audio_option(
        "zeros", "short clips: placed in silence (zeros) or repeated",
        name="--pad", choices=("zeros", "repeat"),
    )
    n_fft: int = audio_option(512, "FFT size of the log-mel")
    hop_length: int = audio_option(
        512, "STFT hop; jobs.train picks it from the clip length (about 100 frames a clip, 10 ms at least)",
        name="--hop", auto=True,
    )
    n_mels: int = audio_option(64, "mel bands")
    f_min: float = audio_option(20.0, "lowest mel frequency (Hz)")
    f_max: float | None = audio_option(
        None, "highest mel frequency (Hz; default: half the sample rate)", type=float,
    )
    top_db: float | None = audio_option(80.0, "dynamic range kept below each clip's loudest value (dB)")
    n_mfcc: int = 40
    norm: str = audio_option("clip", "feature normalisation", choices=("clip", "dataset", "none"))
    norm_stats: tuple[float, float] = (0.0, 1.0)
    # training-time augmentation
    spec_freq_mask: int = audio_option(24, "SpecAugment: widest frequency mask (mel bands)")
    spec_time_mask: int = audio_option(40, "SpecAugment: widest time mask (frames)")
    spec_masks: int = audio_option(2, "SpecAugment: masks of each kind per clip")
    mixup: float = audio_option(0.0, "MixUp α (0 disables)")
    aug_pitch: float = audio_option(
        0.0, "random pitch shift of ± this many semitones while training (0 disables)",
    )
    aug_stretch: float = audio_option(0.0, "random time stretch spread (0.2 → rates 0.8–1.2; 0 disables)")
    aug_noise_snr: tuple[float, float] | None = audio_option(
        None, "additive noise at a random SNR in [LO, HI] dB while training",
        type=float, nargs=2, metavar=("LO", "HI"),
    )
    aug_hum_snr: tuple[float, float] | None = audio_option(
        None, "mains hum (50/60 Hz and harmonics) at a random SNR in [LO, HI] dB while training",
        type=float, nargs=2, metavar=("LO", "HI"),
    )
    aug_gain_db: float = audio_option(0.0, "random gain of ± this many dB while training (0 disables)")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.hop_length < 1 or self.n_fft < 2:
            raise ValueError(f"hop_length must be >= 1 and n_fft >= 2, got {self.hop_length}, {self.n_fft}")
        if self.n_frames * self.n_fft > MAX_STFT_VALUES:
            raise ValueError(
                f"a {self.duration:g} s clip at {self.sample_rate} Hz with hop {self.hop_length} and n_fft "
                f"{self.n_fft} is {self.n_frames} frames × {self.n_fft} = "
                f"{self.n_frames * self.n_fft / 1e6:.0f} M values per clip, over the "
                f"{MAX_STFT_VALUES / 1e6:.0f} M limit: raise the hop, or lower n_fft or the duration"
            )
        if self.f_max is not None and self.f_max <= self.f_min:
            raise ValueError(f"f_max ({self.f_max}) must be above f_min ({self.f_min})")
        if self.norm not in ("dataset", "clip", "none"):
            raise ValueError(f"norm must be 'dataset', 'clip' or 'none', got {self.norm!r}")
        if self.pad_mode not in ("repeat", "zeros"):
            raise ValueError(f"pad_mode must be 'repeat' or 'zeros', got {self.pad_mode!r}")
        if self.trim_mode not in ("edges", "all"):
            raise ValueError(f"trim_mode must be 'edges' or 'all', got {self.trim_mode!r}")
        self.norm_stats = tuple(float(v) for v in self.norm_stats)  # type: ignore[assignment]
        for name in ("aug_noise_snr", "aug_hum_snr"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(float(v) for v in getattr(self, name)))

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
