"""Shared fixtures: generated audio datasets and one small trained model reused across modules."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def run_job(module: str, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` from the checkout, as a user types it; its exit code, stdout and stderr.
    `timeout` and `env` go to subprocess.run."""
    cmd = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


# The first seven columns of a Raven Pro selection table, as Raven Pro writes its header line (and
# BirdNET-Analyzer and OpenSoundscape read it): what earshot's Raven exports start with, written here once.
RAVEN_HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
RAVEN_PUBLISHED = RAVEN_HEADER.split("\t")
# A tiny but real configuration: 1 s clips at 16 kHz, 64 mel bands (fast on 2 CPU cores).
SMALL_AUDIO = dict(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)
# ... and the same as flags of jobs.train (`--hop` is hop_length's flag)
SMALL_FLAGS = [
    x
    for k, v in SMALL_AUDIO.items()
    for x in ("--hop" if k == "hop_length" else "--" + k.replace("_", "-"), f"{v:g}")
]


def save_untrained(folder: Path, classes: list[str], arch: str = "xresnet18") -> Path:
    """A real model folder with random weights: enough for paths, rows and validation (no training wait)."""
    import torch

    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model import create_model, get_arch

    torch.manual_seed(0)
    cfg = AudioConfig(**SMALL_AUDIO)
    net = create_model(arch, len(classes), cfg).eval()
    return save_model_dir(
        folder,
        net.state_dict(),
        {"arch": arch, "input": get_arch(arch).input, "classes": classes, "audio": cfg.to_dict()},
    )


@pytest.fixture(scope="session")
def four_class_dir(tmp_path_factory) -> Path:
    from learner.data.sounds import make_dataset

    return make_dataset(tmp_path_factory.mktemp("four_class"), n_per_class=40, sr=16000, duration=1.0)


@pytest.fixture(scope="session")
def trained_model(four_class_dir, tmp_path_factory):
    """xresnet18 trained 2 epochs from scratch on the 4-class set (≈10 s); returns the TrainResult."""
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    out = tmp_path_factory.mktemp("model") / "xresnet18"
    args = TrainArgs(
        data=str(four_class_dir), out=str(out), epochs=2, pretrained="none", bs=16, progress=False
    )
    return train(args, AudioConfig(**SMALL_AUDIO))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def app_serving(model_dir: str | Path):
    """`import app` afresh with EARSHOT_MODEL pointing at `model_dir` (as a Space would set it); the
    environment and the module cache are restored afterwards."""
    old = os.environ.get("EARSHOT_MODEL")
    os.environ["EARSHOT_MODEL"] = str(model_dir)
    sys.modules.pop("app", None)
    try:
        yield importlib.import_module("app")
    finally:
        sys.modules.pop("app", None)
        if old is None:
            os.environ.pop("EARSHOT_MODEL", None)
        else:
            os.environ["EARSHOT_MODEL"] = old


@pytest.fixture(scope="module")
def app_module(trained_model):
    """The demo module serving the session's trained model."""
    with app_serving(trained_model.model_dir) as app:
        yield app


@pytest.fixture(scope="module")
def high_low_model(tmp_path_factory) -> Path:
    """An untrained xresnet18 folder with classes high and low: the shape of a model, for input checks."""
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


@pytest.fixture(scope="module")
def fragment(tmp_path_factory) -> Path:
    """A 0.03 s WAV at 16 kHz: what a truncated download leaves (jobs.score refuses it as too short)."""
    import numpy as np
    import soundfile as sf

    from learner.data.sounds import make_sound

    path = tmp_path_factory.mktemp("fragment") / "cut.wav"
    sf.write(path, make_sound("tone", 16000, 0.03, np.random.default_rng(1)), 16000)
    return path


LOW_SR = 8000


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Two classes (tones, noise) of 8 × 0.5 s clips at 8 kHz: hop and rate are picked from these when not
    given."""
    import numpy as np
    import soundfile as sf

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(1)
    t = np.arange(LOW_SR // 2) / LOW_SR
    for label in ("tone", "noise"):
        (root / label).mkdir()
        for i in range(8):
            tone = np.sin(2 * np.pi * rng.uniform(300, 900) * t)
            x = tone if label == "tone" else rng.normal(0, 0.3, t.size)
            sf.write(root / label / f"{i}.wav", (0.5 * x).astype(np.float32), LOW_SR)
    return root


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A folder as users hand it over: a 16 kHz tone, clicks in a subfolder, a broken WAV and a text file."""
    import numpy as np
    import soundfile as sf

    from learner.data.sounds import make_sound

    d = tmp_path_factory.mktemp("friction_clips")
    rng = np.random.default_rng(7)
    (d / "sub").mkdir()
    sf.write(d / "a_tone.wav", make_sound("tone", 16000, 1.0, rng), 16000)
    sf.write(d / "sub" / "b_clicks.flac", make_sound("clicks", 16000, 1.0, rng), 16000)
    (d / "c_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (d / "readme.txt").write_text("not audio")
    return d


@pytest.fixture(scope="session")
def published():
    """Google's speech_embedding ONNX files (mel graph, network), fetched once from the openwakeword wheel;
    the tests that need them skip, saying why, only when the package index is unreachable."""
    from learner.model import speech_embedding as se
    from learner.model.backbone_weights import BackboneWeightsError

    try:
        return se.published_files()
    except BackboneWeightsError as e:
        if "need the network" in str(e):
            pytest.skip(f"the package index is unreachable: {e}")
        raise
