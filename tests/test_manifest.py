"""learner/data/manifest.py: class names, one label per file, group regexes and splits (issue 25, items 8-10,
13, 14 and 17). Each test fails on the code before the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.manifest import ManifestError, add_groups, load_manifest, split_indices

SR = 16000


# --- issue 25, item 13: class names -------------------------------------------------------------------------


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


# --- issue 25, item 14: one label per file; absurd configs --------------------------------------------------


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


# --- issue 25, item 17: every class with 2 groups or more is in validation ----------------------------------


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


# --- issue 25, items 8, 9, 10: one line instead of a traceback, before any decoding -------------------------


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
