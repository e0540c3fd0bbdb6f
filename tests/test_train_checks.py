"""Training refuses early, in one line, before decoding: offline ImageNet weights and bad weights files
(issue 12, part C, item 7; issue 25, items 8-10, 20), fp16 on a CPU, absurd class counts; and the training
log lists each excluded file once (issue 12, part C, item 18)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_dataset
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parent.parent


SR = 16000


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    return env


# --- issue 12 part C, item 7: offline, the default (ImageNet) training fails at once, in one whole line -----


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused


def test_offline_imagenet_training_fails_in_seconds_with_one_whole_line(tmp_path):
    data = make_dataset(tmp_path / "data", n_per_class=3)
    env = _env(
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
    )
    t0 = time.perf_counter()
    out = run_job("jobs.train", "--data", str(data), "--out", str(tmp_path / "m"), timeout=120, env=env)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 1, out.stderr
    assert elapsed <= 3.0, f"took {elapsed:.1f} s"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Retry" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    line = lines[0]
    assert line.startswith("earshot: ImageNet weights for xresnet18 (timm/resnet18d.ra2_in1k")
    assert line.endswith(
        "use --pretrained PATH (a downloaded weights file or an earshot model) or --pretrained none"
    )
    assert "cannot be reached" in line and not (tmp_path / "m" / "config.json").exists()


def test_library_checks_the_weights_before_decoding_and_names_the_field(monkeypatch, tmp_path):
    import learner.train
    import learner.train.loading
    from learner.config import AudioConfig
    from learner.model.pretrained import PretrainedError

    def no_decoding(*a, **k):
        raise AssertionError("decoded audio before checking the starting weights")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(learner.train.loading, "decode_signals", no_decoding)
    data = make_dataset(tmp_path / "data", n_per_class=2)
    args = learner.train.TrainArgs(data=str(data), out=str(tmp_path / "m"), progress=False)
    with pytest.raises(PretrainedError) as e:
        learner.train.train(args, AudioConfig(sample_rate=SR, duration=1.0))
    assert e.value.field == "pretrained" and "--" not in str(e.value)
    assert str(e.value).endswith("set pretrained to a weights file, an earlier earshot model or 'none'")


# --- issue 12 part C, item 18: excluded files are listed once -----------------------------------------------


def test_training_log_lists_each_excluded_file_once(tmp_path):
    data = make_dataset(tmp_path / "data", n_per_class=6)
    (data / "tone" / "broken_one.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    cmd = [
        sys.executable,
        "-m",
        "jobs.train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "m"),
        "--arch",
        "mfcc_cnn1d",
        "--pretrained",
        "none",
        "--epochs",
        "1",
        "--bs",
        "8",
        "--no-pickle",
        "--quiet",
        "--workers",
        "1",
        "--sample-rate",
        "16000",
        "--duration",
        "1",
        "--n-fft",
        "512",
        "--hop",
        "256",
        "--n-mels",
        "64",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert log.count("broken_one.wav") == 1, log
    assert "1 file(s) could not be read and are excluded from training" in out.stderr




# --- issue 25, item 20 --------------------------------------------------------------------------------------


def _run_job(main, argv: list[str], capsys) -> tuple[int, str]:
    """A job in this process as its command runs it (`jobs._cli.run`): exit code and stderr."""
    from jobs._cli import run

    with pytest.raises(SystemExit) as e:
        run(lambda: main(argv))
    return e.value.code, capsys.readouterr().err


def test_fp16_on_a_cpu_fails_before_decoding_and_makes_no_folder(tiny_data, tmp_path, capsys, monkeypatch):
    import learner.train.fit
    from jobs.train import main

    def never(*a, **k):
        raise AssertionError("decoded before refusing --fp16")

    monkeypatch.setattr(learner.train.fit, "prepare_data", never)
    out = tmp_path / "never"
    code, err = _run_job(
        main, ["--data", str(tiny_data), "--out", str(out), "--fp16", "--pretrained", "none"], capsys
    )
    assert code == 1 and err.count("\n") == 1 and "needs a CUDA GPU" in err
    assert not out.exists()


# --- issue 25, items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------


def _train_main(argv: list[str]) -> None:
    from jobs.train import main

    main(argv + ["--epochs", "1", "--bs", "8", "--no-pickle", "--quiet", "--sample-rate", str(SR)])


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    from learner.data.sounds import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny"), n_per_class=4, sr=SR, duration=0.5)


def test_absurd_class_counts_are_refused_before_decoding(tmp_path):
    import csv

    from learner.data.labels import MAX_TRAIN_CLASSES

    clip = tmp_path / "x.wav"
    sf.write(clip, np.zeros(SR // 2, np.float32), SR)
    data = clip.read_bytes()
    clips = tmp_path / "clips"
    clips.mkdir()
    manifest = tmp_path / "many.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for i in range(MAX_TRAIN_CLASSES + 1):  # one file per class (a file under two labels is refused)
            (clips / f"{i}.wav").write_bytes(data)
            w.writerow([clips / f"{i}.wav", f"class{i}"])
    out = tmp_path / "model"
    with pytest.raises(ValueError, match=f"{MAX_TRAIN_CLASSES + 1} classes; earshot trains at most"):
        _train_main(["--data", str(manifest), "--out", str(out), "--pretrained", "none"])
    assert not out.exists()  # no partial model folder


def test_pretrained_that_is_not_weights_is_refused_before_decoding(tiny_set, tmp_path, monkeypatch):
    import learner.train.fit as fit

    def no_decoding(*a, **k):  # the run must stop before the data is read
        raise AssertionError("decoding started")

    monkeypatch.setattr(fit, "prepare_data", no_decoding)
    not_weights = tmp_path / "passwd"
    not_weights.write_text("root:x:0:0:root:/root:/bin/bash\n")
    out = tmp_path / "model"
    with pytest.raises(RuntimeError, match="passwd: not a weights file") as e:
        _train_main(["--data", str(tiny_set), "--out", str(out), "--pretrained", str(not_weights)])
    assert "\n" not in str(e.value) and not out.exists()
