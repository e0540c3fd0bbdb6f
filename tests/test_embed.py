"""`earshot embed`: the scorer's "embeddings" kind — vectors per file or window, error rows, penultimate
features of a model, SIGKILL + resume, long files streamed in bounded batches, Ray = local."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from learner.audio.stream import StreamSizes
from learner.data.sounds import make_sound
from learner.embed.embedder import PredictorEmbedder
from learner.embed.load import load_embedder
from learner.score.discover import discover
from learner.score.local import ScoreOptions, score
from learner.score.store import read_results
from learner.serve.predictor import Predictor

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.conftest import save_untrained

    return save_untrained(tmp_path_factory.mktemp("m") / "m", ["chirp", "clicks", "noise", "tone"])


@pytest.fixture(scope="module")
def embedder(model_dir) -> PredictorEmbedder:
    return load_embedder(str(model_dir), batch_size=8)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for i, kind in enumerate(["tone", "chirp", "noise", "clicks"]):
        sf.write(d / f"{i}_{kind}.wav", make_sound(kind, SR, 1.0, rng), SR)
    sf.write(d / "long.flac", make_sound("tone", 48000, 5.2, rng), 48000)  # > 2 clips: windows
    (d / "broken.wav").write_bytes(b"RIFF....WAVEfmt")
    return d


def _vectors(t) -> np.ndarray:
    return np.stack(t["vector"].to_numpy(zero_copy_only=False))


def test_penultimate_features_are_what_the_final_layer_sees(embedder, model_dir):
    """The head applied to the features gives the model's logits: they are the layer before the output."""
    import torch

    p = Predictor.from_dir(model_dir, backend="torch")
    waves = np.random.default_rng(1).standard_normal((3, p.cfg.n_samples)).astype(np.float32) * 0.1
    feats = embedder.embed_batch(waves)
    assert feats.shape == (3, embedder.dim) == (3, 512) and feats.dtype == np.float32
    with torch.inference_mode():
        logits = embedder.head(torch.from_numpy(feats)).numpy()
    np.testing.assert_allclose(logits, p.backend(waves), rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats[0], feats[1])


def test_rows_per_file_and_per_window_with_an_error_row(embedder, audio_dir, tmp_path):
    files = score(
        [audio_dir], embedder, ScoreOptions(str(tmp_path / "f.parquet"), kind="embeddings", progress=False)
    )
    assert (files.scored, files.failed) == (5, 1)
    t = read_results(tmp_path / "f.parquet")
    assert t.schema.field("vector").type.list_size == embedder.dim and t.num_rows == 6
    rows = {Path(r["path"]).name: r for r in t.to_pylist()}
    bad = rows["broken.wav"]
    assert bad["vector"] is None and bad["error"] and bad["start_s"] is None
    one = rows["0_tone.wav"]
    assert (one["start_s"], one["end_s"]) == (0.0, pytest.approx(1.0))
    clip = embedder.pipeline.prepare(embedder.pipeline.decode(audio_dir / "0_tone.wav").samples)
    np.testing.assert_allclose(one["vector"], embedder.embed_batch(clip[None])[0], rtol=1e-5, atol=1e-6)
    opts = ScoreOptions(str(tmp_path / "w.parquet"), kind="embeddings", window=(1.0, 0.5), progress=False)
    score([audio_dir], embedder, opts)
    w = read_results(tmp_path / "w.parquet")
    long = w.filter(np.array([p.endswith("long.flac") for p in w["path"].to_pylist()]))
    starts = long["start_s"].to_pylist()
    assert starts == pytest.approx([0.5 * i for i in range(9)] + [4.2])  # the tail window ends at the end
    assert long["end_s"].to_pylist()[-1] == pytest.approx(5.2)
    # the file row of a long file is the mean of its windows' vectors (as scores average windows)
    np.testing.assert_allclose(rows["long.flac"]["vector"], _vectors(long).mean(axis=0), rtol=1e-4, atol=1e-5)
    assert w.num_rows == 4 * 1 + 10 + 1  # 1 s clips: one window each; the broken file: one error row


def test_long_files_stream_in_bounded_batches_with_the_same_vectors(embedder, audio_dir, tmp_path):
    seen: list[int] = []
    real = embedder.predict_waves

    def counting(waves):
        seen.append(len(waves))
        return real(waves)

    embedder.predict_waves = counting
    try:
        opts = ScoreOptions(
            str(tmp_path / "s.parquet"),
            kind="embeddings",
            window=(1.0, 0.5),
            stream=StreamSizes(chunk=4, part=3000, block=5000),  # a file past 3 s streams
            batch_size=2,
            progress=False,
        )
        score([audio_dir / "long.flac"], embedder, opts)
    finally:
        del embedder.predict_waves
    assert max(seen) <= 4 < 10  # never the file's 10 windows at once
    streamed = read_results(tmp_path / "s.parquet")
    whole = ScoreOptions(str(tmp_path / "h.parquet"), kind="embeddings", window=(1.0, 0.5), progress=False)
    score([audio_dir / "long.flac"], embedder, whole)
    np.testing.assert_allclose(
        _vectors(streamed), _vectors(read_results(tmp_path / "h.parquet")), rtol=1e-4, atol=1e-5
    )


