"""Pretrained audio backbones: front ends (torch = NumPy = ONNX form), blocks, weight adapters of the real
checkpoint layouts, checksums, the numpy allow-list, offline errors, and the classifier built on one."""

from __future__ import annotations

import hashlib
import io
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.audio import frontends
from learner.config import AudioConfig
from learner.model import backbone_weights as bw
from learner.model import create_model, get_arch
from learner.model.aisfx import AISFX_FRONT, aisfx_adapter
from learner.model.backbones import build_backbone, get_backbone, list_backbones, load_backbone, to_blocks
from learner.model.panns import Cnn10Net, panns_adapter


def _wave(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_registry_lists_both_backbones_and_their_archs():
    assert {"aisfx", "panns_cnn10"} <= set(list_backbones())
    assert get_arch("aisfx").backbone == "aisfx" and get_arch("aisfx").input == "waveform"
    with pytest.raises(ValueError, match="unknown backbone"):
        get_backbone("nope")


@pytest.mark.parametrize("name", ["aisfx", "panns_cnn10", "speech_embedding"])
def test_torch_numpy_and_onnx_forms_of_the_front_end_agree(name):
    bb = build_backbone(name)
    front = bb.spec.front
    x = _wave(1.3, front.sample_rate)
    ref = frontends.features(x, front)
    got = bb.features(torch.from_numpy(x)[None])[0].numpy()
    dft = bb.features.onnx_form()(torch.from_numpy(x)[None])[0].numpy()
    assert ref.shape == (front.n_frames(x.size), front.n_mels)
    tol = 1e-5 * max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(got, ref, atol=tol)
    np.testing.assert_allclose(dft, ref, atol=10 * tol)


def test_aisfx_front_end_is_the_papers():
    f = AISFX_FRONT
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.block_frames) == (44100, 2048, 1024, 96, 100)
    fb = frontends.filters_of(f)
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-9)  # L1-normalised filters
    assert f.block_s == pytest.approx(99 * 1024 / 44100)
    loud = frontends.features(_wave(1.0, 44100), f)
    quiet = frontends.features(0.01 * _wave(1.0, 44100), f)
    np.testing.assert_allclose(loud, quiet, atol=1e-6)  # peak-normalised


def test_blocks_cover_every_frame_and_match_numpy():
    f = AISFX_FRONT
    feats = np.random.default_rng(1).random((230, f.n_mels)).astype(np.float32)
    ref = frontends.blocks(feats, f)
    got = to_blocks(torch.from_numpy(feats)[None], f)[0].numpy()
    assert ref.shape == (4, 100, 96)  # starts 0, 50, 100, 150: the last one padded past frame 230
    np.testing.assert_array_equal(got, ref)
    assert frontends.blocks(feats[:40], f).shape == (1, 100, 96)


def test_backbone_forward_embed_and_pooling():
    bb = build_backbone("aisfx").eval()
    waves = torch.from_numpy(np.stack([_wave(3.0, 44100, s) for s in range(2)]))
    with torch.inference_mode():
        blocks = bb.block_embeddings(waves)
        pooled = bb(waves)
    assert blocks.shape == (2, bb.spec.front.n_blocks(bb.spec.front.n_frames(waves.shape[1])), 512)
    assert pooled.shape == (2, bb.dim) == (2, 1024)
    torch.testing.assert_close(pooled[:, :512], blocks.mean(1))
    torch.testing.assert_close(pooled[:, 512:], blocks.amax(1))
    e = bb.embed(_wave(2.0, 16000), sr=16000)  # resampled to 44.1 kHz first
    assert e.shape == (1024,) and np.isfinite(e).all()
    np.testing.assert_allclose(e, bb.embed(_wave(2.0, 16000), sr=16000))  # deterministic (eval mode)


