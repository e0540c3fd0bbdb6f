"""The generated decode corpus (every format, rate, channel count and hostile file) through the two
user-facing
paths: batch scoring gives one row per file with a label or the expected error, and the demo's classify step
names the file and the problem for every hostile one."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from learner.audio import AUDIO_EXTENSIONS, AudioDecodeError
from learner.demo.classify import classify
from learner.score.local import ScoreOptions, score
from learner.score.rows import MIN_DURATION_S
from learner.serve.predictor import Predictor
from tests import audio_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, audio_corpus.build(folder)


@pytest.fixture(scope="module")
def predictor(trained_model):
    return Predictor.from_dir(trained_model.model_dir, batch_size=16)


def test_scoring_the_corpus_gives_one_row_per_file(corpus, predictor, tmp_path):
    folder, clips = corpus
    out = tmp_path / "corpus.parquet"
    score([folder], predictor, ScoreOptions(str(out), workers=2, progress=False))
    rows = {Path(r["path"]).resolve(): r for r in pq.read_table(out).to_pylist()}
    expected = {c.path.resolve(): (kind, c) for kind, c in clips.items() if not c.path.name.startswith(".")}
    scored_here = {p: k for p, (k, _) in expected.items() if p.suffix.lower() in AUDIO_EXTENSIONS}
    on_disk = {
        p.resolve()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS
    }
    assert set(rows) == on_disk  # one row for every audio file, including the corpus's own source clips
    assert set(scored_here) <= set(rows)
    for path, kind in scored_here.items():
        r, clip = rows[path], expected[path][1]
        if clip.errors and not clip.partial:
            assert r["error"] and r["label"] is None, (kind, r)
        elif not clip.errors and clip.duration_s is not None and clip.duration_s < MIN_DURATION_S:
            assert r["error"].startswith("too short to classify") and r["label"] is None, (kind, r)
        elif not clip.errors:
            assert r["error"] is None and r["label"] in predictor.classes, (kind, r["error"])


def test_demo_names_the_file_and_the_problem_for_every_hostile_input(corpus, predictor):
    _, clips = corpus
    hostile = {k: c for k, c in clips.items() if c.errors and not c.partial}
    assert len(hostile) >= 8
    for kind, clip in hostile.items():
        with pytest.raises(AudioDecodeError) as e:
            classify(predictor, clip.path, saliency=False)
        assert clip.path.name in str(e.value) and e.value.reason, kind
        assert isinstance(e.value, clip.errors), (kind, type(e.value))
