"""learner/audio/pipeline.py: one ClipPipeline for training's store, the Predictor, both scorers and the
demo."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from learner.audio import ClipPipeline, WindowPlan, crop_pad, decode, trim_silence
from learner.audio.signal import windows
from learner.config import AudioConfig
from learner.data.sounds import make_sound
from tests.conftest import SMALL_AUDIO

CFG = AudioConfig(**SMALL_AUDIO)


def _wav(path, x, sr=16000):
    sf.write(path, x.astype(np.float32), sr)
    return path


def test_prepare_is_trim_then_centre_crop():
    pipe = ClipPipeline(CFG)
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(8000), rng.normal(0, 0.5, 40000), np.zeros(8000)]).astype(np.float32)
    want = crop_pad(trim_silence(x, CFG.trim_db, CFG.trim_mode), CFG.n_samples)
    got = pipe.prepare(x)
    assert got.shape == (CFG.n_samples,) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_load_is_decode_then_trim(tmp_path):
    pipe = ClipPipeline(CFG)
    x = np.concatenate(
        [np.zeros(4000), make_sound("tone", 16000, 0.5, np.random.default_rng(1)), np.zeros(4000)]
    )
    path = _wav(tmp_path / "a.wav", x)
    np.testing.assert_array_equal(pipe.load(path), trim_silence(decode(path, 16000).samples, CFG.trim_db))
    assert pipe.load(path).size < x.size


def test_window_plan_and_the_auto_rule():
    pipe = ClipPipeline(CFG)
    assert pipe.window_plan() == WindowPlan(16000, 8000)  # clip length, half-clip hop
    assert pipe.window_plan(2.0, 0.25) == WindowPlan(32000, 4000)
    assert not pipe.wants_windows(2 * CFG.n_samples) and pipe.wants_windows(2 * CFG.n_samples + 1)
    assert pipe.wants_windows(10, forced=True)
    for n in (100, 16000, 16001, 40000, 123457):
        assert WindowPlan(16000, 8000).count(n) == len(windows(np.zeros(n, np.float32), 16000, 8000)[1])


def test_chunks_equal_one_whole_signal_call():
    pipe = ClipPipeline(CFG)
    x = np.random.default_rng(2).normal(0, 0.3, 16000 * 9 + 1234).astype(np.float32)
    plan = pipe.window_plan(1.0, 0.25)
    whole, starts = pipe.windows(x, plan)
    parts = list(pipe.chunks(x, plan, chunk=5))
    assert len(parts) > 3
    np.testing.assert_array_equal(np.concatenate([w for w, _ in parts]), whole)
    np.testing.assert_allclose(np.concatenate([s for _, s in parts]), starts)
    assert starts[-1] == pytest.approx((x.size - 16000) / 16000)  # the tail window ends at the end


def test_top_k_is_stable_and_clamped():
    p = np.array([0.1, 0.4, 0.1, 0.4])
    assert ClipPipeline.top_k(p, 3).tolist() == [1, 3, 0]
    assert ClipPipeline.top_k(p, 0).tolist() == [1] and len(ClipPipeline.top_k(p, 99)) == 4


def test_prediction_carries_what_the_model_saw(trained_model, tmp_path):
    from learner import Predictor

    p = Predictor.from_dir(trained_model.model_dir, backend="torch")
    rng = np.random.default_rng(3)
    short = _wav(tmp_path / "short.wav", make_sound("tone", 16000, 1.0, rng))
    one = p.predict(short)
    assert not one.windowed and one.window_s == 0
    np.testing.assert_array_equal(one.clip, p.pipeline.prepare(decode(short, 16000).samples))
    long = _wav(
        tmp_path / "long.wav", np.concatenate([make_sound(k, 16000, 1.0, rng) for k in ("noise", "tone") * 3])
    )
    r = p.predict(long)
    assert r.windowed and (r.window_s, r.hop_s) == (1.0, 0.5) and r.clip.shape == (CFG.n_samples,)
    best = int(r.window_probs[:, p.classes.index(r.label)].argmax())
    np.testing.assert_allclose(p.predict_waves(r.clip[None])[0], r.window_probs[best], atol=1e-6)


def test_scoring_items_need_only_the_pipeline(trained_model, tmp_path):
    from learner import Predictor
    from learner.score.discover import discover
    from learner.score.rows import item_cost, load_item, score_items

    pipe = ClipPipeline(CFG)
    rng = np.random.default_rng(4)
    short = _wav(tmp_path / "s.wav", make_sound("tone", 16000, 1.0, rng))
    long = _wav(tmp_path / "l.wav", rng.normal(0, 0.3, 16000 * 5).astype(np.float32))
    refs = {f.path: f for f in discover([tmp_path]).files}
    a, b = load_item(refs[str(short)], pipe, None), load_item(refs[str(long)], pipe, None)
    np.testing.assert_array_equal(a.clip, pipe.prepare(decode(short, 16000).samples))
    assert b.clip is None and b.signal.size == 16000 * 5 and item_cost(b, pipe, None) == 9
    p = Predictor.from_dir(trained_model.model_dir, backend="torch")
    files, _, _ = score_items(p, [a, b])
    rows = {r["path"]: r for r in files.to_pylist()}
    for path in (str(short), str(long)):
        pred = p.predict(path)
        assert rows[path]["label"] == pred.label and rows[path]["score"] == pytest.approx(
            pred.score, abs=1e-6
        )
    assert rows[str(long)]["n_windows"] == 9
