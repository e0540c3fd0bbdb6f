"""learner.model.speech_embedding: the published ONNX files rebuilt as one batch-safe feature graph.

The published files come from the PyPI wheel openwakeword==0.4.0 (fetched once into earshot's cache, checked
by sha256); the tests that need them skip, saying why, only when the package index is unreachable."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from learner.model import speech_embedding as se


def session(model_or_path) -> ort.InferenceSession:
    model = isinstance(model_or_path, onnx.ModelProto)
    src = model_or_path.SerializeToString() if model else str(model_or_path)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"])


def clips(n: int = 3, seed: int = 0) -> np.ndarray:
    """Tones that rise and fall at different places in 1 s at 16 kHz, over faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(se.SAMPLE_RATE) / se.SAMPLE_RATE
    out = []
    for i in range(n):
        env = np.exp(-(((t - 0.2 - 0.3 * i) / 0.1) ** 2))
        out.append(0.3 * env * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.003 * rng.standard_normal(t.size))
    return np.stack(out).astype(np.float32)


def reference(mel_file, emb_file, clip: np.ndarray, left: int, right: int) -> np.ndarray:
    """What openWakeWord does for one clip: the published mel graph, windows cut, the published network."""
    x = np.pad(clip, (left, right)) * se.INT16
    spec = session(mel_file).run(None, {"input": x[None].astype(np.float32)})[0].squeeze() / 10 + 2
    starts = range(0, len(spec) - se.WINDOW_FRAMES + 1, se.WINDOW_HOP)
    wins = np.stack([spec[i : i + se.WINDOW_FRAMES] for i in starts])[..., None].astype(np.float32)
    return session(emb_file).run(None, {"input_1": wins})[0].reshape(-1)


def test_windows_per_clip_follow_the_padding():
    assert se.n_windows(16000) == 9  # 0.25 s of silence each side
    assert se.n_windows(16000, pad_s=0.0) == 3
    with pytest.raises(ValueError, match="76 mel frames"):
        se.n_windows(8000, pad_s=0.0)


def test_the_one_pass_graph_equals_the_published_graphs_window_by_window(published):
    mel, net = published
    x = clips()
    for left_s in (0.25, 0.15):
        got = session(se.feature_graph(x.shape[1], mel, net, left_s=left_s)).run(None, {"waveform": x})[0]
        left = round(left_s * se.SAMPLE_RATE)
        want = np.stack([reference(mel, net, c, left, 8000 - left) for c in x])
        assert got.shape == (3, 9 * se.EMB_DIM)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert not np.allclose(got[0], got[1], atol=1e-2)  # different clips, different embeddings


def test_a_clip_scores_the_same_alone_and_beside_a_loud_one(published):
    """The published mel graph floors the spectrogram 80 dB below the loudest value of the whole batch;
    here each clip has its own floor, so a batch never changes a clip's features."""
    graph = session(se.feature_graph(se.SAMPLE_RATE, *published))
    quiet = clips(1) * 1e-3
    loud = clips(1, seed=1)[:, ::-1].copy() * 3
    alone = graph.run(None, {"waveform": quiet})[0]
    beside = graph.run(None, {"waveform": np.concatenate([quiet, loud])})[0]
    np.testing.assert_allclose(beside[0], alone[0], rtol=1e-5, atol=1e-5)


def test_the_linear_head_scores_the_features(published):
    features = se.feature_graph(se.SAMPLE_RATE, *published)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((9 * se.EMB_DIM, 4)) * 0.01, rng.standard_normal(4)
    x = clips()
    f = session(features).run(None, {"waveform": x})[0]
    logits = session(se.with_linear_head(features, w, b)).run(None, {"waveform": x})[0]
    np.testing.assert_allclose(logits, f @ w + b, rtol=1e-4, atol=1e-4)


def test_another_embedding_file_is_refused_naming_it(published, tmp_path):
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input_1"], ["out"])],
        "not_it",
        [helper.make_tensor_value_info("input_1", onnx.TensorProto.FLOAT, ["b", 76, 32, 1])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["b", 76, 32, 1])],
    )
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(other))
    with pytest.raises(ValueError, match="other.onnx: not the published speech_embedding graph"):
        se.feature_graph(se.SAMPLE_RATE, published[0], other)


