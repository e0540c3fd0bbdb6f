"""Issue 25, items 6-11: runs that stopped with a traceback or gave a wrong answer with exit 0 now answer
with a row or one line. Each test fails on the code before the fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.score.local import ScoreOptions, score
from learner.serve.predictor import Predictor
from tests.synthetic import make_sound
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
