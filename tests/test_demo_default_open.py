"""The shipped default model knows what it does not know (issue 24 item 3): it answers "not one of the words"
or "silence" to noise and other sounds instead of naming a word, and still names its words, on files in the
repository and generated sound. Skipped until assets/speech-words is rebuilt by scripts/build_demo_model.py
(its config.json then holds the reject record)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "speech-words"
WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]
REJECT = ["silence", "unknown"]
pytestmark = pytest.mark.skipif(
    "reject" not in json.loads((SHIPPED / "config.json").read_text()),
    reason="assets/speech-words predates the reject record: run scripts/build_demo_model.py",
)


@pytest.fixture(scope="module")
def predictor():
    from learner.demo.models import load_model

    return load_model(str(SHIPPED), log=lambda s: None).predictor


def test_its_config_records_the_reject_classes_and_word_thresholds(predictor):
    assert predictor.classes == sorted(WORDS + REJECT)
    assert (
        predictor.config["reject"]["classes"] == REJECT and predictor.config["reject"]["answer"] == "unknown"
    )
    assert predictor.rejection.text("unknown") == "not one of the words"
    thresholds = predictor.config["thresholds"]
    assert set(thresholds) == set(predictor.classes) and 0.2 < thresholds["yes"] < 0.9
    assert "held out of training by speaker" in predictor.config["thresholds_rule"]


def _noises() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)  # drawn in this order: the hum's faint noise is the third draw
    white = rng.normal(0, 0.05, 16000)
    brown = np.cumsum(rng.normal(0, 1, 16000))
    hum = 0.05 * np.sin(2 * np.pi * 50 * np.arange(16000) / 16000) + rng.normal(0, 0.002, 16000)
    quiet = rng.normal(0, 0.001, 16000)
    brown = 0.1 * (brown - brown.mean()) / np.abs(brown - brown.mean()).max()
    return {"white noise": white, "brown noise": brown, "mains hum": hum, "room": quiet}


@pytest.mark.parametrize("name", ["white noise", "brown noise", "room", "mains hum"])
def test_noise_is_never_a_word(predictor, name):
    pred = predictor.predict(_noises()[name].astype(np.float32), sample_rate=16000)
    assert pred.rejected and pred.answer in REJECT, f"{name}: {pred.answer} ({pred.label} {pred.score:.2f})"


def test_mains_hum_of_either_grid_is_never_a_word(predictor):
    """Trained with hum mixed into every class (`--aug-hum-snr`): 50 and 60 Hz, pure or with harmonics,
    over several faint noise floors, all come out rejected (the model shipped before said "up")."""
    t, said = np.arange(16000) / 16000, []
    for f0 in (50, 60):
        for harmonics in (1, 6):
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
            for seed in range(3):
                y = 0.05 * tone + np.random.default_rng(seed).normal(0, 0.001 * (seed + 1), t.size)
                pred = predictor.predict(y.astype(np.float32), sample_rate=16000)
                said.append(pred.answer if pred.rejected else f"{pred.answer} ({f0} Hz, {harmonics})")
    assert set(said) <= set(REJECT), said


def test_the_example_words_in_noise_are_still_words(predictor):
    """Rejection is not bought with true words: a word with white noise at 10 dB SNR keeps its answer."""
    from learner.audio import decode

    rng = np.random.default_rng(1)
    right = 0
    for word in WORDS:
        y = decode(ROOT / "examples" / "speech-words" / f"{word}.flac", 16000).samples
        noise = rng.normal(0, 1, y.size) * np.sqrt(np.mean(y**2) / 10)
        right += predictor.predict((y + noise).astype(np.float32), sample_rate=16000).answer == word
    assert right >= 8, f"{right}/10 words in noise"


def test_the_open_set_figures_are_shipped_and_shown(predictor):
    from learner.demo import model_tab

    o = json.loads((SHIPPED / "metrics.json").read_text())["open_set"]
    assert o["n_words"] >= 600 and o["n_unknown"] >= 80 and o["n_silence"] >= 100
    # the rejection targets; words: a floor under today's 0.886 (the 0.95 is not reached)
    assert o["unknown_rejected"] >= 0.9 and o["silence_rejected"] >= 0.95 and o["words_right"] >= 0.87
    assert (
        o["calibration"]["speakers"] >= 25 and "held out of training by speaker" in o["calibration"]["rule"]
    )
    info = model_tab.model_info(predictor, SHIPPED)
    assert "not one of the words" in info.summary and f"{o['words_right']:.1%}" in info.summary
