"""Model folders written by the previous release still load and answer as they did: a tiny mfcc_cnn1d
folder trained and exported by earshot 0.1.0 (before the layout of issue 21), with the probabilities that
release gave for four WAV clips, through the torch and the ONNX backends."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FOLDER = FIXTURES / "earshot-0.1.0"
CLIPS = FIXTURES / "clips-0.1.0"
EXPECTED = json.loads((FIXTURES / "earshot-0.1.0.expected.json").read_text())


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_folder_of_the_previous_release_predicts_as_it_did(backend):
    from learner import Predictor

    p = Predictor.from_dir(FOLDER, backend=backend)
    assert p.classes == EXPECTED["classes"] and p.backend.name == backend
    for kind, probs in EXPECTED[backend].items():
        got = p.predict(CLIPS / f"{kind}.wav", top_k=4).probs
        np.testing.assert_allclose(got, probs, rtol=1e-4, atol=1e-5)


def test_its_config_reads_as_a_model_config():
    from learner.config import AudioConfig
    from learner.folder import ModelConfig, read_config

    cfg = ModelConfig.read(FOLDER)
    assert cfg.arch == "mfcc_cnn1d" and cfg.audio.sample_rate == 16000 and cfg.onnx["files"]
    again = json.loads(json.dumps(cfg.to_dict()))  # as written back to config.json
    stored = read_config(FOLDER)
    newer = {k: again["audio"].pop(k) for k in set(again["audio"]) - set(stored["audio"])}
    assert again == stored  # nothing lost, nothing changed on a round trip
    # what a round trip adds: only settings newer than the folder, at the defaults that leave it as it was
    defaults = json.loads(json.dumps(dataclasses.asdict(AudioConfig())))
    assert newer == {k: defaults[k] for k in newer}
