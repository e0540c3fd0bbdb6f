"""Training from annotated long recordings (learner.train.boxes): the windows and batches equal those of the
same windows cut by hand, the split keeps recordings whole, and jobs.train takes a folder of recordings with
Raven tables (in memory and from the on-disk store)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.config import AudioConfig
from learner.data.box_windows import cut_clips
from learner.data.soundscape import background, generated_sounds, write_soundscapes
from learner.score.event_writers import EVENT_WRITERS, RAVEN_SUFFIX
from learner.train.args import TrainArgs

ROOT = Path(__file__).resolve().parent.parent
SMALL_AUDIO = dict(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)
SMALL_FLAGS = [
    "--sample-rate",
    "16000",
    "--duration",
    "1",
    "--n-mels",
    "64",
    "--hop",
    "256",
    "--n-fft",
    "512",
]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Five 30 s recordings, three classes, some overlaps, a Raven table (earshot's writer) beside each."""
    root = tmp_path_factory.mktemp("recordings")
    beds = [background(16000 * 6, np.random.default_rng(5))]
    write_soundscapes(
        root, generated_sounds(n_per_class=3), beds, n_recordings=5, duration_s=30, n_events=8,
        overlap_share=0.3, table=(RAVEN_SUFFIX, EVENT_WRITERS["raven"].render),
    )  # fmt: skip
    (root / "boxes.csv").unlink()  # the tables alone say what is where
    return root


def _prepared(data: Path, **kw):
    from learner.train.fit import prepare_data

    args = TrainArgs(data=str(data), out="unused", progress=False, workers=1, signals="memory", **kw)
    cfg = AudioConfig(**SMALL_AUDIO)
    return args, cfg, *prepare_data(args, cfg)


def _first_batches(args, cfg, used, signals, classes, n=2):
    from fastai.torch_core import set_seed

    from learner.model.frontend import FrontEnd
    from learner.train.fit import _dataloaders

    set_seed(args.seed, reproducible=True)
    dls, _, _ = _dataloaders(args, cfg, FrontEnd(cfg, "spectrogram"), used, signals, classes)
    it = iter(dls.train)
    return [next(it) for _ in range(n)], dls.valid.one_batch()


def test_boxes_and_the_same_windows_cut_by_hand_give_the_same_data_and_batches(recordings, tmp_path):
    args, cfg, used, signals, _, classes = _prepared(recordings)
    assert used.attrs["task"] == "multi" and (used["labels"].str.contains(";")).any()
    windows = used.sort_values(["path", "offset"]).drop(columns="is_valid")
    manifest = cut_clips(windows, tmp_path / "clips", cfg.duration)
    manifest.to_csv(tmp_path / "cut.csv", index=False)
    args2, cfg2, used2, signals2, _, classes2 = _prepared(tmp_path / "cut.csv", group_col="group")
    assert classes2 == classes and len(used2) == len(used)
    # the same windows on the same sides of the split, with the same labels
    key = {p: (w, o) for p, w, o in zip(manifest["path"], windows["path"], windows["offset"], strict=True)}
    assert [key[p] for p in used2["path"]] == list(zip(used["path"], used["offset"], strict=True))
    assert used2["labels"].tolist() == used["labels"].tolist()
    assert used2["is_valid"].tolist() == used["is_valid"].tolist()
    # and, with one seed, the very same training and validation batches
    (a, av), (b, bv) = (
        _first_batches(args, cfg, used, signals, classes),
        _first_batches(args2, cfg2, used2, signals2, classes2),
    )
    for (xa, ya), (xb, yb) in zip([*a, av], [*b, bv], strict=True):
        assert torch.equal(torch.as_tensor(ya), torch.as_tensor(yb))
        assert torch.allclose(torch.as_tensor(xa), torch.as_tensor(xb), atol=1e-5)


def test_the_split_keeps_each_recording_on_one_side(recordings):
    _, _, used, _, _, _ = _prepared(recordings)
    sides = used.groupby("path")["is_valid"].nunique()
    assert (sides == 1).all() and used["is_valid"].any() and (~used["is_valid"]).any()
    _, _, by_site, _, _, _ = _prepared(recordings, group_regex=r"rec_0([0-4])")
    assert by_site["group"].nunique() == 5


def test_single_label_boxes_get_a_background_class(tmp_path):
    beds = [background(16000 * 6, np.random.default_rng(5))]
    write_soundscapes(tmp_path, generated_sounds(n_per_class=2), beds, 3, 20, n_events=5, overlap_share=0.0)
    _, _, used, _, _, classes = _prepared(tmp_path / "boxes.csv")
    assert used.attrs["task"] == "single" and "background" in classes and "labels" not in used


def _train_job(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "jobs.train", "--data", str(data), "--out", str(out), "--epochs", "1"]
    cmd += ["--pretrained", "none", "--bs", "16", "--quiet", "--no-pickle", *SMALL_FLAGS, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_train_job_on_a_folder_of_recordings_with_raven_tables_from_the_store(recordings, tmp_path):
    r = _train_job(recordings, tmp_path / "m", "--signals", "disk", "--store", str(tmp_path / "store"))
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["classes"] == ["chirp", "clicks", "tone"] and config["task"] == "multi"
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_valid"] > 100  # windows, not the 5 recordings
    assert any((tmp_path / "store").rglob("*.f16"))  # the recordings were decoded into the store


def test_a_malformed_table_stops_the_job_with_one_line(recordings, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(recordings, data)
    table = data / ("rec_02.wav" + RAVEN_SUFFIX)
    lines = table.read_text().splitlines()
    cells = lines[3].split("\t")
    cells[3] = "soon"
    lines[3] = "\t".join(cells)
    table.write_text("\n".join(lines) + "\n")
    r = _train_job(data, tmp_path / "m")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"earshot: {table}: row 4: Begin Time (s) 'soon' is not a number"


def test_cross_validation_of_recordings_is_refused_in_one_line(recordings, tmp_path):
    from learner.data.labels import ManifestError
    from learner.train.crossval import cross_validate

    with pytest.raises(ManifestError, match="cross-validation of annotated long recordings is not supported"):
        cross_validate(TrainArgs(data=str(recordings), out=str(tmp_path / "cv"), progress=False))
