"""ONNX export and the torch-free ONNX Runtime backend: parity, int8 agreement, integrity, no torch at serve
time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import CLASSES, make_dataset, make_sound
from learner.folder import ModelDirError
from learner.model.registry import get_arch, list_archs
from learner.serve.predictor import Predictor
from tests.conftest import SMALL_AUDIO, save_untrained

ROOT = Path(__file__).resolve().parent.parent


HEAVY = ("torch", "torchaudio", "fastai", "timm")


def _random_model_dir(folder: Path, arch: str, seed: int = 0) -> Path:
    import torch

    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model.registry import create_model

    torch.manual_seed(seed)
    cfg = AudioConfig(**SMALL_AUDIO, norm_stats=(-40.0, 20.0))
    net = create_model(arch, 5, cfg)
    for m in net.modules():  # non-trivial BatchNorm statistics, so folding them into convs is exercised
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return save_model_dir(
        folder, net.state_dict(), {"arch": arch, "classes": list("abcde"), "audio": cfg.to_dict()}
    )


def _clips(sr: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([make_sound(CLASSES[i % 4], sr, 1.0, rng) for i in range(n)])


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory) -> Path:
    """A copy of the trained xresnet18 with model.onnx and model.int8.onnx (via the CLI)."""
    from jobs.export import main

    d = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(trained_model.model_dir, d)
    assert main(["--model", str(d), "--int8"]) == 0
    return d


@pytest.mark.parametrize(
    "audio, phases",
    [
        ({}, 16),
        (SMALL_AUDIO, 16),
        ({"n_fft": 1000, "hop_length": 250}, 2),
        ({"n_fft": 2048, "hop_length": 441, "f_max": 8000.0}, 1),
    ],
)
def test_dft_logmel_equals_torchaudio(audio, phases):
    import torch

    from learner.config import AudioConfig
    from learner.model.frontend import LogMel
    from learner.model.frontend_onnx import DftLogMel

    cfg = AudioConfig(**{k: v for k, v in audio.items() if k != "mixup"})
    ref = LogMel(cfg).eval()
    twin = DftLogMel(ref)
    assert twin.phases == phases
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, cfg.n_samples, generator=g) * 0.1
    x[1] *= 1e-3  # quiet
    x[2] = 0.5 * torch.sin(torch.arange(cfg.n_samples) * 0.05)  # a pure tone: 80 dB of dynamic range in use
    x[3, :, ::97] = 0.9  # clicks
    with torch.no_grad():
        a, b = ref(x), twin(x)
    assert a.shape == b.shape == (4, 1, cfg.n_mels, cfg.n_frames)
    assert (a - b).abs().max().item() < 5e-3  # dB, float32 rounding of a DFT against an FFT


# backbone archs need their own rate: tests/test_heads.py
@pytest.mark.parametrize("arch", [a for a in list_archs() if not get_arch(a).backbone])
def test_every_arch_exports_with_torch_parity(arch, tmp_path):
    from learner.serve.export import export_model_dir

    d = _random_model_dir(tmp_path / arch, arch)
    rec = export_model_dir(d, n_probe=6)
    assert rec["input"] == {
        "name": "waveform",
        "shape": ["batch", 16000],
        "dtype": "float32",
        "sample_rate": 16000,
    }
    torch_p = Predictor.from_dir(d, backend="torch")
    onnx_p = Predictor.from_dir(d)  # auto picks ONNX now that model.onnx is there
    assert onnx_p.backend.name == "onnx" and torch_p.backend.name == "torch"
    waves = _clips(16000, 10, seed=1)
    ref, got = torch_p.predict_waves(waves), onnx_p.predict_waves(waves)
    assert ref.shape == got.shape == (10, 5)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_p.backend(waves), torch_p.backend(waves), atol=2e-3, rtol=1e-3)  # logits


def _split_between(probs: np.ndarray) -> float:
    """A threshold in the widest gap among the middle scores: some clips above, some below, none within
    1e-4."""
    p = np.sort(probs)
    lo, hi = len(p) // 4, len(p) - len(p) // 4
    i = lo + int(np.argmax(np.diff(p[lo:hi])))
    return float((p[i] + p[i + 1]) / 2)


def test_multilabel_model_exports_with_the_same_sigmoid_scores_labels_thresholds_and_events(tmp_path):
    """`jobs.export` on a multi-label (sigmoid) model: ONNX gives torch's scores, detected labels and
    thresholds."""
    from scipy.special import expit

    from jobs.export import main

    d = _random_model_dir(tmp_path / "multi", "mfcc_cnn1d", seed=3)
    cfg = json.loads((d / "config.json").read_text())
    waves = _clips(16000, 16, seed=2)
    logits = Predictor.from_dir(d, backend="torch").backend(waves)
    thresholds = {
        c: _split_between(expit(logits[:, i].astype(np.float64))) for i, c in enumerate(cfg["classes"])
    }
    (d / "config.json").write_text(json.dumps({**cfg, "task": "multi", "thresholds": thresholds}))
    assert main(["--model", str(d), "--quiet"]) == 0
    assert json.loads((d / "config.json").read_text())["thresholds"] == thresholds  # the export keeps them
    torch_p, onnx_p = Predictor.from_dir(d, backend="torch"), Predictor.from_dir(d)
    assert onnx_p.backend.name == "onnx" and onnx_p.task == torch_p.task == "multi"
    np.testing.assert_array_equal(onnx_p.thresholds, [thresholds[c] for c in onnx_p.classes])
    np.testing.assert_array_equal(onnx_p.thresholds, torch_p.thresholds)
    ref, got = torch_p.predict_waves(waves), onnx_p.predict_waves(waves)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        got, expit(onnx_p.backend(waves).astype(np.float64)), atol=1e-6
    )  # sigmoid, not softmax
    assert not np.allclose(got.sum(1), 1, atol=1e-2)
    found = [onnx_p.detect(p) for p in got]
    assert found == [torch_p.detect(p) for p in ref]
    assert (
        0 < sum(map(len, found)) < got.size and len({len(f) for f in found}) > 1
    )  # several, one, none per clip
    long = np.concatenate(list(waves[:6]))  # 6 s: windowed, so events too
    a = torch_p.predict(long, sample_rate=16000, window=1.0, hop=0.25)
    b = onnx_p.predict(long, sample_rate=16000, window=1.0, hop=0.25)
    assert (
        b.detected == a.detected
        and b.events
        and [(e.label, e.start_s, e.end_s) for e in b.events]
        == [(e.label, e.start_s, e.end_s) for e in a.events]
    )


def test_export_failure_is_one_clear_line(tmp_path, monkeypatch):
    import torch

    from learner.serve.export import ExportError, export_model_dir

    d = _random_model_dir(tmp_path / "m", "conv1d_raw")

    def boom(*a, **k):
        raise RuntimeError("Unsupported: ONNX export of operator foo\n  long exporter traceback ...")

    monkeypatch.setattr(torch.onnx, "export", boom)
    with pytest.raises(ExportError) as e:
        export_model_dir(d)
    assert (
        str(e.value)
        == "conv1d_raw: ONNX export failed: RuntimeError: Unsupported: ONNX export of operator foo"
    )
    assert not (d / "model.onnx").exists() and "onnx" not in json.loads((d / "config.json").read_text())


def test_export_records_files_and_serves_audio_files_like_torch(exported, tmp_path):
    from learner.serve.onnx_backend import sha256_file

    cfg = json.loads((exported / "config.json").read_text())
    rec = cfg["onnx"]
    assert set(rec["files"]) == {"model.onnx", "model.int8.onnx"}
    for name, digest in rec["files"].items():
        assert sha256_file(exported / name) == digest
    assert rec["opset"] == 17 and rec["output"]["shape"] == ["batch", 4]
    assert (exported / "model.int8.onnx").stat().st_size < 0.4 * (exported / "model.onnx").stat().st_size
    data = make_dataset(tmp_path / "d", n_per_class=3, seed=5)
    paths = sorted(data.rglob("*.wav"))
    ref = np.stack([r.probs for r in Predictor.from_dir(exported, backend="torch").predict_many(paths)])
    got = np.stack([r.probs for r in Predictor.from_dir(exported, backend="onnx").predict_many(paths)])
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_int8_top1_agreement_on_a_generated_set(exported, tmp_path):
    data = make_dataset(tmp_path / "agree", n_per_class=50, seed=11)  # 200 clips the model never saw
    paths = sorted(data.rglob("*.wav"))
    torch_p = Predictor.from_dir(exported, backend="torch")
    int8_p = Predictor.from_dir(exported, backend="onnx-int8")
    ref = np.array([r.label for r in torch_p.predict_many(paths)])
    got = np.array([r.label for r in int8_p.predict_many(paths)])
    assert np.mean(ref == got) >= 0.99, f"int8 top-1 agreement {np.mean(ref == got):.3f}"
    truth = np.array([p.parent.name for p in paths])
    assert np.mean(got == truth) >= 0.8  # and still a working classifier


def test_calibration_clips_go_through_the_predictor_pipeline(trained_model, tmp_path):
    from learner.serve.export import calibration_clips

    data = make_dataset(tmp_path / "cal", n_per_class=3, seed=2)
    (data / "notes.txt").write_text("not audio, not picked")
    clips = calibration_clips(trained_model.model_dir, data, n=5)
    assert clips.shape == (5, 16000) and clips.dtype == np.float32
    p = Predictor.from_dir(trained_model.model_dir, backend="torch")
    every = sorted(data.rglob("*.wav"))
    prepared = [p.prepare(p.decode(f).samples) for f in every]
    assert all(any(np.array_equal(c, q) for q in prepared) for c in clips)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        calibration_clips(trained_model.model_dir, tmp_path / "empty", n=5)


@pytest.mark.parametrize(
    "damage", ["flip_bytes", "config_sha", "truncate_with_matching_sha", "unrecorded", "stale_weights"]
)
def test_bad_onnx_files_are_clear_errors_never_a_fallback(exported, tmp_path, damage):
    from learner.serve.onnx_backend import sha256_file

    d = tmp_path / "m"
    shutil.copytree(exported, d)
    cfg = json.loads((d / "config.json").read_text())
    onnx_file = d / "model.onnx"
    if damage == "flip_bytes":
        raw = bytearray(onnx_file.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        onnx_file.write_bytes(bytes(raw))
        expect = "sha256 does not match"
    elif damage == "config_sha":
        cfg["onnx"]["files"]["model.onnx"] = "0" * 64
        expect = "sha256 does not match"
    elif damage == "truncate_with_matching_sha":
        onnx_file.write_bytes(onnx_file.read_bytes()[:5000])
        cfg["onnx"]["files"]["model.onnx"] = sha256_file(onnx_file)
        expect = "ONNX Runtime cannot load it"
    elif damage == "unrecorded":
        del cfg["onnx"]
        expect = "not recorded in"
    else:
        import torch
        from safetensors.torch import load_file, save_file

        sd = load_file(str(d / "model.safetensors"))
        sd = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in sd.items()}
        save_file({k: torch.as_tensor(v).contiguous() for k, v in sd.items()}, str(d / "model.safetensors"))
        expect = "stale export"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=expect) as e:
        Predictor.from_dir(d)  # auto: model.onnx is there, so ONNX or an error
    assert "model.onnx" in str(e.value) and "\n" not in str(e.value)


def test_serving_with_onnx_imports_no_torch(exported, tmp_path):
    data = make_dataset(tmp_path / "clips", n_per_class=2, seed=3)
    sf.write(
        data / "tone" / "long.flac",
        np.tile(make_sound("tone", 16000, 1.0, np.random.default_rng(0)), 5),
        16000,
    )
    code = f"""
