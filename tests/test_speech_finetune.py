"""scripts/speech_finetune.py: the default model's speech_embedding fine-tuning (build step 3b).

What matters is that the network trained is the network served: the fine-tuned weights and head, written
back into the published ONNX graph the way the build does it, answer as the torch model that was trained."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from learner.model import speech_embedding as se

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import speech_finetune  # noqa: E402


def words(n_each: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three 'classes' of 1 s at 16 kHz: a low tone, a high tone and faint noise (the silence class, 2)."""
    rng = np.random.default_rng(seed)
    t = np.arange(se.SAMPLE_RATE) / se.SAMPLE_RATE
    x, y = [], []
    for k, f in enumerate((400.0, 1800.0, None)):
        for _ in range(n_each):
            noise = 0.01 * rng.standard_normal(t.size)
            env = np.exp(-(((t - rng.uniform(0.3, 0.7)) / 0.12) ** 2))
            tone = 0.0 if f is None else 0.3 * env * np.sin(2 * np.pi * f * rng.uniform(0.95, 1.05) * t)
            x.append(noise + tone)
            y.append(k)
    return np.stack(x).astype(np.float32), np.array(y)


def test_fine_tuning_trains_and_the_served_graph_is_the_trained_model(published, tmp_path):
    import torch

    from learner.model.head_fit import fit_linear
    from learner.model.speech_embedding_net import published_net, with_weights

    mel, net_file = published
    short = {**speech_finetune.FINETUNE, "epochs": 2, "batch": 8}
    x, y = words(8, seed=0)
    session = ort.InferenceSession(se.feature_graph(x.shape[1], mel, net_file).SerializeToString(),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    head = fit_linear(session.run(None, {"waveform": x})[0], y, 0.003)
    before = [p.detach().clone() for p in published_net(net_file).parameters()]
    net, tuned = speech_finetune.finetune(published_net(net_file), head, x, y, silence=2, cfg=short)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert not np.allclose(tuned.weight, head.weight)
    np.testing.assert_array_equal(tuned.mean, head.mean)  # the standardisation is the frozen head's

    trained = speech_finetune.WindowedHead(net, tuned).eval()
    changed = tmp_path / "tuned.onnx"
    onnx.save(with_weights(onnx.load(str(net_file)), net.state_dict()), str(changed))
    served = se.with_linear_head(se.feature_graph(x.shape[1], mel, changed), tuned.weight.T, tuned.bias,
                                 tuned.mean, tuned.scale, tuned.l2)  # fmt: skip
    new, _ = words(4, seed=1)
    logits = ort.InferenceSession(served.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"waveform": new}
    )[0]
    with torch.no_grad():
        ours = trained(torch.from_numpy(new)).numpy()
    assert logits.shape == ours.shape == (len(new), 3)
    np.testing.assert_allclose(logits, ours, atol=2e-3 * np.abs(ours).max())
