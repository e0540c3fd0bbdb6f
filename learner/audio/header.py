"""What a file says about itself, checked against what it holds: the length a WAV header claims
(libsndfile quietly shortens it to the bytes there are), chained Ogg (libsndfile reads only the first
stream of a chain), and the warning when a file holds less audio than its header promises. Pure byte
parsing; `probe`, which also decodes a frame, lives in `learner.audio.decode`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

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
