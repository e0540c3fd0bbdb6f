"""Teach's second backbone (learner.demo.teach_speech): every take is embedded by aisfx and by Google's
speech_embedding, Train keeps the head that is right more often in cross-validation over the takes, and a
speech model is a plain ONNX folder the Predictor serves (issue 24 item 2: Teach on real voices)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from learner.demo import teach_speech
from learner.demo.teach import TEACH_VIEWS, Classroom, TeachError
from learner.serve.predictor import Predictor
from tests.live_audio import SR, new_takes_right, take, teach


@pytest.fixture(scope="module")
def speech_ready():
    why = teach_speech.available()
    if why is not None and "need the network" in why:
        pytest.skip(f"the package index is unreachable: {why}")
    assert why is None, why


@pytest.fixture(scope="module")
def taught_speech(speech_ready, tmp_path_factory):
    room, teacher, _ = teach(tmp_path_factory.mktemp("teach-speech"), "s")
    return teacher, teacher.train(backbone=teach_speech.NAME)


def test_a_speech_model_is_an_onnx_folder_the_predictor_serves(taught_speech):
    teacher, r = taught_speech
    assert r.backbone == "speech_embedding" and r.predictor.backend.name == "onnx"
    assert sorted(p.name for p in r.folder.iterdir()) == ["config.json", "model.onnx"]
    assert r.predictor.cfg.sample_rate == 16000 and r.predictor.cfg.duration == 1.0
    assert r.predictor.config["backbone"]["licence"].startswith("Apache-2.0")
    assert (right := new_takes_right(r.predictor, seed=11)) >= 0.8, right
    rng = np.random.default_rng(12)
    again = Predictor.from_dir(r.folder)  # from disk alone, as after a download
    clip = take("siren", 1.5, rng)
    assert np.allclose(again.predict(clip, sample_rate=SR, window=None).probs,
                       r.predictor.predict(clip, sample_rate=SR, window=None).probs, atol=1e-5)  # fmt: skip
    with zipfile.ZipFile(teacher.zip()) as z:
        assert set(z.namelist()) == {"config.json", "model.onnx"}


def test_the_served_graph_is_the_fitted_head_on_the_features(taught_speech):
    """The head inside model.onnx (standardisation, optional L2) gives the logits head_fit gives."""
    from learner.audio import ClipPipeline
    from learner.model.head_fit import choose_head, predict_logits

    teacher, r = taught_speech
    classes = r.predictor.classes
    views = np.stack([e for c in classes for e in teacher.speech[c]])
    y = np.array([i for i, c in enumerate(classes) for _ in teacher.speech[c]])
    fit = choose_head(views, y, np.arange(len(y)))
    pipe = ClipPipeline(teach_speech.speech_audio_config())
    clip = pipe.prepare(take("tone", 1.0, np.random.default_rng(2), sr=16000))
    feats = teach_speech.speech_views(clip)[0]
    want = predict_logits(fit, feats[None])[0]
    probs = r.predictor.predict_waves(clip[None])[0]
    np.testing.assert_allclose(probs, np.exp(want - want.max()) / np.exp(want - want.max()).sum(), atol=1e-4)


def _fabricated(teacher, speech_separates: bool, aisfx_separates: bool, rng) -> None:
    """Example embeddings of the real widths: a backbone that 'separates' puts each class far apart."""
    dims = {"aisfx": 1024, "speech": 9 * 96}
    for i, c in enumerate(teacher.classes):
        for _ in range(5):
            a = rng.normal(0, 1, (TEACH_VIEWS, dims["aisfx"])) + (8.0 * i if aisfx_separates else 0.0)
            s = rng.normal(0, 1, (len(teach_speech.PLACEMENTS_S), dims["speech"]))
            s[:, 100 * i : 100 * (i + 1)] += 4.0 if speech_separates else 0.0
            teacher.examples[c].append(a.astype(np.float32))
            teacher.speech[c].append(s.astype(np.float32))


def test_train_keeps_the_backbone_that_cross_validates_better(speech_ready, tmp_path):
    rng = np.random.default_rng(0)
    t = Classroom(tmp_path).get("words")
    t.set_classes("yes, no, stop")
    _fabricated(t, speech_separates=True, aisfx_separates=False, rng=rng)
    r = t.train()
    assert r.backbone == "speech_embedding", r.cross_validation
    assert r.cross_validation["speech_embedding"] > r.cross_validation["aisfx"]
    assert r.predictor.config["taught"]["backbone_inner_cv_accuracy"] == r.cross_validation
    tie = Classroom(tmp_path / "tie").get("sounds")
    tie.set_classes("clap, whistle")
    _fabricated(tie, speech_separates=True, aisfx_separates=True, rng=rng)
    r = tie.train()
    assert r.cross_validation == {"aisfx": 1.0, "speech_embedding": 1.0}
    assert r.backbone == "aisfx" and (r.folder / "model.safetensors").is_file()  # a tie keeps aisfx


def test_without_the_speech_backbone_teach_keeps_aisfx_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(teach_speech, "_sessions", None)
    monkeypatch.setattr(teach_speech, "_unavailable", "speech_embedding weights need the network (test)")
    room, teacher, r = teach(tmp_path, "offline", n=3)
    assert r.backbone == "aisfx" and r.cross_validation.keys() == {"aisfx"}
    assert all(not v for v in teacher.speech.values())
    with pytest.raises(TeachError, match="speech_embedding backbone is not available here .*network"):
        teacher.train(backbone="speech_embedding")
    with pytest.raises(TeachError, match="backbone must be"):
        teacher.train(backbone="panns")


def test_a_taught_speech_model_pushes_and_pulls_like_any_folder(taught_speech, tmp_path, monkeypatch):
    """No model.safetensors: config.json and model.onnx are a complete folder for the Hub too."""
    from learner.hub import push
    from tests.hub_server import HubServer, isolate_hf

    _, r = taught_speech
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    with HubServer({"hf_alice": "alice"}) as hub:
        url = push(r.folder, "alice/taught-words", token="hf_alice", endpoint=hub.url)
        assert "alice/taught-words" in url
        pulled = Predictor.from_pretrained("alice/taught-words", endpoint=hub.url)
    assert pulled.backend.name == "onnx" and pulled.classes == r.predictor.classes
    clip = take("tone", 1.2, np.random.default_rng(5))
    assert np.array_equal(pulled.predict(clip, sample_rate=SR, window=None).probs,
                          r.predictor.predict(clip, sample_rate=SR, window=None).probs)  # fmt: skip