def _fake_aisfx_checkpoint() -> tuple:
    net = build_backbone("aisfx").net
    sd = {f"embedding_net.{k}": v for k, v in net.state_dict().items()}
    sd["fc.0.0.weight"] = torch.zeros(256, 512)  # a dataset head the adapter must drop
    return sd, {"prosfx": (np.int64(0), 78)}  # numpy scalars, as in the real pickle


def test_aisfx_checkpoint_with_numpy_scalars_loads_through_the_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "checkpoint.pth"
    torch.save(_fake_aisfx_checkpoint(), ckpt)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)  # without the allow-list it is refused
    spec = get_backbone("aisfx")
    with pytest.raises(bw.BackboneWeightsError, match="sha256"):
        bw.backbone_state_dict(spec, ckpt)  # not the published file
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    spec = replace(spec, weights=replace(spec.weights, sha256=digest))
    sd = bw.backbone_state_dict(spec, ckpt)
    fresh = build_backbone("aisfx").net
    fresh.load_state_dict(sd, strict=True)
    assert bw.converted_path(spec).is_file()  # converted once to safetensors in the cache
    assert set(aisfx_adapter(_fake_aisfx_checkpoint())) == set(fresh.state_dict())


def test_panns_adapter_takes_the_zenodo_layout():
    net = Cnn10Net()
    sd = dict(net.state_dict())
    sd["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    sd["logmel_extractor.melW"] = torch.zeros(513, 64)
    sd["fc_audioset.weight"] = torch.zeros(527, 512)
    sd["fc_audioset.bias"] = torch.zeros(527)
    Cnn10Net().load_state_dict(panns_adapter({"model": sd, "iteration": 0}), strict=True)
    bb = build_backbone("panns_cnn10").eval()
    with torch.inference_mode():
        assert bb(torch.randn(2, 32000)).shape == (2, 1024)


def test_offline_weights_are_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path))
    spec = get_backbone("panns_cnn10")
    dead = replace(spec, weights=replace(spec.weights, url="http://127.0.0.1:9/Cnn10.pth"))
    with pytest.raises(bw.BackboneWeightsError, match="need the network") as e:
        bw.backbone_state_dict(dead)
    assert "\n" not in str(e.value)
    missing = replace(spec, weights=replace(spec.weights, url=None, package=None))
    with pytest.raises(bw.BackboneWeightsError, match="not installed"):
        bw.backbone_state_dict(missing)


def test_classifier_on_a_backbone_builds_from_its_config():
    cfg = AudioConfig(sample_rate=44100, duration=1.0, extra={"head": {"hidden": 32, "l2": True}})
    net = create_model("aisfx", 3, cfg).eval()
    with torch.inference_mode():
        assert net(torch.randn(2, 1, 44100)).shape == (2, 3)
    with pytest.raises(ValueError, match="44100 Hz"):
        create_model("aisfx", 3, AudioConfig(sample_rate=22050))


@pytest.mark.skipif(not bw.have_weights("aisfx"), reason="aisfx weights not installed (make installs them)")
def test_published_aisfx_weights_load_and_separate_sounds():
    bb = load_backbone("aisfx")
    tone = bb.embed(_wave(2.5, 44100), 44100)
    noise = bb.embed(np.random.default_rng(0).standard_normal(44100 * 2).astype(np.float32), 44100)
    cos = float(tone @ noise / np.linalg.norm(tone) / np.linalg.norm(noise))
    assert cos < 0.99 and np.isfinite(tone).all()


def test_published_file_names_and_checksums_are_recorded():
    a, p = get_backbone("aisfx").weights, get_backbone("panns_cnn10").weights
    assert a.sha256 == "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
    assert p.md5 == "bfb1f1f9968938fa8ef4012b8471f5f6" and p.url.startswith(
        "https://zenodo.org/record/3987831/"
    )
    assert Path(a.member).name == a.file


