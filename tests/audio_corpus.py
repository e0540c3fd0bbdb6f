"""A corpus of audio files people actually record, plus hostile ones, written on demand into a folder.

Other tests import it: `build(folder)` writes every case and returns {kind: Clip}; `build(folder, kinds)`
writes a subset; `tone`, `write_sf` and `write_av` (learner.audio.encode) make single files. Each `Clip`
says what `decode` must do with it: decode to `duration_s` (±1 %, plus `slack_s`) at `sample_rate`, or
raise one of `errors` (or, when `partial`, either raise one of them or decode to something no longer than
`duration_s`).
Clips are short (0.5 s) so a whole corpus builds and decodes in a few seconds on two cores.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from learner.audio.encode import tone, write_av, write_sf
from learner.audio.errors import (
    AudioDecodeError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
    UnsupportedCodecError,
)

SECONDS = 0.5


@dataclass(frozen=True)
class Clip:
    """One file and what decoding it must give."""

    path: Path
    duration_s: float | None = None  # expected (or, with `partial`, the most) decoded duration
    sample_rate: int | None = None  # original rate the decoder must report
    channels: int | None = None
    errors: tuple[type[AudioDecodeError], ...] = ()  # allowed errors; () = must decode
    partial: bool = False  # truncated: may decode to a shorter span instead of raising
    slack_s: float = 0.0  # extra tolerance (AAC priming/padding when the container has no edit list)
    decoder: str | None = None  # "soundfile" / "pyav" when the chain must pick that one
    warning: str | None = None  # the start of `Decoded.warning` (None: there must be none)

    @property
    def valid(self) -> bool:
        return not self.errors


def _wav(
    path: Path, sr: int = 16000, subtype: str = "PCM_16", channels: int = 1, seconds: float = SECONDS
) -> Path:
    return write_sf(path, tone(sr, seconds, channels), sr, subtype, "WAV")


CASES: dict[str, Callable[[Path], Clip]] = {}


def case(kind: str) -> Callable:
    def register(make: Callable[[Path], Clip]) -> Callable[[Path], Clip]:
        CASES[kind] = make
        return make

    return register


def _ok(path: Path, sr: int, ch: int, seconds: float = SECONDS, **kw) -> Clip:
    return Clip(path, seconds, sr, ch, **kw)


# --- valid files: WAV sample formats, rates and channel counts through libsndfile ---------------------
for _sub in [
    "PCM_U8",
    "PCM_16",
    "PCM_24",
    "PCM_32",
    "FLOAT",
    "DOUBLE",
    "ULAW",
    "ALAW",
    "IMA_ADPCM",
    "MS_ADPCM",
]:
    _slack = 512 / 44100 if "ADPCM" in _sub else 0.0  # ADPCM pads the last block
    case(f"wav-{_sub.lower()}")(
        lambda d, s=_sub, k=_slack: _ok(
            _wav(d / f"{s}.wav", 44100, s, 2), 44100, 2, slack_s=k, decoder="soundfile"
        )
    )
for _sr in [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000]:
    case(f"wav-{_sr}hz")(lambda d, r=_sr: _ok(_wav(d / f"r{r}.wav", r), r, 1))
for _ch in range(1, 9):
    case(f"wav-{_ch}ch")(lambda d, c=_ch: _ok(_wav(d / f"c{c}.wav", 48000, "PCM_24", c), 48000, c))
case("wav-float-8ch-192k")(lambda d: _ok(_wav(d / "f8.wav", 192000, "FLOAT", 8), 192000, 8))
case("wav-s64")(
    lambda d: _ok(
        write_av(d / "s64.wav", tone(44100, channels=2), 44100, "wav", "pcm_s64le"), 44100, 2, decoder="pyav"
    )
)
case("wav-f64-lavf")(lambda d: _ok(write_av(d / "f64.wav", tone(22050), 22050, "wav", "pcm_f64le"), 22050, 1))
case("w64")(lambda d: _ok(write_sf(d / "a.w64", tone(16000), 16000, "PCM_16", "W64"), 16000, 1))
case("rf64")(lambda d: _ok(write_sf(d / "a.rf64.wav", tone(16000), 16000, "PCM_16", "RF64"), 16000, 1))
case("aiff")(
    lambda d: _ok(write_sf(d / "a.aiff", tone(44100, channels=2), 44100, "PCM_16", "AIFF"), 44100, 2)
)
case("caf")(lambda d: _ok(write_sf(d / "a.caf", tone(44100), 44100, "PCM_24", "CAF"), 44100, 1))
case("au")(lambda d: _ok(write_sf(d / "a.au", tone(8000), 8000, "ULAW", "AU"), 8000, 1))
case("flac-16")(
    lambda d: _ok(
        write_sf(d / "a.flac", tone(44100, channels=2), 44100, "PCM_16"), 44100, 2, decoder="soundfile"
    )
)
case("flac-24-96k")(lambda d: _ok(write_sf(d / "b.flac", tone(96000), 96000, "PCM_24"), 96000, 1))
case("flac-8ch")(lambda d: _ok(write_sf(d / "c.flac", tone(48000, channels=8), 48000, "PCM_16"), 48000, 8))
case("ogg-vorbis")(
    lambda d: _ok(write_sf(d / "a.ogg", tone(44100, channels=2), 44100, "VORBIS", "OGG"), 44100, 2)
)
case("ogg-opus")(lambda d: _ok(write_sf(d / "a.opus", tone(48000), 48000, "OPUS", "OGG"), 48000, 1))
case("mp3-libsndfile")(
    lambda d: _ok(write_sf(d / "a.mp3", tone(44100), 44100, "MPEG_LAYER_III", "MP3"), 44100, 1)
)
case("mp3-lame-stereo")(
    lambda d: _ok(write_av(d / "b.mp3", tone(44100, channels=2), 44100, "mp3", "libmp3lame"), 44100, 2)
)
case("mp3-lame-22k")(lambda d: _ok(write_av(d / "c.mp3", tone(22050), 22050, "mp3", "libmp3lame"), 22050, 1))

# --- valid files only FFmpeg reads (PyAV) ----------------------------------------------------------------
_AAC = 2048  # priming + padding, in samples, that an M4A without an edit list keeps (ADTS: always)
case("m4a-aac")(
    lambda d: _ok(
        write_av(d / "a.m4a", tone(44100, channels=2), 44100, "ipod", "aac"),
        44100,
        2,
        slack_s=_AAC / 44100,
        decoder="pyav",
    )
)
case("m4a-aac-48k-mono")(
    lambda d: _ok(write_av(d / "b.m4a", tone(48000), 48000, "ipod", "aac"), 48000, 1, slack_s=_AAC / 48000)
)
case("m4a-alac")(
    lambda d: _ok(write_av(d / "c.m4a", tone(44100, channels=2), 44100, "ipod", "alac"), 44100, 2)
)
case("aac-adts")(
    lambda d: _ok(write_av(d / "a.aac", tone(44100), 44100, "adts", "aac"), 44100, 1, slack_s=_AAC / 44100)
)
case("mp4-video-aac")(
    lambda d: _ok(
        write_av(d / "a.mp4", tone(44100, channels=2), 44100, "mp4", "aac", True),
        44100,
        2,
        slack_s=_AAC / 44100,
        decoder="pyav",
    )
)
case("mov-aac")(
    lambda d: _ok(write_av(d / "a.mov", tone(48000), 48000, "mov", "aac"), 48000, 1, slack_s=_AAC / 48000)
)
case("webm-opus")(
    lambda d: _ok(
        write_av(d / "a.webm", tone(48000, channels=2), 48000, "webm", "libopus"), 48000, 2, decoder="pyav"
    )
)
case("mkv-opus-6ch")(
    lambda d: _ok(write_av(d / "a.mkv", tone(48000, channels=6), 48000, "matroska", "libopus"), 48000, 6)
)
case("webm-live")(
    lambda d: _ok(write_av(d / "live.webm", tone(48000), 48000, "webm", "libopus", live=True), 48000, 1)
)  # no duration in the header: probe must decode to count
case("mp3-no-xing")(
    lambda d: _ok(
        write_av(d / "live.mp3", tone(44100), 44100, "mp3", "libmp3lame", live=True),
        44100,
        1,
        slack_s=2304 / 44100,
    )
)  # no LAME tag: encoder delay stays in
case("3gp-aac")(
    lambda d: _ok(write_av(d / "a.3gp", tone(16000), 16000, "3gp", "aac"), 16000, 1, slack_s=_AAC / 16000)
)
case("mka-flac")(
    lambda d: _ok(write_av(d / "a.mka", tone(44100, channels=2), 44100, "matroska", "flac"), 44100, 2)
)
case("ac3")(
    lambda d: _ok(
        write_av(d / "a.ac3", tone(48000, channels=2), 48000, "ac3", "ac3"), 48000, 2, slack_s=1536 / 48000
    )
)
case("avi-mp3")(
    lambda d: _ok(
        write_av(d / "a.avi", tone(44100), 44100, "avi", "libmp3lame"), 44100, 1, slack_s=2304 / 44100
    )
)
case("ogg-flac")(
    lambda d: _ok(
        write_av(d / "b.ogg", tone(44100, channels=2), 44100, "ogg", "flac"), 44100, 2, decoder="pyav"
    )
)  # libsndfile: "unknown error in flac decoder"


# --- hostile files -----------------------------------------------------------------------------------------
def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(src: Path, dst: Path, keep: float | int) -> Path:
    data = src.read_bytes()
    return _bytes(dst, data[: keep if isinstance(keep, int) else int(len(data) * keep)])


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    """A valid little PNG image."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    rows = b"".join(b"\0" + bytes(3 * width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _wav_patch(d: Path, name: str, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(_wav(d / f"src-{name}", 16000).read_bytes())
    struct.pack_into(fmt, data, offset, value)
    return _bytes(d / name, bytes(data))


