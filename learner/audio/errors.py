"""The errors every decoder raises (each names the file) and what a decode returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

Source = str | Path | bytes


class AudioDecodeError(ValueError):
    """A file that cannot become audio. `path` names it; `reason` says why."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAudioError(AudioDecodeError):
    """No audio stream: an image, text, random bytes."""


class EmptyAudioError(AudioDecodeError):
    """Zero frames (or zero bytes)."""


class CorruptAudioError(AudioDecodeError):
    """Truncated or damaged: the decoder failed part way."""


class UnsupportedCodecError(AudioDecodeError):
    """An audio stream in a codec or sample format no backend handles."""


class TooLongError(AudioDecodeError):
    """Longer (or bigger) than the configured limit."""


class TooShortError(AudioDecodeError):
    """Less audio than `learner.audio.limits.MIN_DURATION_S`: a few samples say nothing about any class."""


@dataclass
class Decoded:
    """Mono float32 `samples` at `sample_rate`, plus what the original file was."""

    samples: np.ndarray
    sample_rate: int
    orig_sample_rate: int
    channels: int
    duration_s: float  # of what was decoded (the window, when one was asked for)
    decoder: str  # "soundfile" or "pyav"
    warning: str | None = None  # the file holds less than its header says (`learner.audio.header`)
