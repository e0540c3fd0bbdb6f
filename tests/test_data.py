import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.config import AudioConfig
from learner.data.manifest import ManifestError, add_groups, load_manifest, split_indices
from learner.data.signals import load_signals

CFG = AudioConfig(sample_rate=16000, duration=1.0)


def _wav(path, seconds=0.3, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    return path


def test_folder_manifest_labels_and_split_folders(tmp_path):
    for split in ("train", "valid"):
        for lab in ("a", "b"):
            _wav(tmp_path / split / lab / f"{lab}1.wav")
    df = load_manifest(tmp_path)
    assert sorted(df["label"].unique()) == ["a", "b"] and set(df["split"]) == {"train", "valid"}
    tr, va = split_indices(df)
    assert set(df.iloc[va]["split"]) == {"valid"} and len(tr) == 2


def test_folder_with_loose_files_is_a_clear_error(tmp_path):
    _wav(tmp_path / "loose.wav")
    with pytest.raises(ManifestError, match="own folder"):
        load_manifest(tmp_path)
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(ManifestError, match="no audio files"):
        load_manifest(tmp_path / "nothing_here")


def test_csv_manifest_resolves_relative_paths_and_checks_columns(tmp_path):
    _wav(tmp_path / "clips" / "x.wav")
    (tmp_path / "m.csv").write_text("path,label,fold\nclips/x.wav,dog,1\n")
    df = load_manifest(tmp_path / "m.csv")
    assert df["path"][0] == str(tmp_path / "clips" / "x.wav") and df["fold"][0] == 1
    (tmp_path / "bad.csv").write_text("file,label\nclips/x.wav,dog\n")
    with pytest.raises(ManifestError, match="missing column"):
        load_manifest(tmp_path / "bad.csv")
    (tmp_path / "gone.csv").write_text("path,label\nclips/missing.wav,dog\n")
    with pytest.raises(ManifestError, match="missing.wav"):
        load_manifest(tmp_path / "gone.csv")
    (tmp_path / "split.csv").write_text("path,label,split\nclips/x.wav,dog,training\n")
    with pytest.raises(ManifestError, match="train, valid or test"):
        load_manifest(tmp_path / "split.csv")


def _frame(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "path": [f"/d/{i}.wav" for i in range(n)],
            "label": rng.choice(["a", "b", "c"], n),
            "fold": np.arange(n) % 5 + 1,
            "speaker": [f"spk{i % 7}" for i in range(n)],
        }
    )


def test_random_split_is_stratified_and_seeded():
    df = _frame()
    tr, va = split_indices(df, valid_pct=0.2, seed=1)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == len(df)
    assert set(df.iloc[va]["label"]) == {"a", "b", "c"}
    assert np.array_equal(va, split_indices(df, valid_pct=0.2, seed=1)[1])
    assert not np.array_equal(va, split_indices(df, valid_pct=0.2, seed=2)[1])


def test_fold_split():
    df = _frame()
    tr, va = split_indices(df, valid_fold=3)
    assert set(df.iloc[va]["fold"]) == {3} and 3 not in set(df.iloc[tr]["fold"])
    with pytest.raises(ManifestError, match="folds present"):
        split_indices(df, valid_fold=9)


@pytest.mark.parametrize("how", ["col", "regex"])
def test_group_split_never_leaks_a_speaker(how):
    df = _frame()
    if how == "col":
        df = add_groups(df, group_col="speaker")
    else:
        df["path"] = [f"/d/{s}_{i}.wav" for i, s in enumerate(df["speaker"])]
        df = add_groups(df, group_regex=r"^(spk\d+)_")
    for seed in range(5):
        tr, va = split_indices(df, valid_pct=0.3, seed=seed)
        assert not set(df.iloc[tr]["group"]) & set(df.iloc[va]["group"])
        assert len(va) > 0 and len(tr) > 0


def test_group_regex_that_misses_a_file_names_it():
    df = _frame()
    with pytest.raises(ManifestError, match="0.wav"):
        add_groups(df, group_regex=r"^(spk\d+)_")


def test_test_rows_stay_out_of_training():
    df = _frame()
    df["split"] = ["test" if i < 10 else "train" for i in range(len(df))]
    tr, va = split_indices(df, valid_pct=0.2)
    assert not set(range(10)) & (set(tr) | set(va))


def test_signal_cache_decodes_once_and_reports_bad_files(tmp_path):
    good = [_wav(tmp_path / f"g{i}.wav", 0.5) for i in range(3)]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    paths = [str(p) for p in good] + [str(tmp_path / "empty.wav"), str(tmp_path / "text.wav")]
    cache = tmp_path / "cache"
    signals, failures = load_signals(paths, CFG, cache_dir=cache, workers=1, progress=False)
    assert set(signals) == {str(p) for p in good}
    assert set(failures) == {str(tmp_path / "empty.wav"), str(tmp_path / "text.wav")}
    assert len(list(cache.glob("*/*.npy"))) == 3  # <settings key>/<file key>.npy, the store's keys
    again, _ = load_signals(paths[:3], CFG, cache_dir=cache, workers=1, progress=False)
    for p in signals:
        assert np.array_equal(signals[p], again[p])


def test_fold_split_keeps_test_rows_out():
    df = _frame()
    df["split"] = ["test" if i % 10 == 0 else "train" for i in range(len(df))]
    tr, va = split_indices(df, valid_fold=2)
    assert not {i for i in range(0, len(df), 10)} & (set(tr) | set(va))
