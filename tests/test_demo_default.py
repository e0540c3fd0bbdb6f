"""The demo's default model: ten command words learned from real speakers, shipped prebuilt (issue #16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


def test_the_default_demo_model_is_the_shipped_real_speech_model(monkeypatch):
    from learner.serve import demo

    monkeypatch.delenv(demo.MODEL_ENV, raising=False)
    monkeypatch.setattr(
        demo, "ensure_default_model", lambda **kw: pytest.fail("built a model instead of the shipped one")
    )
    served = demo.load_model(log=lambda s: None)
    assert served.folder == demo.SHIPPED_MODEL
    assert served.predictor.classes == WORDS
    assert served.predictor.backend.name == "onnx-int8"  # auto picks the only weights the folder has
    metrics = json.loads((served.folder / "metrics.json").read_text())
    assert "real speakers not used in training" in metrics["split"] and metrics["accuracy"] >= 0.9
    assert metrics["n_samples"] >= 600
    info = demo.model_info(served.predictor, served.folder)
    assert "real speakers not used in training" in info.summary and "/work" not in info.summary


def test_the_examples_are_real_held_out_speakers_and_mostly_recognised():
    from learner.serve import demo

    served = demo.load_model(str(demo.SHIPPED_MODEL), log=lambda s: None)
    files = demo.example_files(served.predictor.classes)
    words = sorted(Path(f).stem for f in files if "-" not in Path(f).stem)
    assert words == WORDS
    right = sum(
        served.predictor.predict(f, top_k=1).labels[0] == Path(f).stem
        for f in files
        if "-" not in Path(f).stem
    )
    assert right >= 8, f"{right}/10 example words recognised"
    source = (ROOT / "examples" / "speech-words" / "SOURCE.md").read_text()
    assert "CC BY 4.0" in source and "Warden" in source


def test_a_long_recording_of_several_words_is_scored_in_windows():
    from learner.serve import demo

    served = demo.load_model(str(demo.SHIPPED_MODEL), log=lambda s: None)
    p = served.predictor.predict(
        ROOT / "examples" / "speech-words" / "sequence-yes-no-up-down-stop.flac", top_k=3
    )
    assert p.window_starts is not None and len(p.window_starts) >= 5
