"""Serving without torch (issue 12, part C, items 8, 9 and 11): a lean venv says to export, the demo's
log-mel and saliency run on NumPy (equal to the torch front end), and int8 export calibrates on the user's
clips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_dataset, make_sound

ROOT = Path(__file__).resolve().parent.parent


SR = 16000


# The lean serving venv (requirements-serve.txt) has no torch, torchaudio, fastai or timm: this finder makes a
# subprocess of the main venv behave the same way (`import torch` raises ModuleNotFoundError).
NO_TORCH = """
import sys
class _LeanVenv:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "torchvision", "fastai", "timm"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _LeanVenv())
"""


def _lean(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def torch_only_model(trained_model, tmp_path_factory) -> Path:
    """The session's model as trained: model.safetensors, no model.onnx."""
    d = tmp_path_factory.mktemp("torch_only") / "model"
    shutil.copytree(trained_model.model_dir, d, ignore=shutil.ignore_patterns("*.onnx", "model.pkl"))
    return d


@pytest.fixture(scope="module")
def exported_model(trained_model, tmp_path_factory) -> Path:
    from learner.serve.export import export_model_dir

    d = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(trained_model.model_dir, d, ignore=shutil.ignore_patterns("*.onnx", "model.pkl"))
    export_model_dir(d)
    return d


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve_clips") / "tone.wav"
    sf.write(path, make_sound("tone", SR, 1.0, np.random.default_rng(2)), SR)
    return path


# --- issue 12 part C, item 8: a model without model.onnx where torch is missing: one line, pointing to
# jobs.export


@pytest.mark.parametrize("job", ["jobs.predict", "jobs.score", "app.py"])
def test_lean_venv_without_onnx_says_to_export(job, torch_only_model, tone, tmp_path):
    argv = {
        "jobs.predict": [str(tone), "--model", str(torch_only_model)],
        "jobs.score": [
            str(tone),
            "--model",
            str(torch_only_model),
            "--out",
            str(tmp_path / "o.parquet"),
            "--quiet",
        ],
        "app.py": ["--model", str(torch_only_model)],
    }[job]
    run = (
        f"runpy.run_path({job!r}, run_name='__main__')"
        if job.endswith(".py")
        else f"runpy.run_module({job!r}, run_name='__main__')"
    )
    out = _lean(f"import runpy\nsys.argv = [{job!r}, *{argv!r}]\n{run}\n")
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert lines[0] == (
        f"earshot: {torch_only_model}: no model.onnx, and torch (needed for model.safetensors) is not "
        f"installed here; run `python -m jobs.export --model {torch_only_model}` where torch is "
        "installed (requirements.txt), then serve it here"
    )


# --- issue 12 part C, item 9: the demo's log-mel and saliency without torch ---------------------------------


@pytest.mark.parametrize(
    "audio",
    [
        dict(),  # the defaults: 22.05 kHz, n_fft 1024, hop 512, 128 mels, top_db 80
        dict(sample_rate=16000, duration=1.0, n_fft=512, hop_length=256, n_mels=64, f_max=8000.0),
        dict(sample_rate=22050, duration=0.5, n_fft=1000, hop_length=300, n_mels=40, f_min=0.0, top_db=None),
    ],
)
def test_numpy_logmel_equals_the_torch_front_end(audio):
    import torch

    from learner.audio.melspec import f_max_of, logmel, mel_filterbank
    from learner.config import AudioConfig
    from learner.model.frontend import LogMel

    cfg = AudioConfig(**audio)
    rng = np.random.default_rng(0)
    x = (rng.normal(0, 0.1, cfg.n_samples) + np.sin(np.arange(cfg.n_samples) * 0.05)).astype(np.float32)
    x[: cfg.n_samples // 3] *= 1e-4  # a quiet stretch: the top_db floor (or its absence) matters
    module = LogMel(cfg)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    ours = logmel(x, cfg)
    assert ours.shape == ref.shape == (cfg.n_mels, cfg.n_frames) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-3  # dB; float32 rounding in torch
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.f_min), f_max_of(cfg))
    np.testing.assert_allclose(fb, module.mel.mel_scale.fb.numpy(), atol=1e-6)


def test_demo_draws_log_mel_and_saliency_without_torch(exported_model, tone):
    code = f"""
from learner.demo.classify import classify
from learner.serve.predictor import Predictor
p = Predictor.from_dir({str(exported_model)!r})
out = classify(p, {str(tone)!r})
titles = [fig.axes[0].get_title() for fig in (out.spectrogram, out.saliency)]
print(p.backend.name, next(iter(out.labels)), *titles, sep="|")
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "torchaudio", "fastai", "timm"}}))
"""
    out = _lean(code)
    assert out.returncode == 0, out.stderr
    first, heavy = out.stdout.strip().splitlines()[-2:]
    backend, label, spec_title, sal_title = first.split("|")
    assert (backend, label, heavy) == ("onnx", "tone", "[]")
    assert spec_title.startswith("what the model heard")
    assert sal_title == "where the model listened for 'tone' (occlusion: bands muted in turn)"


def test_occlusion_finds_the_band_that_carries_the_tone(exported_model):
    from learner.audio.melspec import hz_to_mel, occlusion
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(exported_model, backend="onnx")
    cfg = p.cfg
    t = np.arange(cfg.n_samples) / cfg.sample_rate
    clip = (0.6 * np.sin(2 * np.pi * 700 * t) + np.random.default_rng(0).normal(0, 0.003, t.size)).astype(
        np.float32
    )
    target = p.classes.index("tone")
    sal = occlusion(p.predict_waves, clip, cfg, target, bands=8)
    assert sal.heat.shape == sal.logmel.shape == (cfg.n_mels, cfg.n_frames)
    assert sal.heat.max() == pytest.approx(1.0) and sal.heat.min() >= 0
    lo, hi = float(hz_to_mel(cfg.f_min)), float(hz_to_mel(cfg.f_max or cfg.sample_rate / 2))
    tone_band = int((float(hz_to_mel(700)) - lo) / (hi - lo) * 8)
    per_band = sal.heat.reshape(8, cfg.n_mels // 8, -1).mean(axis=(1, 2))
    assert per_band.argmax() == tone_band, per_band


# --- issue 12 part C, item 11: int8 calibration on the user's clips: bad files skipped by name, agreement
# measured on them


def test_export_calib_skips_non_audio_and_measures_agreement_on_the_given_clips(
    trained_model, tmp_path, capsys
):
    from jobs.export import main
    from learner.serve.export import _run, calibration_clips

    model = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, model, ignore=shutil.ignore_patterns("*.onnx", "model.pkl"))
    calib = make_dataset(tmp_path / "calib", n_per_class=3, seed=4)
    (calib / "tone" / "notes.wav").write_text("a text file with an audio name")
    assert main(["--model", str(model), "--int8", "--calib", str(calib)]) == 0
    out, err = capsys.readouterr()
    assert f"earshot: warning: calibration: skipped {calib / 'tone' / 'notes.wav'}: " in err
    rec = json.loads((model / "config.json").read_text())["onnx"]["int8"]
    assert (
        rec["calibration"] == "12 given clips"
        and rec["agreement_on"] == "given"
        and rec["agreement_clips"] == 12
    )
    assert "on 12 of your calibration clips" in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clips = calibration_clips(model, calib)
    agree = np.mean(
        _run(model / "model.int8.onnx", clips).argmax(1) == _run(model / "model.onnx", clips).argmax(1)
    )
    assert rec["top1_agreement"] == pytest.approx(float(agree))
