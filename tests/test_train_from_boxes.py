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
from tests.conftest import SMALL_AUDIO, SMALL_FLAGS

ROOT = Path(__file__).resolve().parent.parent


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


def _untrained_model(folder: Path, recordings: list[Path]) -> Path:
    """A real model folder with random weights (mfcc_cnn1d), each class's threshold at its 70th percentile
    score over `recordings`: detections in seconds, no training."""
    from learner.folder import save_model_dir
    from learner.model import create_model, get_arch
    from learner.serve.predictor import Predictor

    torch.manual_seed(0)
    cfg, classes = AudioConfig(**SMALL_AUDIO), ["chirp", "clicks", "tone"]
    net = create_model("mfcc_cnn1d", len(classes), cfg).eval()
    config = {"arch": "mfcc_cnn1d", "input": get_arch("mfcc_cnn1d").input, "classes": classes}
    config["audio"] = cfg.to_dict()
    save_model_dir(folder, net.state_dict(), config)
    p = Predictor.from_dir(folder)
    scores = np.concatenate(
        [p.predict_windows(p.decode(r).samples, p.pipeline.window_plan(1.0, 0.5))[0] for r in recordings]
    )
    config["thresholds"] = {c: float(np.quantile(scores[:, k], 0.7)) for k, c in enumerate(classes)}
    return save_model_dir(folder, net.state_dict(), config)


def test_round_trip_jobs_score_exports_train_on_the_same_windows(tmp_path):
    """A model's detections, exported by `jobs.score --raven` beside the recordings, read back by
    `read_boxes` give the very labelled windows that the events table itself gives."""
    import pandas as pd

    from jobs.score import main
    from learner.data.annotations import read_boxes
    from learner.data.box_windows import WindowRule, labelled_windows
    from learner.score.store import read_results

    recs, bed = tmp_path / "recs", background(16000 * 4, np.random.default_rng(2))
    write_soundscapes(recs, generated_sounds(n_per_class=2), [bed], 2, 20, n_events=5)
    (recs / "boxes.csv").unlink()
    out, model = tmp_path / "scores.parquet", _untrained_model(tmp_path / "model", sorted(recs.glob("*.wav")))
    main([str(recs), "--model", str(model), "--out", str(out), "--windows", "1,0.5", "--workers", "1",
          "--quiet", "--raven", str(recs)])  # fmt: skip
    events = pd.DataFrame(read_results(out, events=True).to_pylist())
    assert len(events) >= 2
    sizes = {str(p): 20 * 16000 for p in sorted(recs.glob("*.wav"))}
    rule = WindowRule(clip_s=1.0, background_ratio=3, seed=4)
    want = labelled_windows(read_boxes(events[["path", "start_s", "end_s", "label"]]), sizes, 16000, rule)
    boxes = read_boxes(recs)
    assert len(boxes) == len(events) and boxes.attrs["recordings"] == sorted(sizes)
    got = labelled_windows(boxes, sizes, 16000, rule)
    cols = ["path", "offset", "labels", "kind"]
    assert got[cols].values.tolist() == want[cols].values.tolist() and (want["kind"] == "box").any()
