"""NumPy-only audio: decoding (`decode`), signal steps (`signal`) and the one item pipeline (`pipeline`).

No torch here, so the lean serving install (ONNX Runtime) uses the very same code as training.
"""

from learner.audio.decode import (
    AUDIO_EXTENSIONS,
    DEMO_MAX_BYTES,
    DEMO_MAX_S,
    SCORE_MAX_BYTES,
    SCORE_MAX_S,
    SEEK_MIN_S,
    decode,
    probe,
)
from learner.audio.errors import (
    AudioDecodeError,
    CorruptAudioError,
    Decoded,
    EmptyAudioError,
    NotAudioError,
    Source,
    TooLongError,
    TooShortError,
    UnsupportedCodecError,
)
from learner.audio.header import AudioInfo
from learner.audio.pipeline import ClipPipeline, WindowPlan
from learner.audio.signal import crop_pad, resample, to_mono, trim_silence, windows

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEMO_MAX_BYTES",
    "DEMO_MAX_S",
    "SCORE_MAX_BYTES",
    "SCORE_MAX_S",
    "SEEK_MIN_S",
    "AudioDecodeError",
    "AudioInfo",
    "ClipPipeline",
    "CorruptAudioError",
    "Decoded",
    "EmptyAudioError",
    "NotAudioError",
    "Source",
    "TooLongError",
    "TooShortError",
    "UnsupportedCodecError",
    "WindowPlan",
    "crop_pad",
    "decode",
    "probe",
    "resample",
    "to_mono",
    "trim_silence",
    "windows",
]
