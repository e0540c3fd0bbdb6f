"""learner/score runs: the Ray engine and names that are not UTF-8, flags out of range (issue 25, items 6
and 8-10), --threshold needs --windows (issue 12, part C, item 15). Each test fails on the code before the
fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.score.local import ScoreOptions, score
from learner.serve.predictor import Predictor
from tests.conftest import save_untrained

SR = 16000


ODD = (b"good.wav", b"bad_\xff.wav", b"two\nlines.wav")


@pytest.fixture(scope="module")
def ab_model(tmp_path_factory) -> Path:
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


# --- issue 25, item 6: the Ray engine and names that are not UTF-8 ------------------------------------------


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
def test_ray_engine_gives_a_row_for_an_undecodable_name(ab_model, odd_names, tmp_path):
    ray = pytest.importorskip("ray")
    from learner.score.ray_engine import RayOptions, score_ray
    from learner.score.store import read_results

    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    opts = dict(workers=1, progress=False, top_k=2)
    score([odd_names], Predictor.from_dir(ab_model), ScoreOptions(str(local), **opts))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        s = score_ray([odd_names], str(ab_model), ScoreOptions(str(remote), **opts), RayOptions(actors=1))
    finally:
        if started:
            ray.shutdown()
    assert (s.scored, s.failed) == (len(ODD), 0)
    a, b = (read_results(o).sort_by("path") for o in (local, remote))
    assert a["path"].to_pylist() == b["path"].to_pylist() and b["path_hex"].null_count == len(ODD) - 1
    assert a["label"].to_pylist() == b["label"].to_pylist()


# --- issue 25, items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--windows", "1e9,1e-9"], "window must be from 0 to 600 s"),
        (["--windows", "1,1e-9"], "hop at least 0.001 s"),
        (["--windows", "nan,1"], "window must be from"),
        (["--batch-size", "0"], "--batch-size: must be a whole number from 1 up"),
    ],
)
def test_score_flags_out_of_range_are_one_line(ab_model, odd_names, tmp_path, capsys, flags, says):
    from jobs.score import main

    with pytest.raises(SystemExit) as e:
        main([str(odd_names), "--model", str(ab_model), "--out", str(tmp_path / "s.parquet"), *flags])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "s.parquet").exists()


# --- issue 12 part C, item 15: --resume refuses another backend or model; rows say how they were made;
# --threshold needs --windows


def test_threshold_without_windows_is_an_error(trained_model, clip_dir, tmp_path):
    from jobs.score import main

    with pytest.raises(ValueError, match="--threshold needs --windows"):
        main(
            [
                str(clip_dir),
                "--model",
                str(trained_model.model_dir),
                "--out",
                str(tmp_path / "o"),
                "--threshold",
                "0.7",
            ]
        )
    assert not (tmp_path / "o").exists()
