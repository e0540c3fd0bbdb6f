"""Long files in bounded memory (issue 13, item 2): block-wise decoding, resampling and windows give the
whole-file path's samples, windows and rows. Sizes are forced small so short generated files cross many
block, part and chunk borders."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from learner.audio import AudioDecodeError, ClipPipeline, decode, resample
from learner.audio.stream import Resampler, StreamSizes, WindowStream, stream_decode, stream_threshold
from learner.config import AudioConfig
from learner.data.sounds import make_sound
from learner.score.discover import FileRef
from learner.score.items import window_plan
from learner.score.local import ScoreOptions, score
from learner.score.rows import load_item, score_items
from learner.score.streamed import Part, StreamedFiles, decode_in_parts
from learner.serve.predictor import Predictor
from tests.audio_corpus import write_av, write_sf
from tests.conftest import SMALL_AUDIO

SR = 16000
SMALL = StreamSizes(chunk=4, part=3000, block=5000)  # 1 s windows, 0.5 s hop: a file past 3 s streams


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    from tests.conftest import save_untrained

    return Predictor.from_dir(
        save_untrained(tmp_path_factory.mktemp("m") / "m", ["chirp", "clicks", "noise", "tone"]), batch_size=3
    )


def _scene(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Sounds of every class one after another, over low noise: windows that differ."""
    rng = np.random.default_rng(seed)
    kinds = ["tone", "chirp", "noise", "clicks"]
    x = np.concatenate([make_sound(kinds[i % 4], sr, 0.7, rng) for i in range(int(np.ceil(seconds / 0.7)))])
    x = x[: int(seconds * sr)] * 0.5 + 0.01 * rng.standard_normal(int(seconds * sr))
    return np.stack([x * (0.8 + 0.2 * k) for k in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("long")
    return {
        "flac": write_sf(d / "stereo48k.flac", _scene(48000, 7.3, 2), 48000, "PCM_16", "FLAC"),
        "wav": write_sf(d / "mono44k.wav", _scene(44100, 6.1, 1, 1), 44100, "PCM_16", "WAV"),
        "mp3": write_sf(d / "mono22k.mp3", _scene(22050, 6.4, 1, 2), 22050, "MPEG_LAYER_III", "MP3"),
        "m4a": write_av(d / "stereo44k.m4a", _scene(44100, 5.2, 2, 3), 44100, "ipod", "aac"),
        "short": write_sf(d / "short.wav", _scene(SR, 1.5, 1, 4), SR, "PCM_16", "WAV"),
    }


@pytest.mark.parametrize(
    "orig,target",
    [(48000, 16000), (44100, 16000), (384000, 22050), (8000, 16000), (22050, 22050), (44101, 16000)],
)
def test_resampler_in_blocks_equals_one_whole_call(orig, target):
    x = np.random.default_rng(orig).standard_normal(50_000).astype(np.float32)
    r = Resampler(orig, target, block=3000)
    cuts = np.sort(np.random.default_rng(1).integers(0, x.size, 25))
    out = [y for piece in np.split(x, cuts) for y in r.push(piece)] + [r.finish()]
    np.testing.assert_allclose(np.concatenate(out), resample(x, orig, target), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["flac", "wav", "mp3", "m4a"])
def test_stream_decode_gives_the_samples_and_facts_of_decode(files, kind):
    got: list[np.ndarray] = []
    d = stream_decode(files[kind], SR, got.append, block=4000)
    whole = decode(files[kind], SR)
    assert len(got) > 3  # in pieces
    np.testing.assert_allclose(np.concatenate(got), whole.samples, rtol=0, atol=1e-6)
    assert (d.duration_s, d.orig_sample_rate, d.channels, d.decoder, d.warning) == (
        whole.duration_s,
        whole.orig_sample_rate,
        whole.channels,
        whole.decoder,
        whole.warning,
    )


def test_stream_decode_keeps_the_decoders_errors_and_the_consumers_own(files, tmp_path):
    cut = tmp_path / "cut.flac"
    cut.write_bytes(files["flac"].read_bytes()[:5000])
    with pytest.raises(AudioDecodeError) as whole:
        decode(cut, SR)
    with pytest.raises(type(whole.value), match="cut.flac"):
        stream_decode(cut, SR, lambda x: None, block=4000)

    def stop(x):
        raise RuntimeError("consumer stops")

    with pytest.raises(
        RuntimeError, match="consumer stops"
    ):  # not turned into "corrupt audio", no PyAV retry
        stream_decode(files["flac"], SR, stop, block=4000)
    with pytest.raises(AudioDecodeError, match="header says 6.1 s, over the 3 s limit"):
        stream_decode(files["wav"], SR, lambda x: None, max_duration_s=3.0)


def test_window_stream_cuts_the_chunks_of_the_whole_signal():
    pipe = ClipPipeline(AudioConfig(**SMALL_AUDIO))
    plan = pipe.window_plan(1.0, 0.5)
    x = np.random.default_rng(0).standard_normal(int(7.77 * SR)).astype(np.float32)
    ws = WindowStream(pipe, plan, chunk=3)
    got = [c for piece in np.split(x, [1000, 1001, 20000, 60000, 61000]) for c in ws.push(piece)] + [
        ws.finish()
    ]
    want = list(pipe.chunks(x, plan, 3))
    assert [len(w) for w, _ in got] == [len(w) for w, _ in want]  # the same groups, so the same model batches
    for (gw, gs), (ww, wst) in zip(got, want):
        np.testing.assert_array_equal(gw, ww)
        np.testing.assert_array_equal(gs, wst)


def test_decode_in_parts_sends_a_long_file_in_order_and_holds_a_short_one(files):
    pipe = ClipPipeline(AudioConfig(**SMALL_AUDIO))
    parts: list[Part] = []
    d, streamed = decode_in_parts(FileRef(str(files["flac"]), 0, 0), pipe, (1.0, 0.5), SMALL, parts.append)
    threshold = stream_threshold(pipe, pipe.window_plan(1.0, 0.5), 4)
    assert (
        streamed and len(parts) > 3 and max(p.samples.size for p in parts) < threshold
    )  # held, then sent in parts
    np.testing.assert_allclose(
        np.concatenate([p.samples for p in parts] + [d.samples]),
        decode(files["flac"], SR).samples,
        rtol=0,
        atol=1e-6,
    )
    parts.clear()
    d, streamed = decode_in_parts(FileRef(str(files["short"]), 0, 0), pipe, (1.0, 0.5), SMALL, parts.append)
    assert not streamed and not parts and d.samples.size == int(1.5 * SR)


def _whole_rows(predictor, paths, window, chunk):
    """Today's path: each file decoded whole (`load_item` without parts), rows from `score_items`."""
    pipe = predictor.pipeline
    items = [load_item(FileRef(str(p), p.stat().st_size, p.stat().st_mtime_ns), pipe, window) for p in paths]
    return score_items(predictor, items, window=window, top_k=3, threshold=0.26, chunk=chunk)


def _same_table(a, b, keys):
    assert a.num_rows == b.num_rows > 0
    a, b = a.sort_by([(k, "ascending") for k in keys]), b.sort_by([(k, "ascending") for k in keys])
    for name in a.column_names:
        if name in ("scored_at", "earshot_version", "backend", "model_id", "model_revision"):
            continue
        x, y = a[name].to_pylist(), b[name].to_pylist()
        if name in ("score", "max_score", "mean_score"):
            np.testing.assert_allclose(
                np.array(x, dtype=float), np.array(y, dtype=float), rtol=1e-5, atol=1e-6
            )
        elif name == "top_k":
            assert [[t["label"] for t in r] for r in x] == [[t["label"] for t in r] for r in y]
            np.testing.assert_allclose(
                [[t["score"] for t in r] for r in x],
                [[t["score"] for t in r] for r in y],
                rtol=1e-5,
                atol=1e-6,
            )
        else:
            assert x == y, name


def test_scorer_streams_long_files_with_the_rows_of_whole_files(predictor, files, tmp_path, monkeypatch):
    monkeypatch.setattr(
        predictor, "batch_size", 2
    )  # the main process scores a model batch of windows at a time
    paths = [files[k] for k in ("flac", "wav", "mp3", "m4a", "short")]
    window = (1.0, 0.5)
    files_w, wins_w, events_w = _whole_rows(predictor, paths, window, SMALL.chunk)
    opts = ScoreOptions(
        str(tmp_path / "out.parquet"),
        window=window,
        top_k=3,
        threshold=0.26,
        workers=2,
        batch_size=3,
        stream=SMALL,
        progress=False,
    )
    summary = score([str(p) for p in paths], predictor, opts)
    assert (summary.scored, summary.failed) == (5, 0)
    rel = (
        "path",
        "label",
        "score",
        "top_k",
        "duration_s",
        "sample_rate",
        "channels",
        "n_windows",
        "events",
        "error",
        "decoder",
        "warning",
    )
    _same_table(pq.read_table(tmp_path / "out.parquet").select(rel), files_w.select(rel), ["path"])
    _same_table(pq.read_table(tmp_path / "out.windows.parquet"), wins_w, ["path", "start_s"])
    _same_table(pq.read_table(tmp_path / "out.events.parquet"), events_w, ["path", "label", "start_s"])
    n = {r["path"]: r["n_windows"] for r in files_w.to_pylist()}
    assert n[str(files["flac"])] == 14 and n[str(files["short"])] == 2


def test_a_decoder_error_part_way_drops_what_was_scored_of_the_file(predictor):
    ref = FileRef("/long.flac", 1, 1)
    stream = StreamedFiles(predictor, (1.0, 0.5), chunk=2)
    from learner.score.rows import Item

    parts = [Part(ref.path, np.zeros(SR * 2, np.float32)) for _ in range(2)]
    out = list(stream.items(iter([*parts, Item(ref, error="corrupt or truncated (lost sync)")])))
    assert out[:2] == [None, None]  # a tick per part: the scorer may commit what is due meanwhile
    out = [it for it in out if it is not None]
    assert [it.error for it in out] == ["corrupt or truncated (lost sync)"] and out[0].scored is None
    assert not stream.open  # nothing of it kept
    ok = Item(FileRef("/b.flac", 1, 1), signal=np.zeros(SR, np.float32), streamed=True, duration_s=5.0)
    out = [it for it in stream.items(iter([Part("/b.flac", np.zeros(SR * 4, np.float32)), ok])) if it]
    assert out[0].signal is None and len(out[0].scored[1]) == 9  # 5 s in 1 s windows every 0.5 s


@pytest.mark.parametrize("batch_size", [3, 2])  # 2 tiles the chunk of 4: windows scored a batch at a time
def test_predict_on_a_long_file_equals_the_whole_file_path(predictor, files, batch_size, monkeypatch):
    monkeypatch.setattr(predictor, "batch_size", batch_size)
    monkeypatch.setattr(predictor, "stream_sizes", SMALL)
    for kind in ("flac", "mp3", "short"):
        whole = predictor.predict_decoded(
            decode(files[kind], SR), top_k=3, window=1.0, hop=0.5, path=str(files[kind])
        )
        long = predictor.predict(files[kind], top_k=3, window=1.0, hop=0.5)
        assert long.labels == whole.labels and long.windowed
        np.testing.assert_allclose(long.window_probs, whole.window_probs, rtol=1e-5, atol=1e-6)
        assert long.window_starts == whole.window_starts and long.duration_s == whole.duration_s
        np.testing.assert_allclose(long.clip, whole.clip, atol=1e-6)
        assert [e.as_dict() for e in long.events] == [e.as_dict() for e in whole.events]


def test_predict_builds_each_window_once(predictor, files, monkeypatch):
    import learner.audio.pipeline as pipeline_module

    built = []
    real = pipeline_module.windows
    monkeypatch.setattr(
        pipeline_module, "windows", lambda x, n, hop: built.append(len(real(x, n, hop)[1])) or real(x, n, hop)
    )
    r = predictor.predict(files["flac"], window=1.0, hop=0.5)  # held whole: windows, then the best one again
    assert sum(built) == len(r.window_starts) + 1 == 15
    built.clear()
    monkeypatch.setattr(predictor, "stream_sizes", SMALL)
    r = predictor.predict(files["flac"], window=1.0, hop=0.5)  # in blocks
    assert sum(built) == len(r.window_starts) == 14


def test_jobs_predict_has_the_scorers_limits(predictor, files, capsys, monkeypatch):
    from jobs.predict import main

    assert main([str(files["wav"]), "--model", str(predictor.folder), "--max-duration", "3"]) == 1
    assert "header says 6.1 s, over the 3 s limit" in capsys.readouterr().err
    seen = {}
    real = Predictor.predict

    def spy(self, src, **kw):
        seen.update(kw)
        return real(self, src, **kw)

    monkeypatch.setattr(Predictor, "predict", spy)
    assert main([str(files["short"]), "--model", str(predictor.folder)]) == 0
    from learner.audio import SCORE_MAX_BYTES, SCORE_MAX_S

    assert (seen["max_duration_s"], seen["max_bytes"]) == (SCORE_MAX_S, SCORE_MAX_BYTES)


def _parts(task, emit=None):
    """A decoding task that sends `task` parts, then its result."""
    for k in range(task):
        emit(k)
    return "done"


def test_pool_waits_for_the_consumer_without_timing_out():
    from learner.workers import DecodePool

    with DecodePool(_parts, (), workers=1, timeout_s=0.3, stream=True, part_buffer=1) as pool:
        got = []
        for r in pool.imap_unordered([4], on_error=lambda t, why: why):
            got.append(r)
            time.sleep(0.4)  # longer than the time limit: the worker waits for its go-ahead, untimed
    assert got == [0, 1, 2, 3, "done"]


class _Decoded:
    def __init__(self, signal: np.ndarray) -> None:
        self.signal = signal


def _big_result(task, folder):
    """A decoded 'file' of 1 MB; a marker file says it was produced."""
    from pathlib import Path

    Path(folder, f"made-{task}").touch()
    return _Decoded(np.zeros(2**18, np.float32))


def test_pool_bounds_the_bytes_waiting_not_only_their_count(tmp_path):
    """Ten-minute recordings are ~50 MB each at the model's rate: 4 × a batch of them waiting for a slow model
    would be gigabytes. With `max_bytes`, decoding pauses once that much waits unconsumed."""
    from learner.workers import DecodePool

    waiting = []
    with DecodePool(
        _big_result, (str(tmp_path),), workers=1, buffer=64, depth=1, max_bytes=3 * 2**20
    ) as pool:
        for k, r in enumerate(pool.imap_unordered(range(12), on_error=lambda t, why: why), start=1):
            assert r.signal.nbytes == 2**20
            time.sleep(0.15)  # a slow model: the decoder would run far ahead without the byte bound
            waiting.append(len(list(tmp_path.glob("made-*"))) - k)
    assert max(waiting) <= 3 + 1, waiting  # max_bytes / 1 MB waiting, plus the one task in flight (depth 1)
    assert len(waiting) == 12


def test_long_file_threshold_is_where_whole_files_took_more_than_one_chunk():
    pipe = ClipPipeline(AudioConfig(**SMALL_AUDIO))
    plan = window_plan(pipe, (1.0, 0.5))
    n = stream_threshold(pipe, plan, 4)
    assert n == SR + 4 * SR // 2
    assert (
        len(list(pipe.chunks(np.zeros(n), plan, 4))) == 1
        and len(list(pipe.chunks(np.zeros(n + 1), plan, 4))) == 2
    )
