"""Issue 25, items 3, 4 and 11: a job writes only into a folder it can prove it wrote, and commits parts
while a long file streams. Each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.test_hostile import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", (0.1 * rng.standard_normal(2 * SR)).astype("float32"), SR)
    return d


def _user_parts(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    for name in ("part-00000.parquet", "part-00007.parquet"):
        pq.write_table(pa.table({"mine": [1, 2, 3]}), folder / name)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_never_touches_a_users_parts_in_the_windows_folder(model_dir, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    side = tmp_path / "sx.windows.parquet"
    before = _user_parts(side)
    args = [str(clips), "--model", str(model_dir), "--out", str(out), "--windows", "1,1", "--quiet"]
    with pytest.raises(FileExistsError, match="sx.windows.parquet: holds files") as e:
        main([*args, "--resume"])
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in side.iterdir()} == before and not out.exists()


def test_resume_refuses_a_part_its_metadata_does_not_list(model_dir, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    args = [str(clips), "--model", str(model_dir), "--out", str(out), "--windows", "1,1", "--quiet"]
    main(args)
    side = tmp_path / "sx.windows.parquet"
    pq.write_table(pa.table({"mine": [1]}), side / "part-00007.parquet")
    before = {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())}
    with pytest.raises(FileExistsError, match="part-00007.parquet: a part this scoring output did not write"):
        main([*args, "--resume"])
    assert {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())} == before
    (side / "part-00007.parquet").unlink()
    main([*args, "--resume"])  # its own output still resumes


# --- item 4: jobs.train --out writes only into a new folder or its own -------------------------------------


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


# --- item 11: parts are committed on time while a long file streams ------------------------------------


def test_parts_are_committed_while_a_long_file_streams_and_survive_a_kill(model_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from learner.score.store import read_results

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a1.wav", "a2.wav"):
        sf.write(src / name, (0.1 * rng.standard_normal(2 * SR)).astype("float32"), SR)
    sf.write(src / "z_long.wav", (0.1 * rng.standard_normal(480 * SR)).astype("float32"), SR, "PCM_16")
    out = tmp_path / "s.parquet"
    args = [str(src), "--model", str(model_dir), "--out", str(out), "--windows", "1,0.5", "--workers", "1"]
    args += ["--part-rows", "2", "--part-seconds", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.score", *args], env=env, cwd=Path(__file__).parents[1]
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "part-00000.parquet").exists() and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the long file was scored before any part was committed"
        assert (out / "part-00000.parquet").exists()
        proc.send_signal(signal.SIGKILL)  # mid-way through the long file
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = sorted(Path(p).name for p in read_results(out)["path"].to_pylist())
    assert committed == ["a1.wav", "a2.wav"]
    from jobs.score import main

    main([*args, "--resume"])
    assert sorted(Path(p).name for p in read_results(out)["path"].to_pylist()) == [
        "a1.wav",
        "a2.wav",
        "z_long.wav",
    ]


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