@pytest.mark.parametrize("frames", [22, 150, 216])
def test_blocks_export_to_onnx_at_fixed_clip_lengths(frames, tmp_path):
    import warnings

    import onnxruntime as ort

    class Blocks(torch.nn.Module):
        def forward(self, x):
            return to_blocks(x, AISFX_FRONT)

    x = torch.randn(2, frames, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Blocks(),
            (x,),
            str(tmp_path / "b.onnx"),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
        )
    x3 = torch.randn(3, frames, 96)
    got = ort.InferenceSession(str(tmp_path / "b.onnx")).run(None, {"x": x3.numpy()})[0]
    np.testing.assert_array_equal(got, Blocks()(x3).numpy())  # 4 blocks at 216 frames: the last padded


def _wheel(folder: Path, member: str, data: bytes, version: str = "0.1.2") -> Path:
    """A minimal aisfx wheel (what pip needs to take it from a local index) holding `member`."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"aisfx-{version}-py3-none-any.whl"
    info = f"aisfx-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: aisfx\nVersion: {version}\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def no_installed_aisfx(tmp_path, monkeypatch):
    """As in a Space: the package is not installed (plain pip cannot install it without its old pins)."""
    monkeypatch.setattr(bw, "installed_file", lambda src: None)
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "cache"))
    for var in ("HF_HUB_OFFLINE", "EARSHOT_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def test_weights_are_read_out_of_the_wheel_pip_fetches(tmp_path, monkeypatch, no_installed_aisfx):
    """Without the package, pip downloads the wheel (here from a local index: PIP_NO_INDEX + find-links),
    the checkpoint is read out of it and checked; a wheel holding anything else is refused and not kept;
    offline is one line, at once."""
    buf = io.BytesIO()
    torch.save(_fake_aisfx_checkpoint(), buf)
    index = tmp_path / "index"
    member = get_backbone("aisfx").weights.member
    _wheel(index, member, buf.getvalue())
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    spec = get_backbone("aisfx")
    real = spec.weights.sha256
    with pytest.raises(bw.BackboneWeightsError, match="sha256") as e:  # not the published checkpoint
        bw.backbone_state_dict(spec)
    assert "\n" not in str(e.value)
    downloads = bw.cache_root() / "downloads"
    assert not (downloads / "checkpoint.pth").exists() and not list(downloads.rglob("*.whl"))
    spec = replace(spec, weights=replace(spec.weights, sha256=hashlib.sha256(buf.getvalue()).hexdigest()))
    sd = bw.backbone_state_dict(spec)
    build_backbone("aisfx").net.load_state_dict(sd, strict=True)
    assert [w.name for w in downloads.rglob("*.whl")] == ["aisfx-0.1.2-py3-none-any.whl"]
    assert bw.converted_path(spec).is_file() and real != spec.weights.sha256
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))  # no wheel anywhere: as offline
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "cache2"))
    t0 = time.perf_counter()
    with pytest.raises(bw.BackboneWeightsError, match="need the network: pip could not download") as e:
        bw.source_file(spec)
    assert "\n" not in str(e.value) and time.perf_counter() - t0 < 60
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(bw.BackboneWeightsError, match="offline is set"):
        bw.source_file(spec)
    assert time.perf_counter() - t0 < 1  # no pip at all


def test_the_published_wheel_is_fetched_from_the_package_index(no_installed_aisfx):
    """The real path a Space takes: the aisfx 0.1.2 wheel from the package index pip is set up with, its
    checkpoint's published sha256, the weights loaded strictly. Skipped (saying why) only without the
    network."""
    spec = get_backbone("aisfx")
    try:
        path = bw.source_file(spec)
    except bw.BackboneWeightsError as e:
        if "need the network" in str(e):
            pytest.skip(f"the package index is unreachable: {e}")
        raise
    assert path.parent == bw.cache_root() / "downloads"  # read out of the fetched wheel, not an install
    build_backbone("aisfx").net.load_state_dict(bw.backbone_state_dict(spec), strict=True)
    assert bw.have_weights("aisfx")