def test_the_torch_backbone_equals_the_published_graphs(published):
    """`--arch speech_embedding`'s network and front end (learner.model.speech_embedding_net), with the
    published weights read by its adapter, give openWakeWord's features and embeddings."""
    import torch

    from learner.audio.frontends import features
    from learner.model.backbones import load_backbone

    mel, net = published
    bb = load_backbone("speech_embedding", net)
    x = np.pad(clips(1)[0], 4000)  # 1.5 s: 9 whole windows
    spec = session(mel).run(None, {"input": (x * se.INT16)[None]})[0].squeeze() / 10 + 2
    ours = features(x, bb.spec.front)
    np.testing.assert_allclose(ours, spec, atol=1e-3)
    with torch.no_grad():
        torch_feats = bb.features(torch.from_numpy(x)[None])[0].numpy()
        got = bb.block_embeddings(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(torch_feats, spec, atol=1e-3)
    want = reference(mel, net, clips(1)[0], 4000, 4000).reshape(-1, se.EMB_DIM)
    assert got.shape == (len(want) + 1, se.EMB_DIM)  # and one zero-padded block at the end
    np.testing.assert_allclose(got[: len(want)], want, atol=1e-3 * np.abs(want).max())


def test_random_weights_have_the_real_shapes_offline():
    import torch

    from learner.model.backbones import build_backbone

    bb = build_backbone("speech_embedding")
    assert bb.dim == 192 and bb.sample_rate == 16000
    assert bb(torch.zeros(2, 16000)).shape == (2, 192)
    assert bb.features.onnx_form()(torch.zeros(1, 16000)).shape == (1, 97, 32)  # frames not centred


def test_training_a_frozen_head_and_exporting_it(published, tmp_path):
    """jobs.train's frozen-head path on the published weights, then ONNX: the same answers."""
    import json

    from learner.config import AudioConfig
    from learner.data.sounds import make_dataset
    from learner.serve.export import export_model_dir
    from learner.serve.predictor import Predictor
    from learner.train import train
    from learner.train.fit import TrainArgs

    data = make_dataset(tmp_path / "data", n_per_class=6, sr=16000, duration=0.5)
    args = TrainArgs(data=str(data), out=str(tmp_path / "model"), arch="speech_embedding",
                     pretrained=str(published[1]), head="frozen", pickle=False, progress=False, workers=1,
                     auto_duration=True, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    result = train(args, AudioConfig(duration=1.0))
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["arch"] == "speech_embedding" and config["audio"]["sample_rate"] == 16000
    assert config["backbone"]["use"] == "frozen" and config["backbone"]["licence"].startswith("Apache-2.0")
    export_model_dir(result.model_dir)
    torch_p = Predictor.from_dir(result.model_dir, backend="torch")
    onnx_p = Predictor.from_dir(result.model_dir, backend="onnx")
    x = np.random.default_rng(0).standard_normal((3, torch_p.cfg.n_samples)).astype(np.float32) * 0.1
    np.testing.assert_allclose(onnx_p.predict_waves(x), torch_p.predict_waves(x), atol=1e-4)


def test_fine_tuned_weights_go_back_into_the_published_graph(published, tmp_path):
    """`with_weights` writes a changed SpeechEmbeddingNet into the ONNX file; the feature graph built on it
    gives what the torch network's `windows` gives (the served member is the trained one)."""
    import torch

    from learner.model.backbones import BlockFeatures
    from learner.model.speech_embedding_net import SPEECH_FRONT, published_net, with_weights

    mel, net_file = published
    net = published_net(net_file)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    changed = tmp_path / "tuned.onnx"
    onnx.save(with_weights(onnx.load(str(net_file)), net.state_dict()), str(changed))
    x = clips(2)
    served = session(se.feature_graph(se.SAMPLE_RATE, mel, changed)).run(None, {"waveform": x})[0]
    original = session(se.feature_graph(se.SAMPLE_RATE, mel, net_file)).run(None, {"waveform": x})[0]
    with torch.no_grad():
        padded = torch.nn.functional.pad(torch.from_numpy(x), (4000, 4000))
        ours = net.eval().windows(BlockFeatures(SPEECH_FRONT)(padded)).flatten(1).numpy()
    assert served.shape == ours.shape == (2, 9 * se.EMB_DIM)
    np.testing.assert_allclose(served, ours, atol=2e-3 * np.abs(ours).max())
    assert np.abs(served - original).max() > 0.05 * np.abs(original).max()  # the weights did change
    with pytest.raises(ValueError, match="not a SpeechEmbeddingNet state dict"):
        with_weights(onnx.load(str(net_file)), {"conv0.weight": torch.zeros(1)})
