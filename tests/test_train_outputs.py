"""Issue 25, item 4: jobs.train --out writes only into a new folder or one it can prove it wrote, never
through links, and a failed run leaves no partial model folder. Each test fails on the code before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SR = 16000


# --- issue 25, item 4: jobs.train --out writes only into a new folder or its own ----------------------------


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    from learner.data.sounds import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny"), n_per_class=5, sr=SR, duration=0.5)


def _train(data: Path, out: Path, *extra: str) -> None:
    from jobs.train import main

    main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--bs", "8", "--pretrained", "none"]
        + ["--no-pickle", "--sample-rate", str(SR), "--duration", "0.5", "--hop", "256", "--n-mels", "32"]
        + ["--quiet", *extra]
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_train_refuses_a_folder_it_did_not_write(tiny_set, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in (("config.json", '{"my": "settings"}'), ("metrics.json", "{}"), ("curves.png", "x")):
        (out / name).write_text(text)
    before = _snapshot(out)
    for extra in ((), ("--overwrite",)):
        with pytest.raises(FileExistsError, match="not a model folder earshot trained") as e:
            _train(tiny_set, out, *extra)
        assert "\n" not in str(e.value) and _snapshot(out) == before
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(FileExistsError, match="is a file"):
        _train(tiny_set, tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "keep"


def test_train_overwrites_only_its_own_model_and_leaves_no_stale_export(tiny_set, tmp_path):
    from learner.serve.predictor import Predictor

    out = tmp_path / "model"
    _train(tiny_set, out)
    first = (out / "config.json").read_text()
    with pytest.raises(FileExistsError, match="already holds a trained model; pass overwrite=True"):
        _train(tiny_set, out)
    assert (out / "config.json").read_text() == first
    (out / "model.onnx").write_bytes(b"an export of the first model")
    (out / "model.int8.onnx").write_bytes(b"an export of the first model")
    _train(tiny_set, out, "--overwrite", "--seed", "7")
    assert not (out / "model.onnx").exists() and not (out / "model.int8.onnx").exists()
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 7
    assert Predictor.from_dir(out).classes  # the replaced model loads
    (out / "notes.txt").write_text("my notes")  # something the user added: --overwrite refuses
    with pytest.raises(FileExistsError, match="'notes.txt', which training did not write"):
        _train(tiny_set, out, "--overwrite")
    assert (out / "notes.txt").read_text() == "my notes" and (out / "model.safetensors").is_file()


def test_train_never_writes_through_links(tiny_set, tmp_path):
    out = tmp_path / "model"
    _train(tiny_set, out)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("curves.png", "history.csv"):
        (outside / name).write_text("the user's own file")
        (out / name).unlink()
        (out / name).symlink_to(outside / name)
    with pytest.raises(FileExistsError, match="which training did not write"):
        _train(tiny_set, out, "--overwrite")
    assert all((outside / n).read_text() == "the user's own file" for n in ("curves.png", "history.csv"))
    link = tmp_path / "link"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        _train(tiny_set, link)
    assert sorted(p.name for p in outside.iterdir()) == ["curves.png", "history.csv"]


def test_a_failed_run_leaves_no_partial_model_folder(tmp_path):
    from learner.data.sounds import make_dataset

    data = make_dataset(tmp_path / "one", n_per_class=4, sr=SR, duration=0.5)
    for extra in sorted(p for p in data.iterdir() if p.is_dir())[1:]:
        import shutil

        shutil.rmtree(extra)  # a single class: refused after the manifest is read
    out = tmp_path / "model"
    with pytest.raises(ValueError, match="at least 2 classes"):
        _train(data, out)
    assert not out.exists()


# --- issue 25, item 11: parts are committed on time while a long file streams -------------------------------


def test_a_run_that_hands_over_to_another_train_call_may_reuse_its_folder(tiny_set, tmp_path):
    """A backbone arch whose frozen head loses falls back to train() into the same folder
    (`learner.train.frozen.run`): the folder holds only the outer run's marker, which is not a model."""
    from learner.config import AudioConfig
    from learner.train.args import TrainArgs
    from learner.train.fit import train
    from learner.train.outdir import owned_output

    out = tmp_path / "model"
    args = TrainArgs(data=str(tiny_set), out=str(out), epochs=1, bs=8, pretrained="none", pickle=False)
    cfg = AudioConfig(sample_rate=SR, duration=0.5, n_mels=32, hop_length=256, n_fft=512)
    with owned_output(out, overwrite=False):
        result = train(args, cfg)
    assert (result.model_dir / "model.safetensors").is_file()
    with pytest.raises(FileExistsError, match="already holds a trained model"):
        train(args, cfg)  # now it holds a model: replacing it needs overwrite
