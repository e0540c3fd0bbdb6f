"""learner.serve.ensemble: "waveform" → "logits" graphs as one whose softmax is their weighted mean."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from learner.serve.ensemble import average

N_SAMPLES = 32


def linear(seed: int, classes: int = 3, inp: str = "waveform", out: str = "logits") -> onnx.ModelProto:
    w = np.random.default_rng(seed).standard_normal((N_SAMPLES, classes)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [inp, "w"], [out])],
        f"linear{seed}",
        [helper.make_tensor_value_info(inp, onnx.TensorProto.FLOAT, ["batch", N_SAMPLES])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"waveform": x})[0]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_softmax_of_an_ensemble_is_the_weighted_mean_of_its_members():
    a, b, c = linear(0), linear(1), linear(2)
    x = np.random.default_rng(3).standard_normal((5, N_SAMPLES)).astype(np.float32)
    got = softmax(run(average([a, b, c], [1, 1, 2]), x))
    want = 0.25 * softmax(run(a, x)) + 0.25 * softmax(run(b, x)) + 0.5 * softmax(run(c, x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    equal = softmax(run(average([a, b]), x))  # equal weights by default
    np.testing.assert_allclose(equal, (softmax(run(a, x)) + softmax(run(b, x))) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, softmax(run(a, x)), atol=1e-3)  # the members differ, so the test can fail


def test_members_that_do_not_fit_together_are_refused_naming_the_member():
    with pytest.raises(ValueError, match="different numbers of classes"):
        average([linear(0, classes=3), linear(1, classes=4)])
    with pytest.raises(ValueError, match="member 1: takes \\['x'\\]"):
        average([linear(0), linear(1, inp="x")])
    with pytest.raises(ValueError, match="member 0: .* gives \\['scores'\\]"):
        average([linear(0, out="scores"), linear(1)])
    with pytest.raises(ValueError, match="positive"):
        average([linear(0), linear(1)], [1, 0])
    with pytest.raises(ValueError, match="at least two"):
        average([linear(0)])


def test_the_shipped_default_model_is_an_ensemble_the_predictor_serves():
    """config.json records how the shipped file was made, and the Predictor's probabilities are a
    distribution (the ensemble's log-mean logits give back the mean)."""
    from pathlib import Path

    from learner.serve.predictor import Predictor

    folder = Path(__file__).resolve().parent.parent / "assets" / "speech-words"
    pred = Predictor.from_dir(folder, backend="onnx-int8", threads=1)
    record = pred.config["onnx"]["ensemble"]
    assert record["members"][1].startswith("speech_embedding") and sum(record["weights"]) == 1
    assert (folder / "NOTICE-speech_embedding.md").read_text().count("Apache License") >= 1
    x = np.random.default_rng(0).standard_normal((3, pred.cfg.n_samples)).astype(np.float32) * 0.05
    probs = pred.predict_waves(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_average_into_a_folder_records_the_new_file_and_refuses_twice(tmp_path):
    """The folder's exported file becomes the ensemble, config.json its sha256 and "ensemble" record, the
    Predictor serves the mean; a second average is refused (it would weight the first member twice)."""
    from learner.config import AudioConfig
    from learner.folder import ModelDirError, write_json
    from learner.serve.ensemble import average_into
    from learner.serve.onnx_backend import sha256_file
    from learner.serve.predictor import Predictor

    a, b = linear(0), linear(1)
    onnx.save(a, str(tmp_path / "model.onnx"))
    cfg = AudioConfig(sample_rate=16000, duration=N_SAMPLES / 16000, trim_db=None)
    write_json(tmp_path / "config.json", {
        "arch": "xresnet18", "classes": ["x", "y", "z"], "task": "single", "audio": cfg.to_dict(),
        "onnx": {"files": {"model.onnx": sha256_file(tmp_path / "model.onnx")}},
    })  # fmt: skip
    assert average_into(tmp_path, [b], [0.25, 0.75], {"members": ["a", "b"]}) == ["model.onnx"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["onnx"]["files"]["model.onnx"] == sha256_file(tmp_path / "model.onnx")
    assert config["onnx"]["ensemble"] == {"members": ["a", "b"], "weights": [0.25, 0.75]}
    x = np.random.default_rng(4).standard_normal((3, N_SAMPLES)).astype(np.float32)
    served = Predictor.from_dir(tmp_path, backend="onnx").predict_waves(x)
    np.testing.assert_allclose(served, 0.25 * softmax(run(a, x)) + 0.75 * softmax(run(b, x)), atol=1e-5)
    with pytest.raises(ModelDirError, match="an ensemble already"):
        average_into(tmp_path, [b])


def test_a_member_comes_back_out_of_an_ensemble_unchanged():
    from learner.serve.ensemble import member

    a, b = linear(0), linear(1)
    x = np.random.default_rng(5).standard_normal((4, N_SAMPLES)).astype(np.float32)
    both = average([a, b], [0.3, 0.7])
    np.testing.assert_allclose(run(member(both, 0), x), run(a, x), rtol=1e-6)
    np.testing.assert_allclose(run(member(both, 1), x), run(b, x), rtol=1e-6)
    assert not np.allclose(run(member(both, 0), x), run(member(both, 1), x))
    with pytest.raises(ValueError, match="no ensemble member 2"):
        member(both, 2)
