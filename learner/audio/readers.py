"""The two readers behind `decode`: libsndfile (WAV/FLAC/Ogg/MP3, fast) first, then PyAV (FFmpeg: AAC/M4A,
WebM/Opus, video sound tracks, whatever libsndfile rejects), each reading only the span asked for into
bounded blocks. `decode_raw` returns file-rate mono blocks; `learner.audio.decode` resamples and checks.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from learner.audio.errors import (
    AudioDecodeError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
    Source,
    TooLongError,
    UnsupportedCodecError,
)
from learner.audio.signal import duration_to_samples, to_mono

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000
PYAV_TIMEOUT_S = 20.0  # FFmpeg gives up when one open / one packet read takes longer than this
SEEK_MIN_S = 30.0  # windows of compressed audio starting earlier decode from the start (sample-exact)
PREROLL_S = 0.5  # decoded and dropped after a seek into compressed audio, so the codec settles

Sink = Callable[["_Span", int, np.ndarray], None]  # (span, first frame, mono block): see _Span

# Demuxers FFmpeg may use: audio and audio-video containers only. Keeps out playlists (hls, concat,
# dash), image and text "formats" (png_pipe, tty) and anything that opens further files.
_AV_FORMATS = (
    "wav,w64,aiff,caf,au,flac,ogg,mp3,aac,loas,ac3,eac3,dts,truehd,mov,matroska,asf,avi,flv,mpegts,mpeg,"
    "amr,amrnb,amrwb,wv,ape,mpc,mpc8,tta,voc,dsf,iff,xwma"
)
# What libsndfile is given: WAV/W64/RF64, AIFF, AU, CAF, FLAC, Ogg, MP3. Its many other formats (PAF, SD2,
# MAT5, NIST, …) stay unreachable, which keeps its rarely used parsers away from hostile bytes.
SF_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"FORM", b".snd", b"caff", b"fLaC", b"OggS", b"ID3")
_MAGIC = SF_MAGIC + (
    b"\x1aE\xdf\xa3",
    b"wvpk",
    b"MAC ",
    b"#!AMR",
    b"0&\xb2u",
    b"TTA1",
    b"MPCK",
    b"DSD ",
    b"FLV",
)
_SF_FUZZY_SEEK = {"MP3", "OGG"}  # libsndfile seeks these only roughly (ms off): see decode()
_BLOCK = 1 << 20  # samples (all channels) per soundfile read: bounded memory whatever the channel count


def clean(x: np.ndarray, offset: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """(x - offset) * scale, NaN → 0, clipped to [-1, 1] (±inf → ±1): what a DAC plays, never NaN downstream.

    Quietly: signalling NaNs and huge values in hostile float files would otherwise warn on every cast."""
    with np.errstate(all="ignore"):
        if offset or scale != 1.0 or x.dtype not in (np.float32, np.float64) or not x.flags.writeable:
            x = (x.astype(np.float64) - offset) * scale
        x = np.nan_to_num(x, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.clip(x, -1.0, 1.0, out=x).astype(np.float32, copy=False)


def _name(src: Source, name: str | None) -> str:
    if name is not None:
        return name
    return "<bytes>" if isinstance(src, (bytes, bytearray, memoryview)) else str(src)


def _msg(e: BaseException) -> str:
    """The decoder's own words, without soundfile's '<_io.BytesIO at 0x…>' noise."""
    text = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e) or type(e).__name__
    where = getattr(e, "filename", None)
    if isinstance(where, str) and where.endswith("()"):
        text = f"{text} in {where}"
    return str(text).removeprefix("Error : ")


def _mpeg_sync(head: bytes) -> bool:
    return len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MPEG audio / ADTS frame header


def _looks_like_audio(head: bytes) -> bool:
    """Magic bytes of an audio container: decides 'corrupt audio' from 'not audio' when every decoder
    fails."""
    return head.startswith(_MAGIC) or head[4:8] == b"ftyp" or _mpeg_sync(head)


def _limit(label: str, seconds: float, max_s: float | None, what: str) -> None:
    if max_s is not None and seconds > max_s:
        raise TooLongError(label, f"{what} {seconds:.1f} s, over the {max_s:g} s limit")


def _check_rate(label: str, sr: int) -> None:
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise UnsupportedCodecError(
            label, f"sample rate {sr} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz"
        )


def prepare_source(
    src: Source | bytearray, name: str | None, max_bytes: int | None
) -> tuple[Source, str, bytes]:
    """(source, label, first 64 bytes) after the checks that need no decoder: exists, regular, size."""
    label = _name(src, name)
    if isinstance(src, (bytearray, memoryview)):
        src = bytes(src)
    if isinstance(src, bytes):
        size, head = len(src), src[:64]
    else:
        try:
            st = os.stat(src)
            if stat.S_ISDIR(st.st_mode):
                raise NotAudioError(label, "is a directory")
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
                raise NotAudioError(label, "not a regular file")
            with open(src, "rb") as f:
                size, head = st.st_size, f.read(64)
        except FileNotFoundError:
            raise AudioDecodeError(label, "no such file") from None
        except OSError as e:
            raise AudioDecodeError(label, f"cannot read it ({e.strerror or e})") from e
    if size == 0:
        raise EmptyAudioError(label, "empty file (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise TooLongError(label, f"{size / 2**20:.1f} MiB, over the {max_bytes / 2**20:g} MiB limit")
    return src, label, head


@dataclass(frozen=True)
class Read:
    """One read of a source, what every reader takes: `label` names it in messages and `head` is its first
    bytes (`prepare_source`); the span wanted starts at `offset_s` and lasts `dur_s` (None: to the end);
    `max_s` is the longest decoded length allowed; `sink` takes each block instead of keeping it."""

    src: Source
    label: str
    head: bytes
    offset_s: float = 0.0
    dur_s: float | None = None
    max_s: float | None = None
    sink: Sink | None = None


class _Span:
    """Collects mono blocks inside [offset, offset + duration) of the file's timeline (in frames), or hands
    each to `sink(span, frame, block)` instead (`learner.audio.stream`: long files in bounded memory)."""

    def __init__(self, read: Read, sr: int):
        self.label, self.sr, self.max_s, self.sink = read.label, sr, read.max_s, read.sink
        self.start = duration_to_samples(read.offset_s, sr)
        self.end = None if read.dur_s is None else self.start + max(1, duration_to_samples(read.dur_s, sr))
        self.chunks: list[np.ndarray] = []
        self.kept = 0

    def add(self, pos: int, mono: np.ndarray) -> bool:
        """Keep the part of `mono` (starting at file frame `pos`) inside the span; False once past its end."""
        _limit(self.label, (pos + mono.size) / self.sr, self.max_s, "decoded more than")
        lo, hi = max(self.start - pos, 0), mono.size if self.end is None else min(self.end - pos, mono.size)
        if hi > lo:
            if self.sink is None:
                self.chunks.append(mono[lo:hi])
            else:
                self.sink(self, pos + lo, mono[lo:hi])
            self.kept += hi - lo
        return self.end is None or pos + mono.size < self.end


@dataclass
class _Raw:
    span: _Span
    channels: int
    decoder: str
    frames_seen: int  # frames of the file met while decoding (0 = the decoder produced nothing)
    header_s: float  # duration the header states (0 = it does not say)


class _Broken(Exception):
    """PyAV found an audio stream but failed part way: corrupt, whatever the magic bytes say."""


class _Reseek(Exception):
    """A seek landed after the wanted offset (or without timestamps): decode from the start instead."""


def _sf_decode(read: Read) -> _Raw:
    import soundfile as sf

    src, label, offset_s = read.src, read.label, read.offset_s
    with sf.SoundFile(io.BytesIO(src) if isinstance(src, bytes) else str(src)) as f:
        sr, ch = int(f.samplerate), int(f.channels)
        _check_rate(label, sr)
        header_s = f.frames / sr if 0 < f.frames < 2**62 else 0.0
        _limit(label, header_s, read.max_s, "the header says")
        span = _Span(read, sr)
        if span.start and f.frames > 0 and span.start >= f.frames:
            raise EmptyAudioError(label, f"no audio frames at {offset_s:g} s (the file has {header_s:.2f} s)")
        pos, fuzzy = 0, f.format in _SF_FUZZY_SEEK
        if span.start and (not fuzzy or offset_s >= SEEK_MIN_S):
            pos = f.seek(span.start - round(PREROLL_S * sr) if fuzzy else span.start)
        block = max(1024, _BLOCK // ch)
        while True:
            want = block if span.end is None else max(1, min(block, span.end - pos))
            data = f.read(want, dtype="float32", always_2d=True)
            if not len(data) or not span.add(pos, to_mono(clean(data))):
                break
            pos += len(data)
    return _Raw(span, ch, "soundfile", pos + len(data), header_s)


# FFmpeg sample format (planar or packed) → dtype, offset, scale to [-1, 1)
_AV_SAMPLES = {
    "u8": (np.uint8, 128.0, 1 / 128),
    "s16": (np.int16, 0.0, 1 / 2**15),
    "s32": (np.int32, 0.0, 1 / 2**31),
    "s64": (np.int64, 0.0, 1 / 2**63),
    "flt": (np.float32, 0.0, 1.0),
    "dbl": (np.float64, 0.0, 1.0),
}


def _av_mono(frame: Any, label: str) -> np.ndarray:
    """One decoded frame → mono float32, for every sample format (PyAV's to_ndarray lacks s64)."""
    kind = frame.format.name.removesuffix("p")
    if kind not in _AV_SAMPLES:
        raise UnsupportedCodecError(label, f"sample format {frame.format.name!r} is not supported")
    dtype, offset, scale = _AV_SAMPLES[kind]
    n, ch = frame.samples, frame.layout.nb_channels
    if ch < 1:
        raise _Broken("a frame without channels")
    if frame.format.is_planar:
        x = np.stack([np.frombuffer(p, dtype=dtype, count=n) for p in frame.planes[:ch]], axis=1)
    else:
        x = np.frombuffer(frame.planes[0], dtype=dtype, count=n * ch).reshape(n, ch)
    return to_mono(clean(x, offset, scale))


def _no_nested(url: str, flags: int, options: dict) -> None:
    raise PermissionError(f"refusing to open {url!r} from inside a media file")


def _av_open(fh: Any) -> Any:
    """FFmpeg on audio demuxers only, with a timeout and no nested opens: a file cannot open others."""
    import av

    return av.open(
        fh,
        "r",
        container_options={"format_whitelist": _AV_FORMATS},
        timeout=PYAV_TIMEOUT_S,
        io_open=_no_nested,
        buffer_size=1 << 16,
    )


def _av_stream(c: Any, label: str, head: bytes) -> Any:
    """The audio stream to decode, or the error saying why there is none (a cut file or not audio at all)."""
    if not c.streams.audio:
        kinds = sorted({s.type for s in c.streams})  # an MP4 cut before its index shows only "data"
        broken = _looks_like_audio(head) and not {"video", "subtitle"} & set(kinds)
        kind = CorruptAudioError if broken else NotAudioError
        raise kind(label, f"no audio stream ({c.format.name}: {', '.join(kinds) or 'no streams'})")
    st = c.streams.best("audio") or c.streams.audio[0]
    if st.codec_context is None or st.codec_context.codec is None:
        raise UnsupportedCodecError(label, f"no decoder for its audio codec ({c.format.name})")
    return st


def _av_read(c: Any, st: Any, read: Read, seeked: bool) -> tuple[_Span | None, int, int, bool]:
    """Feeds decoded frames to a span until it has enough: (span, next frame, channels, stopped early).
    After a seek, the first frame's timestamp says where decoding starts; an implausible one means re-read."""
    tb, t0, label = st.time_base, st.start_time or 0, read.label
    span, pos, ch, idle = None, 0, 0, 0
    for packet in c.demux(st):
        frames = packet.decode()
        idle = 0 if frames else idle + 1
        if idle > 100_000:
            raise _Broken("the decoder made no progress")
        for frame in frames:
            if span is None:
                sr = int(frame.sample_rate)  # the first frame knows best (HE-AAC doubles the header's)
                _check_rate(label, sr)
                span = _Span(read, sr)
                if seeked:
                    pos = -1 if frame.pts is None else round(float((frame.pts - t0) * tb) * sr)
                    if not 0 <= pos <= span.start:
                        raise _Reseek
            elif frame.sample_rate != span.sr:
                raise UnsupportedCodecError(
                    label, f"sample rate changes mid-stream ({span.sr} → {frame.sample_rate} Hz)"
                )
            ch = max(ch, frame.layout.nb_channels)
            more = span.add(pos, _av_mono(frame, label))
            pos += frame.samples
            if not more:
                return span, pos, ch, True
    return span, pos, ch, False


def _av_decode(read: Read, seek: bool = True) -> _Raw:
    import av

    src, label, offset_s = read.src, read.label, read.offset_s
    fh = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115 (closed below)
    with fh, _av_open(fh) as c:
        st = _av_stream(c, label, read.head)
        tb, t0 = st.time_base, st.start_time or 0
        header_s = float(st.duration * tb) if st.duration and tb else max(c.duration or 0, 0) / 1e6
        _limit(label, header_s, read.max_s, "the header says")
        seeked = seek and offset_s >= SEEK_MIN_S and tb is not None
        if seeked:
            try:
                c.seek(int((offset_s - PREROLL_S) / tb) + t0, stream=st, backward=True)
            except Exception as e:
                raise _Reseek from e
        try:
            span, pos, ch, early = _av_read(c, st, read, seeked)
        except (AudioDecodeError, _Reseek, _Broken):
            raise
        except av.error.DecoderNotFoundError as e:
            raise UnsupportedCodecError(label, f"pyav: {_msg(e)} ({st.codec_context.name})") from e
        except Exception as e:
            raise _Broken(_msg(e)) from e
        if early:
            return _Raw(span, ch, "pyav", pos, header_s)
    if span is None:
        if header_s > 0:
            raise _Broken(f"the header promises {header_s:.2f} s but nothing decodes")
        span = _Span(replace(read, sink=None), int(st.codec_context.sample_rate or MIN_SAMPLE_RATE))
    return _Raw(span, ch or st.codec_context.channels, "pyav", pos, header_s)


def decode_raw(read: Read) -> _Raw:
    """soundfile first; PyAV when soundfile cannot open, fails part way, or finds no frames (a `sink` then
    sees frames from 0 again)."""
    label, head = read.label, read.head
    first = "not given it (no WAV/AIFF/AU/CAF/FLAC/Ogg/MP3 header)"
    try:
        if head.startswith(SF_MAGIC) or _mpeg_sync(head):
            raw = _sf_decode(read)
            if raw.frames_seen:
                return raw
            first = "read no audio frames"
    except AudioDecodeError:
        raise
    except Exception as e:
        first = _msg(e)
    try:
        try:
            return _av_decode(read)
        except _Reseek:
            return _av_decode(read, seek=False)
    except AudioDecodeError:
        raise
    except Exception as e:  # _Broken, or FFmpeg could not open it at all: then the magic bytes decide
        audio = isinstance(e, _Broken) or first == "read no audio frames" or _looks_like_audio(head)
        kind, what = (
            (CorruptAudioError, "corrupt or truncated") if audio else (NotAudioError, "not an audio file")
        )
        raise kind(label, f"{what} (soundfile: {first}; pyav: {_msg(e)})") from e
