"""Writing signals into files of the containers and codecs the readers take: libsndfile's (WAV, FLAC,
Ogg, MP3, AIFF, CAF, AU) and FFmpeg's through PyAV (AAC in M4A/MP4/MOV/ADTS, Opus in WebM/MKV, ...). The
decoder's test corpus and the decode fuzzer (bench/fuzz_decode.py) write their files with these."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(
    sr: int, seconds: float = 0.5, channels: int = 1, freq: float = 440.0, amp: float = 0.5
) -> np.ndarray:
    """(frames, channels) float32 sine; channel k is at `freq * (k + 1)` so channels differ."""
    t = np.arange(int(round(sr * seconds))) / sr
    return np.stack([amp * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(channels)], 1).astype(
        np.float32
    )


def write_sf(
    path: Path, data: np.ndarray, sr: int, subtype: str | None = None, fmt: str | None = None
) -> Path:
    """Write with libsndfile (WAV/FLAC/Ogg Vorbis/Ogg Opus/MP3/AIFF/CAF/AU).

    In blocks: libsndfile 1.2.2 overflows its stack (segfault) writing minutes of Ogg Vorbis in one call."""
    with sf.SoundFile(str(path), "w", sr, data.shape[1] if data.ndim > 1 else 1, subtype, format=fmt) as f:
        for i in range(0, len(data), 65536):
            f.write(data[i : i + 65536])
    return path


_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink: what a live recorder or `ffmpeg … -` writes (no duration, no index)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:
        self.data += bytes(b)
        return len(b)


def write_av(
    path: Path, data: np.ndarray, sr: int, container: str, codec: str, video: bool = False, live: bool = False
) -> Path:
    """Encode with FFmpeg through PyAV (AAC in M4A/MP4/MOV/ADTS, Opus in WebM/MKV, FLAC in Ogg, MP3, PCM).

    `live` writes through an unseekable pipe, so the muxer cannot go back to fill in duration or index."""
    import av

    layout = _LAYOUTS[data.shape[1]]
    sink = _Pipe() if live else None
    with av.open(sink or str(path), "w", format=container) as out:
        a = out.add_stream(codec, rate=sr, layout=layout)
        v = out.add_stream("mpeg4", rate=10) if video else None
        if v is not None:
            v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
            for i in range(max(1, int(data.shape[0] / sr * 10))):
                img = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20 % 255, np.uint8), format="rgb24")
                img.pts = i
                for p in v.encode(img):
                    out.mux(p)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T), format="fltp", layout=layout)
        frame.rate, frame.pts = sr, 0
        for p in [*a.encode(frame), *a.encode(None), *(v.encode(None) if v is not None else [])]:
            if p.pts is not None:  # FLAC's final STREAMINFO update has none, and Ogg refuses it
                out.mux(p)
    if sink is not None:
        path.write_bytes(bytes(sink.data))
    return path
