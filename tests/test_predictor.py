"""learner/serve/predictor.py: the Predictor loads, pickles and checks its input; it takes arrays with their
rate and is callable as a pipeline (issue 12, part C, item 17), refuses what score refuses (issue 25, item 12)
and checks windows and batch size (issue 25, items 8-10)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.audio import AudioDecodeError
from learner.data.sounds import make_sound
from learner.folder import ModelDirError
from learner.serve.predictor import Predictor
from tests.conftest import save_untrained


def test_predictor_matches_the_learners_own_validation_predictions(trained_model):
    learn = trained_model.learner
    probs, _ = learn.get_preds(ds_idx=1)
    paths = list(learn.dls.valid_ds.items["path"])
    p = Predictor.from_dir(trained_model.model_dir, backend="torch")
    ours = np.stack([r.probs for r in p.predict_many(paths)])
    assert ours.shape == tuple(probs.shape)
    np.testing.assert_allclose(ours, probs.numpy(), atol=1e-5)
    one = p.predict(paths[0], window=None)
    np.testing.assert_allclose(one.probs, probs[0].numpy(), atol=1e-5)
    assert one.labels[0] == p.classes[int(probs[0].argmax())] and len(one.labels) == 4


def test_default_load_never_unpickles(trained_model, monkeypatch, tmp_path):
    def refuse(*a, **k):
        raise AssertionError("pickle touched")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    import torch

    monkeypatch.setattr(torch, "load", refuse)
    p = Predictor.from_dir(trained_model.model_dir)
    assert p.predict_waves(np.zeros((1, p.cfg.n_samples), dtype=np.float32)).shape == (1, 4)


def test_pickle_only_when_asked(trained_model, tmp_path):
    d = tmp_path / "pkl_only"
    shutil.copytree(trained_model.model_dir, d)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="allow_pickle"):
        Predictor.from_dir(d)
    with pytest.warns(UserWarning, match="unpickling"):
        p = Predictor.from_dir(d, allow_pickle=True)
    ref = Predictor.from_dir(trained_model.model_dir)
    x = np.random.default_rng(0).normal(0, 0.1, (2, ref.cfg.n_samples)).astype(np.float32)
    np.testing.assert_allclose(p.predict_waves(x), ref.predict_waves(x), atol=1e-5)


def test_windows_on_a_60_second_file(trained_model, tmp_path):
    p = Predictor.from_dir(trained_model.model_dir)
    rng = np.random.default_rng(3)
    sr = 16000
    # 60 s: tone for the first 20 s, clicks for the next 20, noise bursts for the last 20
    x = np.concatenate(
        [
            np.concatenate([make_sound(k, sr, 1.0, rng) for _ in range(20)])
            for k in ("tone", "clicks", "noise")
        ]
    )
    sf.write(tmp_path / "long.wav", x, sr)
    r = p.predict(tmp_path / "long.wav", window=1.0, hop=1.0, top_k=4)
    assert r.window_probs.shape == (60, 4) and r.window_starts[:3] == [0.0, 1.0, 2.0]
    win_labels = [p.classes[i] for i in r.window_probs.argmax(1)]
    # each 20 s stretch is mostly labelled with what was playing then (a 2-epoch model: not every window)
    assert np.mean([lab == "tone" for lab in win_labels[:20]]) >= 0.7
    assert np.mean([lab == "clicks" for lab in win_labels[20:40]]) >= 0.7
    assert np.mean([lab == "noise" for lab in win_labels[40:]]) >= 0.7
    np.testing.assert_allclose(r.probs, r.window_probs.mean(0), atol=1e-6)
    assert r.duration_s == pytest.approx(60.0)
    auto = p.predict(tmp_path / "long.wav")  # auto: windows because 60 s > 2 × the 1 s clip
    assert auto.window_probs is not None and len(auto.window_starts) == 119


def test_bad_inputs_come_back_as_errors_in_batches(trained_model, tmp_path):
    p = Predictor.from_dir(trained_model.model_dir)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "ok.wav", make_sound("tone", 16000, 1.0, np.random.default_rng(0)), 16000)
    res = p.predict_many([tmp_path / "empty.wav", tmp_path / "ok.wav"])
    assert isinstance(res[0], AudioDecodeError) and "empty.wav" in str(res[0])
    assert res[1].label == "tone"
    with pytest.raises(AudioDecodeError):
        p.predict(tmp_path / "empty.wav")


SR = 16000


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve_clips") / "tone.wav"
    sf.write(path, make_sound("tone", SR, 1.0, np.random.default_rng(2)), SR)
    return path


# --- issue 12 part C, item 17: a NumPy signal with its rate; the Predictor as a callable pipeline -----------


def test_predictor_takes_arrays_with_their_rate_like_files(trained_model, tmp_path):
    from learner.audio import AudioDecodeError
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(trained_model.model_dir)
    x = make_sound("chirp", 44100, 1.2, np.random.default_rng(5))
    sf.write(tmp_path / "chirp.wav", x, 44100, subtype="FLOAT")
    from_file = p.predict(tmp_path / "chirp.wav")
    from_array = p.predict(x, sample_rate=44100)
    np.testing.assert_allclose(from_array.probs, from_file.probs, atol=1e-6)
    assert from_array.duration_s == pytest.approx(1.2, abs=1e-4) and from_array.sample_rate == 44100
    # int16 stereo as Gradio hands it over: (rate, (samples, channels)); and channels-first as torchaudio
    # holds it
    pcm = np.round(np.stack([x, x], axis=1) * 32767).astype(np.int16)
    sf.write(tmp_path / "chirp16.wav", pcm, 44100, subtype="PCM_16")
    ref = p.predict(tmp_path / "chirp16.wav").probs
    np.testing.assert_allclose(p.predict((44100, pcm)).probs, ref, atol=1e-6)
    np.testing.assert_allclose(p.predict(pcm.T.copy(), sample_rate=44100).probs, ref, atol=1e-6)
    np.testing.assert_allclose(
        p.predict({"array": x, "sampling_rate": 44100}).probs, from_file.probs, atol=1e-6
    )
    with pytest.raises(AudioDecodeError, match="needs its sample rate"):
        p.predict(x)


def test_predictor_is_callable_like_an_audio_classification_pipeline(trained_model, tone):
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(trained_model.model_dir)
    out = p(str(tone), top_k=3)
    assert [set(d) for d in out] == [{"label", "score"}] * 3
    assert out[0]["label"] == "tone" and out[0]["score"] >= out[1]["score"] >= out[2]["score"]
    x, sr = sf.read(tone, dtype="float32")
    same = p(x, sampling_rate=sr, top_k=3)
    assert [d["label"] for d in same] == [d["label"] for d in out]
    np.testing.assert_allclose([d["score"] for d in same], [d["score"] for d in out], atol=1e-6)
    both = p([str(tone), {"raw": x, "sampling_rate": sr}], top_k=2)
    assert len(both) == 2 and [d["label"] for d in both[0]] == [d["label"] for d in both[1]] == [
        d["label"] for d in out[:2]
    ]
    assert len(p(str(tone))) == 4  # default top-5, capped at the 4 classes


# --- issue 25, item 12: one too-short rule for score, predict and the demo ----------------------------------


def test_predictor_refuses_what_score_refuses(high_low_model, fragment):
    from learner.audio import TooShortError
    from learner.score.rows import load_item

    p = Predictor.from_dir(high_low_model)
    with pytest.raises(TooShortError, match="too short to classify: 0.03 s of audio, the minimum is 0.05 s"):
        p.predict(fragment)
    with pytest.raises(TooShortError):
        p.predict(fragment, window=None)
    (err,) = p.predict_many([fragment])
    assert isinstance(err, TooShortError) and str(fragment) in str(err)
    from learner.score.discover import FileRef

    item = load_item(FileRef(str(fragment), 0, 0), p.pipeline, None)
    assert item.error == err.reason  # the same words, from the same rule


@pytest.fixture(scope="module")
def ab_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


# --- issue 25, items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------


def test_library_windows_and_batch_size_are_checked(ab_model):
    p = Predictor.from_dir(ab_model)
    with pytest.raises(ValueError, match="at least one sample"):
        p.pipeline.window_plan(1.0, 1e-9)
    with pytest.raises(ValueError, match="at most 600 s"):
        p.pipeline.window_plan(1e9, 1.0)
    with pytest.raises(ValueError, match="batch_size must be a whole number from 1 up"):
        Predictor.from_dir(ab_model, batch_size=0)
