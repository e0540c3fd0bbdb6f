"""Issue 25, items 14-16 on one tiny trained model (tones over noise, 2 s clips, files named `spk-N.wav`
and split with `--group-regex '^(\\w+)-\\d+\\.wav$'`, one corrupt file): config.json counts only the files
used, stores the regex exactly (so jobs.evaluate recognises the training data), and windows shorter than the
clip are refused while clip-length windows find every tone in a minute of noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

SR = 8000


CLIP_S = 2.0


REGEX = r"^(\w+)-\d+\.wav$"


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0, 0.1, n).astype(np.float32)


def _tone(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.5 * np.sin(2 * np.pi * rng.uniform(500, 900) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    n = int(SR * CLIP_S)
    for label in ("noise", "tone"):
        (root / label).mkdir()
        for spk in ("ann", "bob", "cy", "dee", "eve"):
            for i in range(4):
                x = _noise(n, rng) + (_tone(n, rng) if label == "tone" else 0)
                sf.write(root / label / f"{spk}-{i}.wav", x, SR)
    (root / "tone" / "ann-9.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # excluded when decoding
    return root


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    out = tmp_path_factory.mktemp("m") / "tones"
    args = TrainArgs(
        data=str(data),
        out=str(out),
        arch="mfcc_cnn1d",
        epochs=6,
        pretrained="none",
        bs=8,
        progress=False,
        group_regex=REGEX,
        pickle=False,
    )
    cfg = AudioConfig(sample_rate=SR, duration=CLIP_S, n_mels=32, n_fft=256, hop_length=160, trim_db=None)
    return train(args, cfg)


def test_config_counts_used_files_and_keeps_the_regex(model):
    cfg = json.loads((model.model_dir / "config.json").read_text())
    assert cfg["train"]["group_regex"] == REGEX
    assert len(model.failures) == 1
    assert cfg["split"]["n_train"] + cfg["split"]["n_valid"] == 40  # 41 listed, the corrupt one unused
    assert cfg["split"]["n_train"] == model.metrics["n_train"]


def test_evaluate_recognises_the_training_data(model, data):
    from learner.score.evaluate import evaluate

    m = evaluate(model.model_dir, data, progress=False)
    assert m["training_data"] is True and m["split"] == "valid"
    assert m["n_samples"] == model.metrics["n_valid"]


@pytest.fixture(scope="module")
def minute(tmp_path_factory) -> tuple[Path, list[float]]:
    """60 s of noise with six 3 s tones."""
    rng = np.random.default_rng(5)
    x = _noise(60 * SR, rng)
    onsets = [4.0, 13.0, 22.0, 32.0, 41.0, 51.0]
    for t in onsets:
        a = int(t * SR)
        x[a : a + 3 * SR] += _tone(3 * SR, rng)
    path = tmp_path_factory.mktemp("minute") / "minute.wav"
    sf.write(path, x, SR)
    return path, onsets


def test_windows_shorter_than_the_clip_are_refused_in_one_line(model, minute, tmp_path, capsys):
    from jobs._cli import run
    from jobs.score import main
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model.model_dir)
    with pytest.raises(ValueError, match="shorter than the model's 2 s clip"):
        p.predict(minute[0], window=1.0, hop=0.5)
    out = tmp_path / "s.parquet"
    argv = [str(minute[0]), "--model", str(model.model_dir), "--output", str(out), "--windows", "1,0.5"]
    with pytest.raises(SystemExit) as e:
        run(lambda: main([*argv, "--workers", "1", "--quiet"]))
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "--windows 1 s is shorter" in err
    assert not out.exists()


def test_clip_length_windows_find_every_tone(model, minute, tmp_path):
    from learner.score.local import ScoreOptions, score
    from learner.score.store import events_output
    from learner.serve.predictor import Predictor

    path, onsets = minute
    out = tmp_path / "s.parquet"
    p = Predictor.from_dir(model.model_dir)
    score([path], p, ScoreOptions(str(out), window=(CLIP_S, 0.5), workers=1, progress=False, threshold=0.5))
    events = [e for e in pq.read_table(events_output(out)).to_pylist() if e["label"] == "tone"]
    found = [t for t in onsets if any(abs(e["start_s"] - t) <= 0.75 for e in events)]
    assert len(found) == 6 and len(events) == 6, events


def test_windows_of_the_clip_length_by_name(model, minute, tmp_path):
    from jobs.score import _windows
    from learner.score.local import ScoreOptions, score
    from learner.serve.predictor import Predictor

    assert _windows("clip,0.5") == (None, 0.5)
    out = tmp_path / "s.parquet"
    opts = ScoreOptions(str(out), window=_windows("clip,0.5"), workers=1, progress=False)
    score([minute[0]], Predictor.from_dir(model.model_dir), opts)
    assert opts.window == (CLIP_S, 0.5)
