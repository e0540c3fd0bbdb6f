"""Multi-label clips and calibrated thresholds: manifests, splits, metrics, thresholds, training end to end,
the Predictor's sigmoid scores and detected labels, evaluation, and the multi-label dataset recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.data.labels import label_sets, multi_hot, resolve_task
from learner.data.manifest import ManifestError, load_manifest, split_indices
from learner.report.multilabel import auroc, average_precision, multilabel_report
from learner.report.thresholds import calibrate, calibrate_one, decision_scores, detected, threshold_vector
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)


def _wav(path: Path, seconds: float = 0.2, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * np.arange(int(sr * seconds)) / sr)).astype(np.float32), sr)


# --- manifests and splits ----------------------------------------------------------------------------------


def test_labels_column_and_class_columns_give_the_same_manifest(tmp_path):
    for i in range(4):
        _wav(tmp_path / f"{i}.wav")
    (tmp_path / "long.csv").write_text(
        "path,labels\n0.wav,rain; bird\n1.wav,\n2.wav,bird\n3.wav,bird;bird;car\n"
    )
    (tmp_path / "wide.csv").write_text(
        "path,bird,car,rain,note\n0.wav,1,0,1,x\n1.wav,0,0,0,y\n2.wav,1,0,0,z\n3.wav,1,1,0,w\n"
    )
    long, wide = load_manifest(tmp_path / "long.csv"), load_manifest(tmp_path / "wide.csv")
    assert list(long["labels"]) == [
        "bird;rain",
        "",
        "bird",
        "bird;car",
    ]  # sorted, duplicates gone, "" = background
    assert list(wide["labels"]) == list(long["labels"]) and list(long["label"]) == list(long["labels"])
    assert "note" in wide and "bird" not in wide  # class columns became `labels`; other columns stay
    assert label_sets(long) == [["bird", "rain"], [], ["bird"], ["bird", "car"]]
    assert resolve_task(long, "auto", "x") == "multi" and resolve_task(long, "multi", "x") == "multi"
    with pytest.raises(ManifestError, match=r"task=single, but .*0.wav has 2 labels"):
        resolve_task(long, "single", "x")
    (tmp_path / "none.csv").write_text("path,note\n0.wav,x\n")
    with pytest.raises(ManifestError, match="none.csv: no label column"):
        load_manifest(tmp_path / "none.csv")


def test_one_label_per_row_stays_single_label(tmp_path):
    for i in range(2):
        _wav(tmp_path / f"{i}.wav")
    (tmp_path / "m.csv").write_text("path,labels\n0.wav,a\n1.wav,b\n")
    df = load_manifest(tmp_path / "m.csv")
    assert resolve_task(df, "auto", "m") == "single" and list(df["label"]) == ["a", "b"]


def test_multilabel_split_keeps_groups_whole_and_every_label_balanced():
    rng = np.random.default_rng(0)
    classes = list("abcdef")
    rows = []
    for i in range(600):
        k = int(rng.integers(0, 4))
        rows.append(
            {
                "path": f"{i}.wav",
                "labels": ";".join(sorted(rng.choice(classes, k, replace=False))),
                "group": f"g{i % 40}",
            }
        )
    rows[0]["labels"] = rows[1]["labels"] = "rare"  # two clips of a rare class, in different groups
    df = pd.DataFrame(rows)
    df["label"] = df["labels"]
    train, valid = split_indices(df, valid_pct=0.25, seed=1)
    assert len(train) + len(valid) == 600 and not set(train) & set(valid)
    assert not set(df["group"].iloc[train]) & set(df["group"].iloc[valid])  # whole groups on one side
    hot = multi_hot(label_sets(df), classes + ["rare"])
    share = hot[valid].sum(0) / hot.sum(0)
    assert np.all(np.abs(share[:-1] - 0.25) < 0.06), share  # group units of 15 clips: close to 25 % per label
    assert hot[valid, -1].sum() == 1 and hot[train, -1].sum() == 1  # the rare class lands on both sides
    again = split_indices(df, valid_pct=0.25, seed=1)
    assert np.array_equal(again[1], valid)  # deterministic (evaluate redoes it)


# --- metrics and thresholds --------------------------------------------------------------------------------


def test_average_precision_and_auroc_match_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    truth = rng.random(200) < 0.3
    scores = np.round(truth * 0.4 + rng.random(200), 2)  # ties on purpose
    assert average_precision(scores, truth) == pytest.approx(average_precision_score(truth, scores))
    assert auroc(scores, truth) == pytest.approx(roc_auc_score(truth, scores))
    assert np.isnan(average_precision(scores, np.zeros(200)))


def test_thresholds_maximise_f1_or_reach_the_target_precision():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2])
    truth = np.array([1, 1, 0, 1, 1, 0, 0, 0])
    t = calibrate_one(scores, truth)
    assert 0.4 < t <= 0.6  # all four positives, one false alarm: F1 0.89 is the maximum
    assert 0.8 < calibrate_one(scores, truth, target_precision=1.0) <= 0.9  # only the top two are certain
    assert calibrate_one(scores, np.zeros(8)) is None  # no example of the class: the task's default instead
    assert calibrate(scores[:, None], np.zeros((8, 1)), ["a"], "multi") == {"a": 0.5}
    assert calibrate(scores[:, None], np.zeros((8, 1)), ["a"], "single") == {"a": 0.0}
    with pytest.raises(ValueError, match="target_precision=1.5"):
        calibrate(scores[:, None], truth[:, None], ["a"], "multi", 1.5)


def test_single_label_thresholds_only_reject_top_predictions():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.6, 0.4]])
    targets = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    s = decision_scores(probs, "single")
    assert np.array_equal(s, [[0.9, 0], [0.55, 0], [0, 0.8], [0.6, 0]])
    thr = calibrate(probs, targets, ["a", "b"], "single")
    assert 0.55 < thr["a"] <= 0.6  # the wrong 0.55 top prediction is rejected, both right ones kept
    vec = np.array([thr["a"], thr["b"]])
    assert detected(probs[1], ["a", "b"], vec, "single") == []  # "none of the known classes"
    assert detected(probs[0], ["a", "b"], vec, "single") == ["a"]
    assert detected(np.array([0.7, 0.9, 0.1]), list("xyz"), np.full(3, 0.5), "multi") == ["y", "x"]
    assert list(threshold_vector({"classes": ["a"]}, ["a"])) == [
        0.0
    ]  # old single-label folders: always known
    assert list(threshold_vector({"task": "multi"}, ["a"])) == [0.5]


def test_multilabel_report_counts_at_the_thresholds():
    probs = np.array([[0.9, 0.8], [0.2, 0.7], [0.6, 0.1]])
    targets = np.array([[1, 1], [0, 1], [0, 0]])
    m = multilabel_report(probs, targets, ["a", "b"], {"a": 0.5, "b": 0.75})
    a, b = m["per_class"]
    assert (a["precision"], a["recall"]) == (0.5, 1.0) and (b["precision"], b["recall"]) == (1.0, 0.5)
    assert m["micro_precision"] == pytest.approx(2 / 3) and m["micro_recall"] == pytest.approx(2 / 3)
    assert m["macro_map"] == pytest.approx(1.0) and m["exact_match"] == pytest.approx(1 / 3)


def test_scores_from_logits_are_softmax_or_independent_sigmoids():
    from learner.serve.backends import scores_from_logits

    logits = np.array([[2.0, 1.0, -800.0], [0.0, 0.0, 800.0]], dtype=np.float32)
    single, multi = scores_from_logits(logits, "single"), scores_from_logits(logits, "multi")
    assert np.allclose(single.sum(1), 1)
    from scipy.special import expit

    assert np.allclose(multi, expit(logits.astype(np.float64))) and np.isfinite(multi).all()
    with pytest.raises(ValueError, match="'multi'"):
        scores_from_logits(logits, "multilabel")


# --- training, the Predictor and evaluation, end to end
# -------------------------------------------------------


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory) -> Path:
    from learner.data.mixtures import build_mixtures

    return build_mixtures(
        tmp_path_factory.mktemp("mixtures"), n_clips=48, n_sites=8, duration=1.0, source_s=(0.3, 0.8), seed=1
    )


@pytest.fixture(scope="module")
def multi_model(mixtures, tmp_path_factory):
    """Two epochs from scratch with mixup on (soft targets through BCE): a real run, not an accurate one."""
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    out = tmp_path_factory.mktemp("multi") / "model"
    args = TrainArgs(
        data=str(mixtures), out=str(out), epochs=2, pretrained="none", bs=16, progress=False, pickle=False
    )
    return train(args, AudioConfig(**{**SMALL, "mixup": 0.4}))


def test_multilabel_training_records_task_thresholds_and_metrics(multi_model):
    d = multi_model.model_dir
    cfg = json.loads((d / "config.json").read_text())
    classes = ["chirp", "clicks", "hiss", "knock", "siren", "tone"]
    assert cfg["task"] == "multi" and cfg["classes"] == classes and cfg["train"]["task"] == "auto"
    assert sorted(cfg["thresholds"]) == classes and all(0 <= t <= 1 for t in cfg["thresholds"].values())
    assert "maximum F1" in cfg["thresholds_rule"]
    m = json.loads((d / "metrics.json").read_text())
    assert m["task"] == "multi" and 0 <= m["macro_map"] <= 1 and 0 <= m["macro_auroc"] <= 1
    assert {r["label"] for r in m["per_class"]} == set(classes) and m["labels_per_clip"] > 1
    assert m["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in m["per_class"] if r["support"]]))
    for f in ("per_class.csv", "pr_curves.png", "curves.png", "model.safetensors"):
        assert (d / f).is_file(), f
    assert not (d / "confusion_matrix.png").exists()
    assert list(pd.read_csv(d / "per_class.csv")["label"]) == classes
    hist = pd.read_csv(d / "history.csv")
    assert {"average_precision_score", "accuracy_multi"} <= set(hist.columns) and len(hist) == 2
    from learner.card import model_card

    card = model_card(d)
    assert "## Thresholds" in card and "Macro mAP" in card and "with any of 6 classes (multi-label)" in card


def test_multilabel_batches_carry_float_multi_hot_targets(multi_model):
    learn = multi_model.learner
    _, y = learn.dls.valid.one_batch()
    assert y.dtype.is_floating_point and tuple(y.shape[1:]) == (6,)
    assert set(np.unique(y.cpu().numpy())) <= {0.0, 1.0} and (y.sum(1) != 1).any()
    assert type(learn.loss_func).__name__ == "BCEWithLogitsLossFlat"


def test_predictor_gives_sigmoid_scores_and_every_label_above_its_threshold(multi_model, mixtures):
    from scipy.special import expit

    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(multi_model.model_dir)
    assert p.task == "multi"
    paths = [str(mixtures.parent / r) for r in pd.read_csv(mixtures)["path"][:6]]
    waves = np.stack([p.prepare(p.decode(f).samples) for f in paths])
    probs = p.predict_waves(waves)
    assert np.allclose(probs, expit(p.backend(waves).astype(np.float64)), atol=1e-6)
    assert not np.allclose(probs.sum(1), 1, atol=1e-3)  # independent classes, not a softmax
    pred = p.predict(paths[0])
    want = [c for c, s, t in zip(p.classes, pred.probs, p.thresholds, strict=True) if s >= t]
    assert sorted(pred.detected) == sorted(want) and pred.known == bool(want)
    p.thresholds = np.full(len(p.classes), np.sort(pred.probs)[-3])  # three classes at or above
    three = p.predict(paths[0])
    assert len(three.detected) == 3 and three.detected == three.labels[:3]
    many = p.predict_many(paths, top_k=2)
    assert all(r.detected == p.detect(r.probs) for r in many) and all(len(r.labels) == 2 for r in many)


def test_evaluate_job_reproduces_the_multilabel_metrics(multi_model, mixtures, tmp_path):
    d = multi_model.model_dir
    r = run_job(
        "jobs.evaluate", "--model", str(d), "--data", str(mixtures), "--subset", "valid", "--out",
        str(tmp_path), "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert "macro mAP" in r.stdout
    saved, again = (
        json.loads((d / "metrics.json").read_text()),
        json.loads((tmp_path / "metrics.json").read_text()),
    )
    for k in ("macro_map", "macro_f1", "micro_f1", "n_samples"):
        assert again[k] == pytest.approx(saved[k], abs=1e-4), k
    assert (tmp_path / "pr_curves.png").is_file() and (tmp_path / "per_class.csv").is_file()


def test_train_job_refuses_single_label_training_of_multilabel_rows(mixtures, tmp_path):
    r = run_job(
        "jobs.train", "--data", str(mixtures), "--out", str(tmp_path / "m"), "--pretrained", "none", "--task",
        "single",
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("earshot: ") and "--task single, but" in r.stderr and "labels" in r.stderr


def test_single_label_models_get_thresholds_and_old_folders_behave_as_before(trained_model, tmp_path):
    import shutil

    from learner.serve.predictor import Predictor

    d = trained_model.model_dir
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["task"] == "single" and sorted(cfg["thresholds"]) == sorted(cfg["classes"])
    assert (
        "confusion" in trained_model.metrics and "macro_map" not in trained_model.metrics
    )  # report unchanged
    p = Predictor.from_dir(d)
    clip = np.random.default_rng(0).normal(0, 0.1, p.cfg.n_samples).astype(np.float32)
    pred = p.predict(clip, sample_rate=p.cfg.sample_rate)
    assert np.isclose(pred.probs.sum(), 1, atol=1e-5)
    assert (
        pred.detected == ([pred.label] if pred.score >= cfg["thresholds"][pred.label] else [])
        and len(pred.labels) == 4
    )
    old = tmp_path / "old"
    shutil.copytree(d, old, ignore=shutil.ignore_patterns("*.pkl", "*.onnx"))
    for k in ("task", "thresholds", "thresholds_rule"):
        cfg.pop(k)
    (old / "config.json").write_text(json.dumps(cfg))
    before = Predictor.from_dir(old).predict(clip, sample_rate=p.cfg.sample_rate)
    assert (
        np.allclose(before.probs, pred.probs)
        and before.labels == pred.labels
        and before.detected == [pred.label]
    )


# --- recipes
# ---------------------------------------------------------------------------------------------------


def test_mixtures_recipe_builds_known_labels_and_events(tmp_path):
    from learner.data import recipes

    manifest = recipes.fetch("mixtures-synth", tmp_path / "mix", small=True)
    df = load_manifest(manifest)
    events = pd.read_csv(manifest.parent / "events.csv")
    assert len(df) == 60 and df["group"].nunique() == 6 and resolve_task(df, "auto", "m") == "multi"
    counts = df["labels"].str.split(";").str.len()
    assert set(counts) == {1, 2, 3}
    by_file = events.groupby("path")["label"].apply(lambda s: ";".join(sorted(s)))
    rel = {
        Path(p).relative_to(manifest.parent).as_posix(): lab
        for p, lab in zip(df["path"], df["labels"], strict=True)
    }
    assert by_file.to_dict() == rel  # every source of a clip is listed, and only those
    assert ((events["end_s"] - events["start_s"]) > 0.29).all() and (events["end_s"] <= 1.0 + 1e-6).all()
    x, sr = sf.read(df["path"].iloc[0])
    assert sr == 16000 and len(x) == 16000


def test_fsdkaggle2019_manifest_is_multilabel_and_offline_fails_in_one_line(tmp_path, monkeypatch):
    from learner.data import recipes

    src = tmp_path / "dl"
    meta = src / "FSDKaggle2019.meta"
    meta.mkdir(parents=True)
    rows = {
        "train": [("a.wav", "Bark,Knock"), ("b.wav", "Bark"), ("c.wav", "Church_bell,Knock,Bark")],
        "test": [("d.wav", "Knock"), ("e.wav", "Church_bell")],
    }
    for split, name, folder in (
        ("train", "train_curated_post_competition.csv", "FSDKaggle2019.audio_train_curated"),
        ("test", "test_post_competition.csv", "FSDKaggle2019.audio_test"),
    ):
        pd.DataFrame(rows[split], columns=["fname", "labels"]).assign(license="CC0").to_csv(
            meta / name, index=False
        )
        for f, _ in rows[split]:
            _wav(src / folder / f)
    df = load_manifest(recipes.fetch("fsdkaggle2019", tmp_path / "out", source=src))
    assert list(df["labels"]) == ["Bark;Knock", "Bark", "Bark;Church_bell;Knock", "Knock", "Church_bell"]
    assert list(df["split"]) == ["train"] * 3 + ["test"] * 2 and resolve_task(df, "auto", "f") == "multi"
    sub = load_manifest(recipes.fetch("fsdkaggle2019", tmp_path / "sub", source=src, classes=["Knock"]))
    assert list(sub["labels"]) == [
        "Knock",
        "Knock",
        "Knock",
    ]  # clips without Knock left out, other labels dropped
    monkeypatch.setenv("EARSHOT_DATA", str(tmp_path / "empty"))
    with pytest.raises(
        recipes.DatasetNotFetchedError, match="FSDKaggle2019 is not downloaded: fetch fsdkaggle2019"
    ):
        recipes.resolve_data("fsdkaggle2019")
