import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf

from learner.audio import AudioDecodeError
from learner.data.sounds import make_sound
from learner.folder import ModelDirError
from learner.serve.predictor import Predictor


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
