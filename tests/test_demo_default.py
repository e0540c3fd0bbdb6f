"""The demo's default model: ten command words learned from real speakers, shipped prebuilt (issue #16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "speech-words"
WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]
REJECT = (
    "silence",
    "unknown",
)  # classes that catch what is none of the words (tests/test_demo_default_open.py)


def test_the_default_demo_model_is_the_shipped_real_speech_model(monkeypatch):
    from learner.demo import model_tab, models

    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    served = models.load_model(
        log=lambda s: None,
        shipped=SHIPPED,
        fallback=lambda **kw: pytest.fail("built a model instead of the shipped one"),
    )
    assert served.folder == SHIPPED
    assert [c for c in served.predictor.classes if c not in REJECT] == WORDS
    assert served.predictor.backend.name == "onnx-int8"  # auto picks the only weights the folder has
    metrics = json.loads((served.folder / "metrics.json").read_text())
    assert "real speakers not used in training" in metrics["split"] and metrics["accuracy"] >= 0.85
    assert metrics["n_samples"] >= 600
    info = model_tab.model_info(served.predictor, served.folder)
    assert "real speakers not used in training" in info.summary and "/work" not in info.summary


def test_the_examples_are_real_held_out_speakers_and_mostly_recognised():
    from learner.demo.examples import example_files
    from learner.demo.models import load_model

    served = load_model(str(SHIPPED), log=lambda s: None)
    files = example_files(served.predictor.classes, ROOT / "examples")
    words = sorted(Path(f).stem for f in files if "-" not in Path(f).stem)
    assert words == WORDS
    right = sum(
        served.predictor.predict(f, top_k=1).answer == Path(f).stem  # the answer: a word, never rejected
        for f in files
        if "-" not in Path(f).stem
    )
    assert right >= 8, f"{right}/10 example words recognised"
    source = (ROOT / "examples" / "speech-words" / "SOURCE.md").read_text()
    assert "CC BY 4.0" in source and "Warden" in source


def test_a_long_recording_of_several_words_is_scored_in_windows():
    from learner.demo.models import load_model

    served = load_model(str(SHIPPED), log=lambda s: None)
    p = served.predictor.predict(
        ROOT / "examples" / "speech-words" / "sequence-yes-no-up-down-stop.flac", top_k=3
    )
    assert p.window_starts is not None and len(p.window_starts) >= 5