def test_resume_refuses_another_embedder(embedder, audio_dir, tmp_path, model_dir):
    out = str(tmp_path / "e.parquet")
    score([audio_dir], embedder, ScoreOptions(out, kind="embeddings", progress=False))
    scores = Predictor.from_dir(model_dir)
    with pytest.raises(ValueError, match="was made with"):
        score([audio_dir], scores, ScoreOptions(out, resume=True, progress=False))
    again = score([audio_dir], embedder, ScoreOptions(out, kind="embeddings", resume=True, progress=False))
    assert (again.scored, again.skipped) == (0, 6)


def test_sigkill_then_resume_gives_one_row_per_window(model_dir, tmp_path):
    src = tmp_path / "many"
    rng = np.random.default_rng(3)
    for i in range(80):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        sf.write(src / f"d{i % 5}" / f"{i:03d}.wav", make_sound(("tone", "noise")[i % 2], SR, 1.4, rng), SR)
    (src / "d0" / "broken.wav").write_bytes(b"RIFF....WAVEfmt")
    out = tmp_path / "o.parquet"
    cmd = [sys.executable, "-m", "jobs.cli", "embed", "--model", str(model_dir), str(src)]
    cmd += ["--output", str(out), "--windows", "1,0.5", "--part-rows", "10", "--batch-size", "8"]
    cmd += ["--workers", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    first = read_results(out)
    assert 0 < len(set(first["path"].to_pylist())) < 81, "the kill should land mid-run"
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "embedded " in r.stdout and " skipped " in r.stdout
    t = read_results(out)
    keys = list(zip(t["path"].to_pylist(), t["start_s"].to_pylist()))
    assert len(keys) == len(set(keys)) == 80 * 2 + 1  # 1.4 s: windows at 0 and 0.5 s; one error row
    assert {p for p, _ in keys} == {f.path for f in discover([src]).files}
    assert t.filter(t["error"].is_valid())["path"].to_pylist() == [str(src / "d0" / "broken.wav")]
    assert not list(out.glob(".*tmp"))


@pytest.mark.timeout(600)  # Ray start-up is slow on 2 loaded cores (~30 s; minutes at load 10)
def test_ray_engine_gives_the_local_vectors(model_dir, embedder, audio_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from learner.score.ray_engine import RayOptions, score_ray

    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    opts = dict(kind="embeddings", window=(1.0, 0.5), progress=False)
    score([audio_dir], embedder, ScoreOptions(str(local), **opts))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        s = score_ray([audio_dir], str(model_dir), ScoreOptions(str(remote), **opts), RayOptions(chunk=4))
    finally:
        if started:
            ray.shutdown()
    assert (s.scored, s.failed, s.engine) == (5, 1, "ray")
    a, b = (
        read_results(o).sort_by([("path", "ascending"), ("start_s", "ascending")]) for o in (local, remote)
    )
    assert a.schema.equals(b.schema) and a["path"].to_pylist() == b["path"].to_pylist()
    assert a["embedder"].to_pylist() == b["embedder"].to_pylist()
    ok = a["vector"].is_valid().to_pylist()
    assert b["vector"].is_valid().to_pylist() == ok
    va, vb = (np.stack([v for v, k in zip(x["vector"].to_pylist(), ok) if k]) for x in (a, b))
    np.testing.assert_allclose(va, vb, rtol=1e-4, atol=1e-5)
    assert pq.read_schema(next(remote.glob("part-*.parquet"))).field("vector").type.list_size == 512


def test_a_backbone_embeds_windows_at_its_own_rate(tmp_path):
    """aisfx with random weights of the real shapes: 44.1 kHz windows, 1024-d (mean ‖ max of blocks)."""
    import torch

    from learner.embed.backbones import BackboneEmbedder
    from learner.model.backbones import build_backbone

    torch.manual_seed(0)
    emb = BackboneEmbedder(build_backbone("aisfx"), clip_s=2.5, batch_size=4)
    assert (emb.name, emb.dim, emb.sample_rate, emb.clip_s) == ("aisfx", 1024, 44100, 2.5)
    rng = np.random.default_rng(4)
    sf.write(tmp_path / "a.wav", make_sound("chirp", 22050, 3.0, rng), 22050)
    opts = ScoreOptions(str(tmp_path / "b.parquet"), kind="embeddings", window=(2.5, 2.5), progress=False)
    s = score([tmp_path / "a.wav"], emb, opts)
    t = read_results(tmp_path / "b.parquet")
    assert (s.scored, t.num_rows) == (1, 2) and t["start_s"].to_pylist() == pytest.approx([0.0, 0.5])
    x = emb.pipeline.decode(tmp_path / "a.wav").samples  # resampled to 44.1 kHz
    with torch.inference_mode():
        n = int(2.5 * 44100)
        direct = emb.backbone(torch.from_numpy(np.stack([x[:n], x[-n:]])))
    np.testing.assert_allclose(_vectors(t), direct.numpy(), rtol=1e-4, atol=1e-5)
    meta = emb.meta()
    assert meta["licence"] and "Ma" in meta["citation"]