_NOT, _EMPTY, _CORRUPT = (NotAudioError,), (EmptyAudioError,), (CorruptAudioError,)
case("zero-bytes")(lambda d: Clip(_bytes(d / "zero.wav", b""), errors=_EMPTY))
case("wav-header-only")(lambda d: Clip(_cut(_wav(d / "h.wav"), d / "header.wav", 44), errors=_EMPTY))
case("random-bytes")(
    lambda d: Clip(_bytes(d / "random.wav", np.random.default_rng(0).bytes(20_000)), errors=_NOT)
)
case("png-as-mp3")(lambda d: Clip(_bytes(d / "image.mp3", png_bytes()), errors=_NOT))
case("text-as-ogg")(lambda d: Clip(_bytes(d / "notes.ogg", b"shopping list: eggs, milk\n" * 40), errors=_NOT))
case("html-as-m4a")(
    lambda d: Clip(_bytes(d / "page.m4a", b"<!doctype html><html><body>404</body></html>"), errors=_NOT)
)
case("video-only-mp4")(lambda d: Clip(_video_only(d / "silent.mp4"), errors=_NOT))
case("wav-riff-only")(lambda d: Clip(_cut(_wav(d / "r.wav"), d / "riff.wav", 12), errors=_CORRUPT))
case("wav-cut-in-fmt")(lambda d: Clip(_cut(_wav(d / "f.wav"), d / "fmt.wav", 30), errors=_CORRUPT))
# a WAV cut anywhere in its data decodes to exactly the whole frames that are left (16 kHz, 16-bit mono)
for _k in [46, 1000, 8001]:
    case(f"wav-cut-{_k}")(
        lambda d, k=_k: _ok(
            _cut(_wav(d / f"w{k}.wav"), d / f"cut{k}.wav", 44 + k),
            16000,
            1,
            (k // 2) / 16000,
            warning="truncated: header says 0.5 s",
        )
    )
case("wav-claims-more")(
    lambda d: _ok(
        _wav_patch(d, "more.wav", 40, "<I", 10**8), 16000, 1, warning="truncated: header says 3125 s"
    )
)
case("wav-streaming-sizes")(lambda d: _ok(_wav_patch(d, "stream.wav", 40, "<I", 0xFFFFFFFF), 16000, 1))
# a header that promises more than the file holds: decoded to what is there, with a `warning`
case("wav-truncated-3s")(
    lambda d: _ok(
        _cut(_wav(d / "t3.wav", seconds=3.0), d / "truncated3s.wav", 44 + 8000),
        16000,
        1,
        0.25,
        warning="truncated: header says 3 s",
    )
)
case("wav-header-2^31")(
    lambda d: _ok(
        _wav_patch(d, "inflated.wav", 40, "<I", 2**31), 16000, 1, warning="truncated: header says 6.711e+04 s"
    )
)
case("ogg-chained")(
    lambda d: _ok(
        _chained_ogg(d / "chained.ogg", [tone(16000), tone(16000, 1.0), tone(16000)]), 16000, 1, 2.0
    )
)
case("wav-unknown-codec")(
    lambda d: Clip(_wav_patch(d, "codec.wav", 20, "<H", 0x9999), errors=(UnsupportedCodecError,))
)
case("wav-rate-5hz")(lambda d: Clip(_wav_patch(d, "rate.wav", 24, "<I", 5), errors=(UnsupportedCodecError,)))
case("wav-nan-inf")(lambda d: _ok(_nan_wav(d / "nan.wav"), 16000, 2))
for _frac in [0.1, 0.5, 0.9]:
    case(f"flac-cut-{_frac}")(
        lambda d, f=_frac: Clip(
            _cut(write_sf(d / f"t{f}.flac", tone(44100), 44100), d / f"cut{f}.flac", f),
            0.5,
            44100,
            1,
            _CORRUPT,
            True,
        )
    )
    case(f"mp3-cut-{_frac}")(
        lambda d, f=_frac: Clip(
            _cut(write_av(d / f"t{f}.mp3", tone(44100), 44100, "mp3", "libmp3lame"), d / f"cut{f}.mp3", f),
            0.5,
            44100,
            1,
            _CORRUPT,
            True,
        )
    )
    case(f"ogg-cut-{_frac}")(
        lambda d, f=_frac: Clip(
            _cut(write_sf(d / f"t{f}.ogg", tone(16000, 8), 16000, "VORBIS", "OGG"), d / f"cut{f}.ogg", f),
            8.0,
            16000,
            1,
            _CORRUPT,
            True,
        )
    )  # 8 s: several Ogg pages
    case(f"m4a-cut-{_frac}")(
        lambda d, f=_frac: Clip(
            _cut(write_av(d / f"t{f}.m4a", tone(44100), 44100, "ipod", "aac"), d / f"cut{f}.m4a", f),
            0.6,
            44100,
            1,
            _CORRUPT,
            True,
        )
    )
    case(f"webm-cut-{_frac}")(
        lambda d, f=_frac: Clip(
            _cut(write_av(d / f"t{f}.webm", tone(48000), 48000, "webm", "libopus"), d / f"cut{f}.webm", f),
            0.5,
            48000,
            1,
            _CORRUPT + _EMPTY,
            True,
        )
    )


def _chained_ogg(path: Path, parts: list[np.ndarray]) -> Path:
    """Ogg Vorbis files one after the other in one file: a chain (what a stream recorder writes)."""
    chain = b""
    for i, x in enumerate(parts):
        link = write_sf(path.with_name(f"{path.stem}-{i}.oga"), x, 16000, "VORBIS", "OGG")
        chain += link.read_bytes()
        link.unlink()
    return _bytes(path, chain)


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            img = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            img.pts = i
            for p in v.encode(img):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    return path


def _nan_wav(path: Path) -> Path:
    x = tone(16000, channels=2)
    x[100:200, 0] = np.nan
    x[300, 1], x[301, 1], x[400, 0] = np.inf, -np.inf, 1e30
    x.view(np.uint32)[500, 0] = 0x7FA00000  # a signalling NaN: numpy warns when it is cast carelessly
    return write_sf(path, x, 16000, "FLOAT", "WAV")


KINDS = list(CASES)


def build(folder: Path, kinds: list[str] | None = None) -> dict[str, Clip]:
    """Write the cases (all, or `kinds`) into `folder`; {kind: Clip}."""
    folder.mkdir(parents=True, exist_ok=True)
    return {k: CASES[k](folder) for k in (kinds or KINDS)}
