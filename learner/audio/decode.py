"""Decode any audio file (or bytes) to mono float32 at the model's sample rate, in NumPy only.

This is the first step of the one item pipeline (`learner.audio.pipeline.ClipPipeline`) that training, the
Predictor (torch and ONNX backends), the demo and the scorer share, so it imports only numpy, scipy,
soundfile and av (never torch).
One decoder chain: libsndfile (WAV/FLAC/Ogg/MP3, fast) first, then PyAV (FFmpeg: AAC/M4A, WebM/Opus,
video sound tracks, whatever libsndfile rejects). Every failure is an `AudioDecodeError` subclass naming
the file; nothing else escapes `decode` or `probe`, whatever the bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learner.audio.errors import (
    AudioDecodeError,
    Decoded,
    EmptyAudioError,
    Source,
    TooLongError,
)
from learner.audio.header import AudioInfo, ogg_is_chained, ogg_links, truncation_warning, wav_claimed_s
from learner.audio.limits import check_samples
from learner.audio.readers import (  # noqa: F401 (SEEK_MIN_S: re-exported)
    SEEK_MIN_S,
    SF_MAGIC,
    Read,
    clean,
    decode_raw,
    prepare_source,
)
from learner.audio.signal import resample, to_mono

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .m4a .aac .mp4 .m4v .mov .webm .mkv .aif .aiff .au .caf "
    ".w64 .mka .weba .m4b .3gp .amr .wma .ac3".split()
)
DEMO_MAX_S = 600.0  # what the demo accepts (10 min)
DEMO_MAX_BYTES = 100 * 2**20
SCORE_MAX_S = 4 * 3600.0  # what the batch scorer accepts (4 h)
SCORE_MAX_BYTES = 8 * 2**30  # 4 h of 48 kHz / 24-bit / stereo WAV is 4.1 GB


def decode(
    src: Source,
    sample_rate: int | None = None,
    *,
    max_duration_s: float | None = None,
    max_bytes: int | None = None,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    name: str | None = None,
) -> Decoded:
    """Read `src` (path or bytes) → `Decoded` mono float32 at `sample_rate` (None keeps the file's rate).

    `offset_s`/`duration_s` read only that span: sample-exact, by seeking in PCM/FLAC and by decoding
    from the start in compressed audio, except past SEEK_MIN_S where compressed audio is sought too
    (then placed by the container's timestamps: exact for MP4/Ogg, ±1 ms for WebM/MKV; MP3/Ogg read by
    libsndfile can land some ms off). `max_bytes` refuses big files before reading; `max_duration_s`
    refuses long files from the header when it tells, else while decoding (so a small file that expands
    to hours stops early): pass DEMO_MAX_* or SCORE_MAX_*. NaN samples become 0 and all samples are
    clipped to [-1, 1] (±inf → ±1), so nothing downstream sees NaN. A file cut short decodes to what is
    there when its decoder can tell where the audio stops (WAV, MP3, Ogg, WebM); a decoder failing part
    way (FLAC lost sync, a broken AAC packet, an MP4 without its index) is a CorruptAudioError.
    """
    if offset_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ValueError(f"need offset_s >= 0 and duration_s > 0, got {offset_s}, {duration_s}")
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    src, label, head = prepare_source(src, name, max_bytes)
    check_samples(label, src, head, SF_MAGIC, max_duration_s)  # rate × channels × seconds, before decoding
    if head[:4] == b"OggS" and ogg_is_chained(src):  # libsndfile would stop after the first link
        links = ogg_links(src if isinstance(src, bytes) else Path(src).read_bytes())
        if len(links) > 1:
            return decode_chain(links, sample_rate, label, max_duration_s, offset_s, duration_s)
    raw = decode_raw(Read(src, label, head, offset_s, duration_s, max_duration_s))
    span = raw.span
    if span.kept == 0:
        where = f" at {offset_s:g} s (the file has {raw.frames_seen / span.sr:.2f} s)" if offset_s else ""
        raise EmptyAudioError(label, f"no audio frames{where}")
    mono = np.concatenate(span.chunks) if len(span.chunks) > 1 else span.chunks[0]
    target = span.sr if sample_rate is None else int(sample_rate)
    whole = not offset_s and duration_s is None  # a span cannot tell a short file from a short request
    claimed = (wav_claimed_s(src) if head[:4] == b"RIFF" else None) or raw.header_s
    warning = truncation_warning(claimed, mono.size / span.sr) if whole else None
    return Decoded(
        resample(mono, span.sr, target),
        target,
        span.sr,
        raw.channels,
        mono.size / span.sr,
        raw.decoder,
        warning,
    )


def probe(src: str | Path | bytes, *, name: str | None = None) -> AudioInfo:
    """Rate, channels and length from the header plus the first decoded frame (everything only when the
    container states no duration; for compressed formats `decode` may differ by a codec frame or two)."""
    src, label, head = prepare_source(src, name, None)
    if head[:4] == b"OggS" and ogg_is_chained(src):  # each link's header knows only its own length
        d = decode(src, name=label)
        return AudioInfo(
            d.orig_sample_rate, d.channels, round(d.duration_s * d.orig_sample_rate), d.duration_s, d.decoder
        )
    raw = decode_raw(Read(src, label, head, 0.0, 1e-3))
    sr = raw.span.sr
    if raw.span.kept == 0:
        raise EmptyAudioError(label, "no audio frames")
    if raw.header_s <= 0:
        d = decode(src, name=label)
        return AudioInfo(sr, d.channels, d.samples.size, d.duration_s, d.decoder)
    return AudioInfo(sr, raw.channels, round(raw.header_s * sr), raw.header_s, raw.decoder)


def decode_chain(
    links: list[bytes],
    sample_rate: int | None,
    label: str,
    max_duration_s: float | None,
    offset_s: float,
    duration_s: float | None,
):
    """Decode each link of a chained Ogg on its own (exact, unlike FFmpeg's chain, which keeps each new
    link's pre-roll) and join them at the first link's rate; then cut the span that was asked for."""
    parts = [decode(link, None, name=label, max_duration_s=max_duration_s) for link in links]
    sr = parts[0].orig_sample_rate
    mono = np.concatenate([resample(p.samples, p.orig_sample_rate, sr) for p in parts])
    if max_duration_s is not None and mono.size / sr > max_duration_s:
        raise TooLongError(label, f"decoded {mono.size / sr:.1f} s, over the {max_duration_s:g} s limit")
    start = round(offset_s * sr)
    mono = mono[start : None if duration_s is None else start + max(1, round(duration_s * sr))]
    if not mono.size:
        raise EmptyAudioError(label, f"no audio frames at {offset_s:g} s")
    target = sr if sample_rate is None else int(sample_rate)
    return Decoded(
        resample(mono, sr, target),
        target,
        sr,
        max(p.channels for p in parts),
        mono.size / sr,
        "soundfile",
        next((p.warning for p in parts if p.warning), None),
    )


def decode_array(
    x: np.ndarray, rate: int | None, target_sr: int, max_duration_s: float | None = None
) -> Decoded:
    """A signal in memory → `Decoded`, as if read from a file: integer PCM scaled to [-1, 1], channels
    averaged, resampled to `target_sr`. (samples, channels) and (channels, samples) are both taken: the
    shorter axis, when it has at most 8 entries, is the channels."""
    label = "<array>"
    if rate is None:
        raise AudioDecodeError(
            label, "a NumPy signal needs its sample rate (sample_rate=..., or a (rate, array) pair)"
        )
    if int(rate) <= 0:
        raise AudioDecodeError(label, f"sample rate must be positive, got {rate}")
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        x = x.T  # (channels, samples) as torchaudio and librosa hold it
    if x.ndim not in (1, 2) or x.size == 0:
        raise AudioDecodeError(label, f"expected a 1-D signal or (samples, channels), got shape {x.shape}")
    channels = 1 if x.ndim == 1 else x.shape[1]
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        x = clean(x, offset=half, scale=1.0 / half)
    elif np.issubdtype(x.dtype, np.integer):
        x = clean(x, scale=1.0 / float(2 ** (8 * x.dtype.itemsize - 1)))
    elif np.issubdtype(x.dtype, np.floating):
        x = clean(x)
    else:
        raise AudioDecodeError(label, f"cannot read samples of dtype {x.dtype}")
    mono = to_mono(x).astype(np.float32, copy=False)
    seconds = mono.size / int(rate)
    if max_duration_s is not None and seconds > max_duration_s:
        raise TooLongError(label, f"{seconds:.1f} s is longer than the {max_duration_s:g} s limit")
    return Decoded(resample(mono, int(rate), target_sr), target_sr, int(rate), channels, seconds, "array")
