"""learner/folder.py: a model folder is validated on load (issue 13, items 6 and 7: bad configs, newer keys,
NaN weights, the umask) and refuses forged class names, absurd configs, unknown archs and malformed ONNX
records (issue 25, items 8-10, 13, 14, 15 and 22). Each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from learner.folder import ModelDirError, strip_local_paths
from learner.serve.predictor import Predictor
from tests.conftest import save_untrained


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(
        tmp_path_factory.mktemp("model") / "untrained", ["chirp", "clicks", "noise", "tone"]
    )


# --- issue 13, item 6: model folders are validated on load --------------------------------------------------


def _with_config(src: Path, dst: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if key.startswith("audio."):
            cfg["audio"][key[6:]] = value
        elif value is ...:
            cfg.pop(key)
        else:
            cfg[key] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


BAD_CONFIGS = {
    "classes-string": ({"classes": "wxyz"}, "'classes' must be a list of class names"),
    "classes-duplicate": ({"classes": ["a", "b", "a", "c"]}, "names 'a' twice"),
    "classes-empty-name": ({"classes": ["a", " ", "b", "c"]}, r"'classes'\[1\] must be a non-empty name"),
    "classes-million": ({"classes": [f"c{i}" for i in range(1_000_000)]}, "1 to 20000 names"),
    "classes-none": ({"classes": []}, "1 to 20000 names"),
    "sample-rate-text": ({"audio.sample_rate": "22050"}, "'audio.sample_rate' must be a whole number"),
    "sample-rate-huge": ({"audio.sample_rate": 10**9}, "'audio.sample_rate'"),
    "duration-1e7": ({"audio.duration": 1e7}, "'audio.duration' must be a number from 0.001 to 600"),
    "duration-nan": ({"audio.duration": float("nan")}, "'audio.duration'"),
    "n-mels-bool": ({"audio.n_mels": True}, "'audio.n_mels' must be a whole number"),
    "norm-unknown": ({"audio.norm": "loud"}, "norm must be"),
    "arch-missing": ({"arch": ...}, "missing 'arch'"),
    "task-unknown": ({"task": "both"}, "'task' must be one of single, multi"),
    "thresholds-range": (
        {"thresholds": {"tone": 1.5}},
        r"'thresholds'\['tone'\] must be a number from 0 to 1",
    ),
    "thresholds-unknown-class": ({"thresholds": {"cat": 0.5}}, "'cat', which is not one of 'classes'"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_model_config_is_one_clear_error(model_dir, tmp_path, case):
    from learner.folder import ModelDirError

    changes, message = BAD_CONFIGS[case]
    folder = _with_config(model_dir, tmp_path / case, **changes)
    with pytest.raises(ModelDirError, match=message) as e:
        Predictor.from_dir(folder)
    assert str(folder / "config.json") in str(e.value) and "\n" not in str(e.value)


def test_config_of_newer_versions_and_multi_label_keys_still_load(model_dir, tmp_path):
    folder = _with_config(
        model_dir,
        tmp_path / "newer",
        task="multi",
        thresholds={"tone": 0.3, "noise": 1},
        some_future_key={"x": 1},
    )
    assert Predictor.from_dir(folder).classes == ["chirp", "clicks", "noise", "tone"]


def test_nan_weights_are_refused(model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from learner.folder import ModelDirError

    folder = tmp_path / "nan"
    shutil.copytree(model_dir, folder)
    sd = load_file(str(folder / "model.safetensors"))
    key = next(k for k, t in sd.items() if t.is_floating_point() and t.numel() > 1)
    sd[key][0] = float("nan")
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelDirError, match=f"1 tensor\\(s\\) hold NaN or infinite values \\({key}\\)"):
        Predictor.from_dir(folder)


# --- issue 13, item 7: a saved model is readable like any file the user writes ------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_model_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        folder = save_untrained(tmp_path / "m", ["a", "b"])
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.fixture(scope="module")
def high_low_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


# --- issue 25, item 13: class names -------------------------------------------------------------------------


def test_a_model_whose_classes_forge_lines_does_not_load(high_low_model, tmp_path):
    import shutil

    folder = tmp_path / "forged"
    shutil.copytree(high_low_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["classes"] = ["high\nfake.wav\tlow 1.000", "low"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="control character"):
        Predictor.from_dir(folder)


# --- issue 25, item 14: one label per file; absurd configs --------------------------------------------------


def test_a_config_that_would_allocate_terabytes_is_refused(high_low_model, tmp_path):
    import shutil

    folder = tmp_path / "huge"
    shutil.copytree(high_low_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["audio"].update(sample_rate=48000, duration=600, hop_length=1, n_fft=65536)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=r"config.json: 'audio': .* M limit"):
        Predictor.from_dir(folder)
    from learner.config import AudioConfig

    with pytest.raises(ValueError, match="raise the hop"):
        AudioConfig(sample_rate=48000, duration=600, hop_length=1, n_fft=65536)
    AudioConfig(sample_rate=48000, duration=600, hop_length=512, n_fft=2048)  # long but sane


# --- issue 25, item 15: a group regex is a pattern, not a path ----------------------------------------------


def test_strip_local_paths_keeps_regexes_and_still_strips_paths():
    rx = r"^(\w+)-\d+\.wav$"
    assert strip_local_paths(rx) == rx
    assert strip_local_paths({"group_regex": "/srv/x/(\\w+)", "data": "/home/me/data/dogs"}) == {
        "group_regex": "/srv/x/(\\w+)",
        "data": "dogs",
    }
    assert strip_local_paths(r"C:\Users\me\dogs") == "dogs" and strip_local_paths("~/a/b") == "b"
    assert strip_local_paths(r"\\srv\share\dogs") == "dogs"


# --- issue 25, item 22 --------------------------------------------------------------------------------------


def test_an_unknown_arch_in_config_json_names_the_file(high_low_model, tmp_path):
    from learner.folder import ModelDirError
    from learner.serve.predictor import Predictor

    folder = tmp_path / "arch"
    shutil.copytree(high_low_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["arch"] = "resnet9000"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=rf"^{folder / 'config.json'}: 'arch': unknown arch 'resnet9000'"):
        Predictor.from_dir(folder, backend="torch")


@pytest.fixture(scope="module")
def ab_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


# --- issue 25, items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------


@pytest.mark.parametrize("onnx", [{"files": ["model.onnx"]}, "model.onnx", {"source": [1]}])
def test_a_malformed_onnx_record_is_one_line(ab_model, tmp_path, onnx):
    import json
    import shutil

    from learner.folder import ModelDirError

    d = tmp_path / "m"
    shutil.copytree(ab_model, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["onnx"] = onnx
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="config.json: 'onnx"):
        Predictor.from_dir(d)
