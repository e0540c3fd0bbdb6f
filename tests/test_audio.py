"""learner/audio/decode.py: every corpus file decodes to the right length and rate or raises the right typed
error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.audio import (
    AudioDecodeError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
    TooLongError,
    decode,
    probe,
    resample,
    to_mono,
)
from tests import audio_corpus as corpus

pytestmark = [pytest.mark.timeout(20), pytest.mark.filterwarnings("error")]  # no hang, no NumPy/PyAV warning


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, corpus.Clip]:
    return corpus.build(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def long_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """4 s files with a chirp (no two windows alike) for the windowed-reading tests."""
    d = tmp_path_factory.mktemp("long")
    t = np.arange(4 * 48000) / 48000
    x48 = (0.4 * np.sin(2 * np.pi * (200 + 100 * t) * t)).astype(np.float32)[:, None]
    x16 = x48[::3]
    return {
        "wav": corpus.write_sf(d / "a.wav", x16, 16000, "PCM_16"),
        "flac": corpus.write_sf(d / "a.flac", x16, 16000, "PCM_16"),
        "mp3": corpus.write_av(d / "a.mp3", x16, 16000, "mp3", "libmp3lame"),
        "ogg": corpus.write_sf(d / "a.ogg", x16, 16000, "VORBIS", "OGG"),
        "m4a": corpus.write_av(d / "a.m4a", x16, 16000, "ipod", "aac"),
        "webm": corpus.write_av(d / "a.webm", x48, 48000, "webm", "libopus"),
    }


def _check(clip: corpus.Clip, kind: str, call) -> None:
    """Run `call()`; it must give what `clip` promises, and nothing but an AudioDecodeError may escape."""
    try:
        d = call()
    except AudioDecodeError as e:
        assert clip.errors, f"{kind}: valid file refused: {e!r}"
        assert isinstance(e, clip.errors), f"{kind}: {type(e).__name__} ({e.reason}), expected {clip.errors}"
        assert e.path == str(clip.path) and str(e) == f"{clip.path}: {e.reason}" and e.reason
        return
    assert clip.valid or clip.partial, f"{kind}: decoded {d.duration_s:.3f} s, expected one of {clip.errors}"
    tol = 0.01 * clip.duration_s + clip.slack_s
    if clip.partial:
        assert 0 < d.duration_s <= clip.duration_s + tol, kind
    else:
        assert abs(d.duration_s - clip.duration_s) <= tol, (
            f"{kind}: {d.duration_s:.4f} s != {clip.duration_s} s"
        )
    assert (d.orig_sample_rate, d.channels) == (clip.sample_rate, clip.channels), kind
    assert d.sample_rate == d.orig_sample_rate and d.samples.dtype == np.float32 and d.samples.ndim == 1
    assert d.samples.size == round(d.duration_s * d.sample_rate)
    assert np.isfinite(d.samples).all() and np.abs(d.samples).max() <= 1.0
    if clip.decoder:
        assert d.decoder == clip.decoder, kind
    if clip.valid:
        assert (d.warning or "").startswith(clip.warning or "") and bool(d.warning) == bool(clip.warning), (
            kind,
            d.warning,
        )
    if clip.valid and d.duration_s >= 0.1:  # the corpus tone: channel k at 440·(k+1) Hz, amplitude 0.5
        t = np.arange(d.samples.size) / d.sample_rate
        amp = 2 * abs(np.mean(d.samples * np.exp(-2j * np.pi * 440 * t)))
        assert amp == pytest.approx(0.5 / clip.channels, rel=0.15), f"{kind}: 440 Hz at {amp:.3f}"


@pytest.mark.parametrize("kind", corpus.KINDS)
def test_corpus_file_decodes_or_raises_its_error(clips: dict[str, corpus.Clip], kind: str) -> None:
    clip = clips[kind]
    _check(clip, kind, lambda: decode(clip.path))
    _check(
        clip, kind, lambda: decode(clip.path.read_bytes(), name=str(clip.path))
    )  # bytes behave as the path


@pytest.mark.parametrize("kind", corpus.KINDS)
def test_probe_agrees_with_decode(clips: dict[str, corpus.Clip], kind: str) -> None:
    clip = clips[kind]
    try:
        info = probe(clip.path)
    except AudioDecodeError as e:
        assert clip.errors, f"{kind}: probe refused a valid file: {e!r}"
        return
    if clip.valid:
        assert (info.sample_rate, info.channels) == (clip.sample_rate, clip.channels), kind
        tol = 0.01 * clip.duration_s + clip.slack_s + 0.03  # compressed: the container's estimate
        assert abs(info.duration_s - clip.duration_s) <= tol, f"{kind}: probe says {info.duration_s:.3f} s"
        assert info.frames == pytest.approx(info.duration_s * info.sample_rate, abs=1)
    else:
        assert clip.partial, f"{kind}: probe accepted a file decode must refuse"


def test_bytes_input_equals_path_input(clips: dict[str, corpus.Clip]) -> None:
    for kind in ["wav-pcm_24", "flac-16", "mp3-lame-stereo", "ogg-vorbis", "m4a-aac", "webm-opus", "wav-s64"]:
        a, b = decode(clips[kind].path, 16000), decode(clips[kind].path.read_bytes(), 16000)
        np.testing.assert_array_equal(a.samples, b.samples)
        assert (a.orig_sample_rate, a.channels, a.decoder) == (b.orig_sample_rate, b.channels, b.decoder)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[spec.argmax()])


@pytest.mark.parametrize("target", [22050, 16000])
def test_resample_keeps_a_1khz_tone_at_1khz(target: int) -> None:
    x = corpus.tone(44100, 1.0, freq=1000.0)[:, 0]
    y = resample(x, 44100, target)
    assert y.dtype == np.float32 and y.size == round(x.size * target / 44100)
    assert abs(_peak_hz(y, target) - 1000.0) <= 1.0
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)  # no gain change


def test_decode_resamples_to_the_requested_rate(tmp_path: Path) -> None:
    path = corpus.write_sf(tmp_path / "k.wav", corpus.tone(44100, 1.0, freq=1000.0), 44100, "PCM_16")
    d = decode(path, 16000)
    assert (d.sample_rate, d.orig_sample_rate, d.samples.size, d.duration_s) == (16000, 44100, 16000, 1.0)
    assert abs(_peak_hz(d.samples, 16000) - 1000.0) <= 1.0


def test_stereo_to_mono_averages_channels_not_time(tmp_path: Path) -> None:
    left = corpus.tone(16000, 0.5)[:, 0]
    stereo = np.stack([left, np.zeros_like(left)], 1)
    np.testing.assert_allclose(to_mono(stereo), left / 2)
    assert to_mono(stereo).shape == (left.size,)
    d = decode(corpus.write_sf(tmp_path / "lr.wav", stereo, 16000, "FLOAT"))
    assert d.channels == 2 and d.samples.shape == (left.size,)
    np.testing.assert_allclose(d.samples, left / 2, atol=1e-6)


def test_nan_and_inf_are_cleaned(clips: dict[str, corpus.Clip]) -> None:
    x, right = decode(clips["wav-nan-inf"].path).samples, corpus.tone(16000, channels=2)[:, 1]
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
    assert x[150] == pytest.approx(right[150] / 2, abs=1e-6)  # left NaN → 0
    assert x[300] == pytest.approx((corpus.tone(16000)[300, 0] + 1.0) / 2, abs=1e-6)  # right +inf → 1
    assert x[400] == pytest.approx((1.0 + right[400]) / 2, abs=1e-6)  # left 1e30 → 1
    assert x[500] == pytest.approx(right[500] / 2, abs=1e-6)  # left signalling NaN → 0


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "m4a", "webm"])
def test_window_is_the_same_span_as_in_the_whole_file(long_files: dict[str, Path], fmt: str) -> None:
    full = decode(long_files[fmt])
    sr = full.sample_rate
    for offset, dur in [(0.3, 0.5), (2.5, 1.0)]:
        w = decode(long_files[fmt], offset_s=offset, duration_s=dur)
        start = round(offset * sr)
        assert w.samples.size == round(dur * sr) and w.duration_s == pytest.approx(dur)
        np.testing.assert_allclose(w.samples, full.samples[start : start + w.samples.size], atol=1e-6)
    tail = decode(long_files[fmt], offset_s=full.duration_s - 0.2, duration_s=5.0)
    assert tail.duration_s == pytest.approx(0.2, abs=1 / sr)
    with pytest.raises(EmptyAudioError, match="at 9 s"):
        decode(long_files[fmt], offset_s=9.0)


def test_window_far_into_a_long_file_seeks(tmp_path: Path) -> None:
    """Past SEEK_MIN_S, compressed audio is sought (roughly), not decoded from the start."""
    from learner.audio.decode import SEEK_MIN_S

    sr = 8000
    t = np.arange(int((SEEK_MIN_S + 5) * sr)) / sr
    x = (0.4 * np.sin(2 * np.pi * (100 + 30 * t) * t)).astype(np.float32)[:, None]
    for path in [
        corpus.write_av(tmp_path / "l.m4a", x, sr, "ipod", "aac"),
        corpus.write_sf(tmp_path / "l.ogg", x, sr, "VORBIS", "OGG"),
    ]:
        full, off = decode(path).samples, SEEK_MIN_S + 1
        w = decode(path, offset_s=off, duration_s=1.0).samples
        assert w.size == sr
        err = [np.abs(full[round(off * sr) + k :][: w.size] - w).max() for k in range(-48, 49)]
        assert min(err) < 0.02, f"{path.name}: the window is not within 6 ms of its place"


def test_limits(clips: dict[str, corpus.Clip]) -> None:
    for kind in ["wav-pcm_16", "flac-16", "m4a-aac", "webm-opus", "webm-live", "mp3-no-xing"]:
        path = clips[kind].path
        with pytest.raises(TooLongError):
            decode(path, max_duration_s=0.25)  # header, or while decoding when there is none
        with pytest.raises(TooLongError, match="MiB"):
            decode(path, max_bytes=100)
        assert decode(path, max_duration_s=0.6, max_bytes=10**6).duration_s > 0.4


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="no such file") as e:
        decode(tmp_path / "missing.wav")
    assert e.value.path == str(tmp_path / "missing.wav")
    with pytest.raises(NotAudioError):
        decode(tmp_path)
    with pytest.raises(NotAudioError, match=r"^upload\.mp3: "):
        decode(corpus.png_bytes(), name="upload.mp3")
    with pytest.raises(EmptyAudioError, match=r"^<bytes>: "):
        decode(b"")
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(NotAudioError, match="not a regular file"):  # would block forever if opened
        decode(tmp_path / "pipe.wav")


@pytest.mark.parametrize(
    "payload",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile /etc/passwd\n",
        b"RIFF\xff\xff\xff\x7fWAVEfmt ",
    ],
)
def test_hostile_playlists_and_headers_are_refused(payload: bytes) -> None:
    with pytest.raises((NotAudioError, CorruptAudioError)):
        decode(payload)


def test_module_does_not_import_torch() -> None:
    code = (
        "import io, sys, numpy as np, soundfile as sf, learner.audio as a\n"
        "b = io.BytesIO(); sf.write(b, np.zeros(800), 8000, format='WAV'); a.decode(b.getvalue(), 16000)\n"
        "a.probe(b.getvalue()); a.decode(bytes(100)) if 0 else None\n"
        "try:\n    a.decode(b'x' * 100)\nexcept a.NotAudioError:\n    pass\n"
        "assert 'torch' not in sys.modules, 'learner.audio pulled in torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1], timeout=60)


SR = 16000


# --- issue 13, item 4: audio lost without a word: a `warning` column, too-short files, chained Ogg ----------


def test_chained_ogg_decodes_every_link_sample_exactly(tmp_path):
    from learner.audio import decode, probe
    from tests.audio_corpus import _chained_ogg, tone

    parts = [tone(SR, 0.5, freq=440.0), tone(SR, 1.5, freq=880.0), tone(SR, 0.25, freq=220.0)]
    path = _chained_ogg(tmp_path / "chain.ogg", parts)
    whole = decode(path)
    assert whole.duration_s == pytest.approx(2.25, abs=1e-4) and whole.warning is None
    mid = decode(path, offset_s=0.5, duration_s=1.5).samples  # exactly the second link: 880 Hz
    spectrum = np.abs(np.fft.rfft(mid))
    assert np.argmax(spectrum) * SR / mid.size == pytest.approx(880, abs=2)
    assert probe(path).duration_s == pytest.approx(2.25, abs=1e-4)


# --- issue 13, item 2: limits count decoded samples (rate × channels × seconds), checked from the header ----


def test_sample_limit_refuses_high_rate_many_channel_files_from_the_header(tmp_path):
    import time

    from learner.audio import TooLongError, decode

    quiet = tmp_path / "quiet_384k_8ch.flac"
    sf.write(
        quiet, np.zeros((384_000 // 2, 8), np.int16), 384_000, subtype="PCM_16"
    )  # 0.5 s, small as silence
    ok = tmp_path / "ok_48k_stereo.flac"
    sf.write(ok, np.zeros((24_000, 2), np.int16), 48_000, subtype="PCM_16")
    start = time.perf_counter()
    with pytest.raises(
        TooLongError, match=r"0\.5 s at 384000 Hz × 8 channel\(s\): 2 M samples, over the 0 M limit"
    ):
        decode(quiet, 16000, max_duration_s=1.0)  # 1 s of limit = 96 000 samples (48 kHz stereo)
    assert time.perf_counter() - start < 1.0
    assert decode(ok, 16000, max_duration_s=1.0).duration_s == pytest.approx(0.5)
    assert decode(quiet, 16000).duration_s == pytest.approx(0.5)  # no limit asked: decoded
