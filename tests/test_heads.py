"""Frozen-embedding heads: fitted in seconds, cached embeddings, the frozen-or-scratch decision, and a
backbone model folder that serves (torch and ONNX) and carries the backbone's licence and citation.

The backbone here has random weights of the real shapes (a safetensors file passed as --pretrained)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.config import AudioConfig
from learner.data.embeddings import cached_embeddings, clip_views
from learner.data.sounds import make_dataset
from learner.train.heads import choose_head, decide_start, fit_linear, head_state_dict, predict_logits


def _clusters(n_classes: int, per_class: int, dim: int = 1024, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * 0.5
    y = np.repeat(np.arange(n_classes), per_class)
    x = centres[y] + rng.standard_normal((len(y), dim))
    return np.abs(x).astype(np.float32), y  # non-negative, like pooled ReLU features


def test_frozen_head_on_10_classes_x_10_clips_trains_in_under_30_s_of_cpu():
    x, y = _clusters(10, 15)
    train = np.arange(len(y)) % 15 < 10  # 10 clips a class train, 5 are held out
    c0 = time.process_time()
    fit = choose_head(x[train][:, None], y[train], np.arange(int(train.sum())))
    cpu = time.process_time() - c0
    assert cpu <= 30.0, cpu
    assert fit.inner_accuracy is not None and fit.inner_accuracy > 0.5  # chance is 0.1
    assert (predict_logits(fit, x[~train]).argmax(1) == y[~train]).mean() > 0.5


def test_head_in_torch_equals_the_fitted_regression():
    from learner.model.backbone_arch import EmbeddingHead

    x, y = _clusters(3, 8, dim=64)
    for l2 in (False, True):
        fit = fit_linear(x, y, C=0.3, l2=l2)
        head = EmbeddingHead(64, 3, l2=l2).eval()
        head.load_state_dict({k[5:]: v for k, v in head_state_dict(fit).items()}, strict=True)
        with torch.inference_mode():
            got = head(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, predict_logits(fit, x), atol=1e-3)


def test_two_classes_give_two_logits():
    x, y = _clusters(2, 6, dim=16)
    fit = fit_linear(x, y, C=1.0)
    assert fit.weight.shape == (2, 16)
    assert (predict_logits(fit, x).argmax(1) == y).mean() > 0.8


def test_decision_needs_a_clear_margin_over_plain_features():
    assert decide_start(0.80, 0.50) == "frozen"
    assert decide_start(0.55, 0.50) == "scratch"
    assert decide_start(None, 0.5) == "frozen"


def test_embeddings_are_cached_per_file_and_recomputed_when_it_changes(tmp_path):
    import soundfile as sf

    cfg = AudioConfig(sample_rate=8000, duration=0.5)
    paths = []
    for i in range(3):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, np.random.default_rng(i).standard_normal(3000).astype(np.float32) * 0.1, 8000)
        paths.append(str(p))
    signals = {p: sf.read(p, dtype="float32")[0] for p in paths}
    calls = []

    def embed(clips):
        calls.append(len(clips))
        return clips[:, :4] * 0 + clips.std(axis=1, keepdims=True)

    first = cached_embeddings(paths, signals, cfg, embed, "t", 3, tmp_path / "c")
    assert first.shape == (3, 3, 4) and calls == [3, 3, 3]
    again = cached_embeddings(paths, signals, cfg, embed, "t", 3, tmp_path / "c")
    np.testing.assert_array_equal(first, again)
    assert calls == [3, 3, 3]  # nothing embedded twice
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    cached_embeddings(paths, signals, cfg, embed, "t", 3, tmp_path / "c")
    assert calls == [3, 3, 3, 3]  # the edited file only
    views = clip_views(signals[paths[0]], cfg, 3)
    assert views.shape == (3, cfg.n_samples) and not np.array_equal(views[0], views[1])


@pytest.fixture(scope="module")
def frozen_model(tmp_path_factory):
    from safetensors.torch import save_file

    from learner.model.backbones import build_backbone
    from learner.train import train
    from learner.train.fit import TrainArgs

    root = tmp_path_factory.mktemp("frozen")
    data = make_dataset(root / "data", n_per_class=6, sr=16000, duration=0.5)
    torch.manual_seed(0)
    weights = root / "random-aisfx.safetensors"
    save_file({k: v.contiguous() for k, v in build_backbone("aisfx").net.state_dict().items()}, weights)
    args = TrainArgs(
        data=str(data),
        out=str(root / "model"),
        arch="aisfx",
        pretrained=str(weights),
        head="frozen",
        pickle=False,
        progress=False,
        workers=1,
        auto_duration=True,
        cache_dir=str(root / "cache"),
    )
    return train(args, AudioConfig(duration=1.0)), root


def test_frozen_model_folder_serves_through_the_predictor(frozen_model):
    from learner.serve.predictor import Predictor

    result, root = frozen_model
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["arch"] == "aisfx" and config["audio"]["sample_rate"] == 44100
    assert config["backbone"]["use"] == "frozen" and "CC BY 4.0" in config["backbone"]["licence"]
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    p = Predictor.from_dir(result.model_dir, backend="torch")
    clip = np.random.default_rng(0).standard_normal(p.cfg.n_samples).astype(np.float32) * 0.1
    probs = p.predict_waves(clip[None])
    assert probs.shape == (1, 4) and np.isclose(probs.sum(), 1.0, atol=1e-5)
    from learner.card import model_card

    card = model_card(result.model_dir)
    assert "Alexander Lerch" in card and "ISMIR" in card and "CC BY 4.0" in card
    assert "Pretrained backbone" in card


def test_backbone_model_exports_to_onnx_with_torch_parity(frozen_model):
    from learner.serve.export import export_model_dir
    from learner.serve.predictor import Predictor

    result, _ = frozen_model
    rec = export_model_dir(result.model_dir, n_probe=4)
    assert rec["input"]["sample_rate"] == 44100
    onnx_p = Predictor.from_dir(result.model_dir)
    torch_p = Predictor.from_dir(result.model_dir, backend="torch")
    assert onnx_p.backend.name == "onnx"
    waves = np.random.default_rng(1).standard_normal((3, torch_p.cfg.n_samples)).astype(np.float32) * 0.1
    np.testing.assert_allclose(onnx_p.predict_waves(waves), torch_p.predict_waves(waves), atol=1e-4)


def test_finetune_path_still_available_for_a_backbone_arch(tmp_path):
    from learner.model import create_model, get_arch
    from learner.train.fit import param_groups

    cfg = AudioConfig(sample_rate=44100, duration=0.5)
    net = create_model("aisfx", 4, cfg)
    body, head = param_groups(net, get_arch("aisfx"))
    assert [p.shape for p in head] == [(4, 1024), (4,)]
    assert len(body) == len(list(net.parameters())) - 2
    assert Path(tmp_path).is_dir()
