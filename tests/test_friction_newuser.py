"""Issue 25, items 12-17: wrong answers with exit 0 (too-short fragments, class names, one label per file,
absurd configs, a group regex mangled as a path, classes left out of validation). Each test fails on the code
before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.manifest import ManifestError, add_groups, load_manifest, split_indices
from learner.data.sounds import make_sound
from learner.folder import ModelDirError, strip_local_paths
from learner.serve.predictor import Predictor
from tests.test_hostile import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


@pytest.fixture(scope="module")
def fragment(tmp_path_factory) -> Path:
    """A 0.03 s WAV: what a truncated download leaves (jobs.score refuses it as too short)."""
    path = tmp_path_factory.mktemp("fragment") / "cut.wav"
    sf.write(path, make_sound("tone", SR, 0.03, np.random.default_rng(1)), SR)
    return path


# --- item 12: one too-short rule for score, predict and the demo ------------------------------------------
def test_predictor_refuses_what_score_refuses(model_dir, fragment):
    from learner.audio import TooShortError
    from learner.score.rows import load_item

    p = Predictor.from_dir(model_dir)
    with pytest.raises(TooShortError, match="too short to classify: 0.03 s of audio, the minimum is 0.05 s"):
        p.predict(fragment)
    with pytest.raises(TooShortError):
        p.predict(fragment, window=None)
    (err,) = p.predict_many([fragment])
    assert isinstance(err, TooShortError) and str(fragment) in str(err)
    from learner.score.discover import FileRef

    item = load_item(FileRef(str(fragment), 0, 0), p.pipeline, None)
    assert item.error == err.reason  # the same words, from the same rule


def test_predict_job_refuses_fragments_and_json_has_the_warning_key(model_dir, fragment, tmp_path, capsys):
    from jobs.predict import main

    good = tmp_path / "good.wav"
    sf.write(good, make_sound("tone", SR, 1.0, np.random.default_rng(2)), SR)
    assert main([str(fragment), str(good), "--model", str(model_dir), "--json"]) == 1
    out, err = capsys.readouterr()
    bad, fine = (json.loads(line) for line in out.splitlines())
    assert bad["label"] is None and bad["error"].startswith("too short to classify")
    assert "warning" in bad and fine["warning"] is None and fine["label"] in ("high", "low")
    assert "too short to classify" in err


# --- item 13: class names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, problem", [("   ", "is blank"), ("a\nb", "control"), ("a\tb", "control")])
def test_unprintable_class_names_are_refused_at_training_naming_the_row(tmp_path, name, problem):
    csv = tmp_path / "m.csv"
    sf.write(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "b.wav", np.zeros(SR, np.float32), SR)
    import pandas as pd

    pd.DataFrame({"path": ["a.wav", "b.wav"], "label": ["ok", name]}).to_csv(csv, index=False)
    with pytest.raises(ManifestError) as e:
        load_manifest(csv)
    msg = str(e.value)
    assert msg.startswith(f"{csv}: row 3 (") and problem in msg and "\n" not in msg


def test_a_class_folder_with_a_tab_is_refused_by_its_file(tmp_path):
    for label in ("fine", "tab\there"):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / "x.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(ManifestError, match="control character"):
        load_manifest(tmp_path)


def test_a_model_whose_classes_forge_lines_does_not_load(model_dir, tmp_path):
    import shutil

    folder = tmp_path / "forged"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["classes"] = ["high\nfake.wav\tlow 1.000", "low"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="control character"):
        Predictor.from_dir(folder)


# --- item 14: one label per file; absurd configs ----------------------------------------------------------
def test_the_same_file_under_two_labels_is_refused(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "b.wav", np.zeros(SR, np.float32), SR)
    csv = tmp_path / "m.csv"
    csv.write_text(f"path,label\na.wav,dog\nb.wav,cat\n{tmp_path}/a.wav,cat\n")
    with pytest.raises(ManifestError) as e:
        load_manifest(csv)
    assert "rows 2 and 4" in str(e.value) and "'dog' and 'cat'" in str(e.value)
    csv.write_text("path,label\na.wav,dog\nb.wav,cat\n")  # once each: fine
    assert len(load_manifest(csv)) == 2


def test_a_config_that_would_allocate_terabytes_is_refused(model_dir, tmp_path):
    import shutil

    folder = tmp_path / "huge"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["audio"].update(sample_rate=48000, duration=600, hop_length=1, n_fft=65536)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=r"config.json: 'audio': .* M limit"):
        Predictor.from_dir(folder)
    from learner.config import AudioConfig

    with pytest.raises(ValueError, match="raise the hop"):
        AudioConfig(sample_rate=48000, duration=600, hop_length=1, n_fft=65536)
    AudioConfig(sample_rate=48000, duration=600, hop_length=512, n_fft=2048)  # long but sane


# --- item 15: a group regex is a pattern, not a path -------------------------------------------------------
def test_strip_local_paths_keeps_regexes_and_still_strips_paths():
    rx = r"^(\w+)-\d+\.wav$"
    assert strip_local_paths(rx) == rx
    assert strip_local_paths({"group_regex": "/srv/x/(\\w+)", "data": "/home/me/data/dogs"}) == {
        "group_regex": "/srv/x/(\\w+)",
        "data": "dogs",
    }
    assert strip_local_paths(r"C:\Users\me\dogs") == "dogs" and strip_local_paths("~/a/b") == "b"
    assert strip_local_paths(r"\\srv\share\dogs") == "dogs"


# --- item 17: every class with 2 groups or more is in validation -------------------------------------------
def test_group_split_covers_every_class_that_can_be_covered():
    import pandas as pd

    rows = []
    for spk in range(6):  # knock and whistle by two speakers each, the others by all six
        for label in ("yes", "no") + (("knock", "whistle") if spk < 2 else ()):
            rows.append({"path": f"/d/s{spk}_{label}.wav", "label": label, "speaker": f"s{spk}"})
    rows.append({"path": "/d/s9_hum.wav", "label": "hum", "speaker": "s9"})  # one group: cannot be covered
    df = add_groups(pd.DataFrame(rows), group_col="speaker")
    for seed in range(20):
        train, valid = split_indices(df, valid_pct=0.2, seed=seed)
        in_valid, in_train = set(df["label"].iloc[valid]), set(df["label"].iloc[train])
        assert {"yes", "no", "knock", "whistle"} <= in_valid, seed
        assert {"yes", "no", "knock", "whistle"} <= in_train, seed
        assert not set(df["group"].iloc[train]) & set(df["group"].iloc[valid])


def test_metrics_name_the_classes_not_evaluated():
    from learner.report.metrics import classification_report

    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    m = classification_report(probs, np.array([0, 1]), ["a", "b", "c"])
    assert m["not_evaluated"] == ["c"]


# --- item 21: a scores table that is easy to analyse --------------------------------------------------------
def test_scores_have_per_class_columns_detected_and_integer_columns(model_dir, fragment, tmp_path):
    import pandas as pd

    from learner.score.local import ScoreOptions, score

    d = tmp_path / "in"
    d.mkdir()
    for i in range(2):
        sf.write(d / f"{i}.wav", make_sound("tone", SR, 1.0, np.random.default_rng(i)), SR)
    (d / "notes.wav").write_text("not audio")  # an error row: nulls in the integer columns
    p = Predictor.from_dir(model_dir)
    out = tmp_path / "s.parquet"
    score([d], p, ScoreOptions(str(out), workers=1, progress=False, wide=True))
    df = pd.read_parquet(out).sort_values("path").reset_index(drop=True)
    assert str(df["sample_rate"].dtype) == "Int32" and str(df["file_size"].dtype) == "Int64"
    ok = df[df["error"].isna()]
    assert len(ok) == 2 and np.allclose(ok["score_high"] + ok["score_low"], 1.0, atol=1e-5)
    assert all(list(v) == [lab] for v, lab in zip(ok["detected"], ok["label"]))  # no thresholds: the top
    assert df.loc[df["error"].notna(), "detected"].isna().all()
    narrow = tmp_path / "n.csv"
    score([d], p, ScoreOptions(str(narrow), fmt="csv", workers=1, progress=False))
    csv = pd.read_csv(next(narrow.glob("part-*.csv")))
    assert "score_high" not in csv and json.loads(csv["detected"].dropna().iloc[0]) in (["high"], ["low"])
    with pytest.raises(ValueError, match="wide=False, this run has wide=True"):
        score([d], p, ScoreOptions(str(narrow), fmt="csv", workers=1, progress=False, resume=True, wide=True))