import json, runpy, sys
results = {{}}
predict_argv = [{str(data / "tone" / "long.flac")!r}, {str(data / "noise" / "noise_000.wav")!r}]
score_argv = ["--input", {str(data)!r}, "--output", {str(tmp_path / "out.parquet")!r}, "--quiet",
              "--workers", "1"]
for job, argv in [("jobs.predict", predict_argv), ("jobs.score", score_argv)]:
    sys.argv = [job, "--model", {str(exported)!r}, "--backend", "onnx", *argv]
    try:
        runpy.run_module(job, run_name="__main__")
    except SystemExit as e:
        results[job] = e.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"exit": results, "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report == {"exit": {"jobs.predict": 0, "jobs.score": 0}, "heavy": []}, out.stderr
    assert lines[0].startswith(str(data / "tone" / "long.flac") + "\ttone ")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 9


def test_library_modules_stay_torch_free_at_import():
    code = (
        "import sys, learner, learner.audio, learner.audio.pipeline, learner.config, learner.folder, "
        "learner.hub, "
        "learner.serve.predictor, learner.serve.onnx_backend, learner.score.rows, jobs.predict, jobs.export; "
        "from learner import Predictor, AudioConfig, ClipPipeline; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- issue 25, item 7: the ONNX graph's output width against config.json's classes --------------------------


@pytest.fixture(scope="module")
def exported_ab(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    from learner.serve.export import export_model_dir

    d = save_untrained(tmp_path_factory.mktemp("onnx") / "m", ["a", "b"])
    export_model_dir(d, n_probe=4)
    return d


@pytest.mark.parametrize("classes", [["a", "b", "c"], ["a"]])
def test_onnx_output_width_must_match_the_classes(exported_ab, tmp_path, classes):
    import json
    import shutil

    d = tmp_path / "m"
    shutil.copytree(exported_ab, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["classes"] = classes
    (d / "config.json").write_text(json.dumps(cfg))
    from learner.folder import ModelDirError

    with pytest.raises(
        ModelDirError, match=f"gives 2 scores per clip, config.json lists {len(classes)}"
    ) as e:
        Predictor.from_dir(d, backend="onnx")
    assert "\n" not in str(e.value)
    assert Predictor.from_dir(exported_ab, backend="onnx").classes == ["a", "b"]
