"""Limits on decoded samples, not only seconds: decoding costs memory and CPU per sample at the file's own
rate × channels, so a small FLAC of 590 s at 384 kHz × 8 channels weighs as much as 2.6 hours of 48 kHz
stereo. A `max_duration_s` limit is read as that many seconds of 48 kHz stereo (`SAMPLES_PER_LIMIT_S`),
checked from the header before any decoding (refused in well under a second)."""

from __future__ import annotations

import io
from pathlib import Path

SAMPLES_PER_LIMIT_S = 48_000 * 2  # one second of the limit: 48 kHz stereo
MIN_DURATION_S = 0.05  # less audio than this is refused: a few samples say nothing about any class


def too_short(duration_s: float, min_duration_s: float = MIN_DURATION_S) -> str | None:
    """The one rule for too little audio (jobs.score's error rows, Predictor.predict, the demo): the reason,
    or None when there is enough."""
    if duration_s >= min_duration_s:
        return None
    return f"too short to classify: {duration_s:.3g} s of audio, the minimum is {min_duration_s:g} s"


def header_samples(
    src: str | Path | bytes, head: bytes, sf_magic: tuple[bytes, ...]
) -> tuple[int, int, float] | None:
    """(sample rate, channels, seconds) the header states, or None when it cannot tell cheaply."""
    try:
        if head.startswith(sf_magic):
            import soundfile as sf

            info = sf.info(io.BytesIO(src) if isinstance(src, bytes) else str(src))
            if 0 < info.frames < 2**62:
                return int(info.samplerate), int(info.channels), info.frames / info.samplerate
            return None
        import av

        with av.open(io.BytesIO(src) if isinstance(src, bytes) else str(src), "r", timeout=5.0) as c:
            st = c.streams.audio[0] if c.streams.audio else None
            if st is None or not st.codec_context.sample_rate:
                return None
            seconds = (
                float(st.duration * st.time_base) if st.duration and st.time_base else (c.duration or 0) / 1e6
            )
            return int(st.codec_context.sample_rate), int(st.codec_context.channels or 1), seconds
    except Exception:  # the decoders say what is wrong with the file; this check only refuses big ones early
        return None


def check_samples(
    label: str,
    src: str | Path | bytes,
    head: bytes,
    sf_magic: tuple[bytes, ...],
    max_duration_s: float | None,
) -> None:
    """Raise TooLongError when rate × channels × seconds (from the header) is over the limit's budget."""
    if max_duration_s is None:
        return
    stated = header_samples(src, head, sf_magic)
    if stated is None:
        return
    rate, channels, seconds = stated
    budget = max_duration_s * SAMPLES_PER_LIMIT_S
    if rate * channels * seconds > budget:
        from learner.audio.errors import TooLongError

        raise TooLongError(
            label,
            f"the header says {seconds:.1f} s at {rate} Hz × {channels} channel(s): "
            f"{rate * channels * seconds / 1e6:.0f} M samples, over the "
            f"{budget / 1e6:.0f} M limit ({max_duration_s:g} s of 48 kHz stereo)",
        )
