"""Issue 25, items 6-11: runs that stopped with a traceback or gave a wrong answer with exit 0 now answer
with a row or one line. Each test fails on the code before the fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.score.local import ScoreOptions, score
from learner.serve.predictor import Predictor
from tests.test_hostile import save_untrained

SR = 16000
ODD = (b"good.wav", b"bad_\xff.wav", b"two\nlines.wav")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("odd")
    tone = d / "tone.wav"
    sf.write(tone, make_sound("tone", SR, 1.0, np.random.default_rng(3)), SR)
    data = tone.read_bytes()
    tone.unlink()
    for name in ODD:
        with open(os.fsencode(d) + b"/" + name, "wb") as f:
            f.write(data)
    return d


# --- item 6: the Ray engine and names that are not UTF-8 -------------------------------------------------


def test_ray_hand_off_carries_undecodable_names_exactly(odd_names):
    from learner.score.discover import discover
    from learner.score.items import error_item
    from learner.score.ray_engine import arrow_to_items, file_record, items_to_arrow

    refs = discover([odd_names]).files
    assert any(path_hex_of(r.path) for r in refs)  # the corpus really holds a name that is not UTF-8
    items = [error_item(r, f"{r.path}: broken") for r in refs]
    back = arrow_to_items(items_to_arrow(items))
    assert [it.ref.path for it in back] == [r.path for r in refs]  # the same files, byte for byte
    import pyarrow as pa

    pa.Table.from_pylist([file_record(r) for r in refs])  # what ray.data.from_items turns into Arrow


def path_hex_of(path: str) -> str | None:
    from learner.score.paths import path_hex

    return path_hex(path)


@pytest.mark.timeout(150)  # Ray start-up is slow on 2 loaded cores
def test_ray_engine_gives_a_row_for_an_undecodable_name(model_dir, odd_names, tmp_path):
    ray = pytest.importorskip("ray")
    from learner.score.ray_engine import RayOptions, score_ray
    from learner.score.store import read_results

    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    opts = dict(workers=1, progress=False, top_k=2)
    score([odd_names], Predictor.from_dir(model_dir), ScoreOptions(str(local), **opts))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        s = score_ray([odd_names], str(model_dir), ScoreOptions(str(remote), **opts), RayOptions(actors=1))
    finally:
        if started:
            ray.shutdown()
    assert (s.scored, s.failed) == (len(ODD), 0)
    a, b = (read_results(o).sort_by("path") for o in (local, remote))
    assert a["path"].to_pylist() == b["path"].to_pylist() and b["path_hex"].null_count == len(ODD) - 1
    assert a["label"].to_pylist() == b["label"].to_pylist()


# --- item 7: the ONNX graph's output width against config.json's classes ---------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    from learner.serve.export import export_model_dir

    d = save_untrained(tmp_path_factory.mktemp("onnx") / "m", ["a", "b"])
    export_model_dir(d, n_probe=4)
    return d


@pytest.mark.parametrize("classes", [["a", "b", "c"], ["a"]])
def test_onnx_output_width_must_match_the_classes(exported, tmp_path, classes):
    import json
    import shutil

    d = tmp_path / "m"
    shutil.copytree(exported, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["classes"] = classes
    (d / "config.json").write_text(json.dumps(cfg))
    from learner.folder import ModelDirError

    with pytest.raises(
        ModelDirError, match=f"gives 2 scores per clip, config.json lists {len(classes)}"
    ) as e:
        Predictor.from_dir(d, backend="onnx")
    assert "\n" not in str(e.value)
    assert Predictor.from_dir(exported, backend="onnx").classes == ["a", "b"]


# --- items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------------


def _train_main(argv: list[str]) -> None:
    from jobs.train import main

    main(argv + ["--epochs", "1", "--bs", "8", "--no-pickle", "--quiet", "--sample-rate", str(SR)])


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    from learner.data.sounds import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny"), n_per_class=4, sr=SR, duration=0.5)


def test_an_empty_group_cell_is_one_line_naming_the_file(tiny_set, tmp_path):
    import csv

    from learner.data.manifest import ManifestError

    files = sorted(tiny_set.rglob("*.wav"))
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker"])
        for i, p in enumerate(files):
            w.writerow([p, p.parent.name, "" if i == 3 else f"s{i % 3}"])
    out = tmp_path / "model"
    with pytest.raises(ManifestError, match=r"m.csv: the 'speaker' cell of .*\(row 4\) is empty") as e:
        _train_main(
            ["--data", str(manifest), "--out", str(out), "--pretrained", "none", "--group-col", "speaker"]
        )
    assert str(files[3]) in str(e.value) and "\n" not in str(e.value) and not out.exists()


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


@pytest.mark.parametrize("onnx", [{"files": ["model.onnx"]}, "model.onnx", {"source": [1]}])
def test_a_malformed_onnx_record_is_one_line(model_dir, tmp_path, onnx):
    import json
    import shutil

    from learner.folder import ModelDirError

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["onnx"] = onnx
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="config.json: 'onnx"):
        Predictor.from_dir(d)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--windows", "1e9,1e-9"], "window must be from 0 to 600 s"),
        (["--windows", "1,1e-9"], "hop at least 0.001 s"),
        (["--windows", "nan,1"], "window must be from"),
        (["--batch-size", "0"], "--batch-size: must be a whole number from 1 up"),
    ],
)
def test_score_flags_out_of_range_are_one_line(model_dir, odd_names, tmp_path, capsys, flags, says):
    from jobs.score import main

    with pytest.raises(SystemExit) as e:
        main([str(odd_names), "--model", str(model_dir), "--out", str(tmp_path / "s.parquet"), *flags])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "s.parquet").exists()


def test_library_windows_and_batch_size_are_checked(model_dir):
    p = Predictor.from_dir(model_dir)
    with pytest.raises(ValueError, match="at least one sample"):
        p.pipeline.window_plan(1.0, 1e-9)
    with pytest.raises(ValueError, match="at most 600 s"):
        p.pipeline.window_plan(1e9, 1.0)
    with pytest.raises(ValueError, match="batch_size must be a whole number from 1 up"):
        Predictor.from_dir(model_dir, batch_size=0)
