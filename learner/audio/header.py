"""What a file says about itself, checked against what it holds: `probe` (header facts without a full
decode), the length a WAV header claims (libsndfile quietly shortens it to the bytes there are), chained
Ogg (libsndfile reads only the first stream of a chain), and the warning when a file holds less audio than
its header promises. Pure byte parsing plus `decode`: NumPy-only like the rest of `learner.audio`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_BYTES = 1 << 16  # WAV chunks before `data` (LIST, bext, JUNK) rarely pass 64 KiB
TRUNCATED_TOLERANCE = (0.02, 0.05)  # fraction, seconds: less missing than both is codec padding, not loss
_OGG_BLOCK = 1 << 20


@dataclass
class AudioInfo:
    """What a file's header says, read without decoding the whole file (`probe`)."""

    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    decoder: str


def _head(src: str | Path | bytes, n: int = HEAD_BYTES) -> bytes:
    if isinstance(src, bytes):
        return src[:n]
    with open(src, "rb") as f:
        return f.read(n)


def wav_claimed_s(src: str | Path | bytes) -> float | None:
    """Seconds of audio the `data` chunk size of a RIFF/WAVE header claims (None: not WAV, a streaming
    size of 0 or 0xFFFFFFFF, or no `fmt `/`data` chunk in the first 64 KiB)."""
    try:
        head = _head(src)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, rate, align = 12, 0, 0
    while pos + 8 <= len(head):
        tag, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if tag == b"fmt " and pos + 22 <= len(head):
            rate, align = (
                struct.unpack_from("<I", head, pos + 12)[0],
                struct.unpack_from("<H", head, pos + 20)[0],
            )
        elif tag == b"data":
            if not rate or not align or size in (0, 0xFFFFFFFF):
                return None
            return size // align / rate
        pos += 8 + size + (size & 1)
    return None


def ogg_is_chained(src: str | Path | bytes) -> bool:
    """True when an Ogg file starts more than one logical stream (a chain of recordings, or audio beside
    video): libsndfile would decode only the first, so PyAV reads it (FFmpeg follows the chain)."""
    begins = 0
    try:
        f = None if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115 (closed below)
        try:
            offset, tail = 0, b""
            while True:
                block = src[offset : offset + _OGG_BLOCK] if f is None else f.read(_OGG_BLOCK)
                if not block:
                    return False
                offset += len(block)
                data, at = tail + block, 0
                while (at := data.find(b"OggS", at)) >= 0 and at + 6 <= len(data):
                    if data[at + 4] == 0 and data[at + 5] & 0x02:  # version 0, "beginning of stream" flag
                        begins += 1
                        if begins > 1:
                            return True
                    at += 4
                tail = data[-5:]  # a page header cut by the block edge: its start was not counted yet
        finally:
            if f is not None:
                f.close()
    except OSError:
        return False


def truncation_warning(claimed_s: float | None, holds_s: float) -> str | None:
    """'truncated: header says 3.0 s, file holds 0.001 s' when the audio stops well before the header's
    end."""
    if not claimed_s or claimed_s <= 0:
        return None
    missing = claimed_s - holds_s
    if missing <= TRUNCATED_TOLERANCE[0] * claimed_s or missing <= TRUNCATED_TOLERANCE[1]:
        return None
    return f"truncated: header says {claimed_s:.4g} s, file holds {holds_s:.4g} s"


def probe(src: str | Path | bytes, *, name: str | None = None) -> AudioInfo:
    """Rate, channels and length from the header plus the first decoded frame (everything only when the
    container states no duration; for compressed formats `decode` may differ by a codec frame or two)."""
    from learner.audio.decode import EmptyAudioError, _decode_raw, _prepare, decode

    src, label, head = _prepare(src, name, None)
    if head[:4] == b"OggS" and ogg_is_chained(src):  # each link's header knows only its own length
        d = decode(src, name=label)
        return AudioInfo(
            d.orig_sample_rate, d.channels, round(d.duration_s * d.orig_sample_rate), d.duration_s, d.decoder
        )
    raw = _decode_raw(src, label, head, 0.0, 1e-3, None)
    sr = raw.span.sr
    if raw.span.kept == 0:
        raise EmptyAudioError(label, "no audio frames")
    if raw.header_s <= 0:
        d = decode(src, name=label)
        return AudioInfo(sr, d.channels, d.samples.size, d.duration_s, d.decoder)
    return AudioInfo(sr, raw.channels, round(raw.header_s * sr), raw.header_s, raw.decoder)


def ogg_links(data: bytes) -> list[bytes]:
    """A chained Ogg file cut into its links (each a complete Ogg stream), at every page that begins a
    stream after pages that did not; streams multiplexed side by side (BOS pages together) stay one link."""
    starts, pos, prev_bos = [], 0, False
    while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
        nseg = data[pos + 26]
        if pos + 27 + nseg > len(data):
            break
        bos = bool(data[pos + 5] & 0x02)
        if bos and not prev_bos:
            starts.append(pos)
        prev_bos = bos
        pos += 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


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
    from learner.audio.decode import Decoded, TooLongError, decode
    from learner.audio.signal import resample

    parts = [decode(link, None, name=label, max_duration_s=max_duration_s) for link in links]
    sr = parts[0].orig_sample_rate
    mono = np.concatenate([resample(p.samples, p.orig_sample_rate, sr) for p in parts])
    if max_duration_s is not None and mono.size / sr > max_duration_s:
        raise TooLongError(label, f"decoded {mono.size / sr:.1f} s, over the {max_duration_s:g} s limit")
    start = round(offset_s * sr)
    mono = mono[start : None if duration_s is None else start + max(1, round(duration_s * sr))]
    if not mono.size:
        from learner.audio.decode import EmptyAudioError

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
