import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SMALL_FLAGS, run_job

ROOT = Path(__file__).resolve().parent.parent


def test_training_reaches_90_percent_and_writes_the_model_dir(trained_model):
    m = trained_model.metrics
    assert m["accuracy"] >= 0.9, m["accuracy"]
    d = trained_model.model_dir
    for f in (
        "model.safetensors",
        "config.json",
        "metrics.json",
        "history.csv",
        "confusion_matrix.png",
        "curves.png",
        "model.pkl",
    ):
        assert (d / f).is_file(), f
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["arch"] == "xresnet18" and cfg["classes"] == ["chirp", "clicks", "noise", "tone"]
    assert cfg["audio"]["sample_rate"] == 16000 and cfg["audio"]["norm_stats"][1] > 0
    assert cfg["train"]["epochs"] == 2 and "torch" in cfg["versions"]
    hist = pd.read_csv(d / "history.csv")
    assert list(hist["epoch"]) == [0, 1] and {"train_loss", "valid_loss", "accuracy"} <= set(hist.columns)
    assert not (d / ".checkpoints").exists()


def test_evaluate_job_reproduces_the_saved_metrics(trained_model, four_class_dir, tmp_path):
    d = trained_model.model_dir
    r = run_job(
        "jobs.evaluate", "--model", str(d), "--data", str(four_class_dir), "--subset", "valid", "--out",
        str(tmp_path), "--quiet",
    )
    assert r.returncode == 0, r.stderr
    saved = json.loads((d / "metrics.json").read_text())
    again = json.loads((tmp_path / "metrics.json").read_text())
    for k in ("accuracy", "top3_accuracy", "map3", "macro_f1", "n_samples"):
        assert again[k] == pytest.approx(saved[k]), k
    assert again["confusion"] == saved["confusion"]
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_bad_files_are_reported_by_name_and_excluded(four_class_dir, tmp_path):
    data = tmp_path / "data"
    for c in ("tone", "chirp"):
        shutil.copytree(four_class_dir / c, data / c)
    (data / "tone" / "empty.wav").write_bytes(b"")
    (data / "tone" / "notes.mp3").write_text("these are my notes, not audio")
    good = next((data / "chirp").glob("*.wav")).read_bytes()
    (data / "chirp" / "corrupt.wav").write_bytes(good[:30])  # cut inside the fmt chunk
    (data / "chirp" / "cut.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + good[100:300])
    r = run_job(
        "jobs.train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1", "--pretrained",
        "none", "--bs", "16", "--quiet", "--no-pickle", *SMALL_FLAGS,
    )
    assert r.returncode == 0, r.stderr
    assert "earshot: 4 file(s) could not be read" in r.stderr  # a library warning, printed by the job
    for name in ("empty.wav", "notes.mp3", "corrupt.wav", "cut.flac"):
        assert (r.stdout + r.stderr).count(name) == 1
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert len(m["excluded_files"]) == 4
    assert m["n_train"] + m["n_valid"] == 80


def test_train_job_errors_are_one_line(tmp_path):
    r = run_job(
        "jobs.train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"), "--pretrained",
        "none",
    )
    assert r.returncode == 1
    assert r.stderr.startswith("earshot: ") and "Traceback" not in r.stderr


def test_clip_length_is_picked_from_the_data():
    from learner.train.fit import pick_duration

    assert pick_duration([0.4, 0.5, 0.6, 0.7] * 10) == 1.0  # spoken words: 1 s, not 5
    assert pick_duration([5.0] * 20) == 5.0
    assert pick_duration([30.0, 40.0]) == 10.0 and pick_duration([0.05]) == 0.5


def test_relative_out_and_data_driven_audio_settings(four_class_dir, tmp_path):
    """The README's command uses a relative --out; without --sample-rate/--hop they follow the data."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.train",
            "--data",
            str(four_class_dir),
            "--out",
            "rel/model",
            "--epochs",
            "1",
            "--pretrained",
            "none",
            "--bs",
            "16",
            "--quiet",
            "--no-pickle",
            "--duration",
            "1",
            "--n-mels",
            "32",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "rel" / "model" / "config.json").read_text())
    assert cfg["audio"]["sample_rate"] == 16000  # the files' own rate, not 22.05 kHz
    assert cfg["audio"]["hop_length"] == 160  # 10 ms: 101 frames for a 1 s clip
    assert (tmp_path / "rel" / "model" / "history.csv").is_file()
