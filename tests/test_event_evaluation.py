"""Event-level evaluation on annotated long recordings (issue 23 item 2): matching, per-class figures, the
curve over window scores, recommended thresholds (transfer to a held-out recording), thresholds written to
the model, and `jobs.evaluate --boxes` end to end on a generated recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learner.report.event_curve import recommend_thresholds
from learner.report.event_metrics import MatchRule, class_figures, count_matches
from learner.score.event_evaluation import RecordingScores, attach_boxes, evaluate_events, score_curve

CLASSES = ("tone", "chirp")


def test_onset_matching_is_one_to_one_within_the_tolerance():
    boxes = [(10.0, 12.0), (20.0, 21.0)]
    found = [(10.3, 11.0), (10.4, 12.5), (20.6, 21.0), (30.0, 31.0)]
    assert count_matches(found, boxes, MatchRule("onset", tolerance_s=0.5)) == 1  # 20.6 is 0.6 s late
    assert count_matches(found, boxes, MatchRule("onset", tolerance_s=0.7)) == 2  # one event per box


def test_overlap_matching_needs_the_share_of_the_box():
    boxes = [(10.0, 12.0)]
    assert count_matches([(11.2, 14.0)], boxes, MatchRule("overlap", min_overlap=0.5)) == 0  # 40 %
    assert count_matches([(10.9, 14.0)], boxes, MatchRule("overlap", min_overlap=0.5)) == 1  # 55 %
    with pytest.raises(ValueError, match="match by"):
        MatchRule("middle")


def test_class_figures_count_false_alarms_per_hour_and_misses():
    f = class_figures(tp=8, fp=2, fn=4, hours=0.5)
    assert (f["precision"], f["recall"], f["false_per_hour"], f["misses"]) == (0.8, 0.6667, 4.0, 4)
    assert f["f1"] == pytest.approx(2 * 8 / (16 + 6), abs=1e-4)
    assert class_figures(0, 0, 3, 1.0)["precision"] is None  # nothing found: precision is undefined


def _synthetic(seed: int, minutes: float = 60.0, hop: float = 0.25):
    """Window scores of a recording with known boxes, without a model: a true event of class c gives its
    windows a level drawn from U(0.3, 1) for c; a distractor (the model firing on nothing annotated) a
    level from U(0, 0.75) — so precision rises smoothly with the threshold, the same way on every seed."""
    rng = np.random.default_rng(seed)
    duration = minutes * 60
    starts = np.arange(0, duration - 1.0 + 1e-9, hop)
    scores = rng.uniform(0, 0.05, (starts.size, len(CLASSES)))
    boxes, t = [], 2.0
    while t < duration - 10:
        c = int(rng.integers(len(CLASSES)))
        length = float(rng.uniform(1.5, 3.0))
        centres = starts + 0.5
        inside = (centres >= t) & (centres <= t + length)
        if rng.random() < 0.6:
            scores[inside, c] = rng.uniform(0.3, 1.0)
            boxes.append((t, t + length, CLASSES[c]))
        else:  # a distractor: the model fires on nothing annotated
            scores[inside, c] = rng.uniform(0.0, 0.75)
        t += length + float(rng.uniform(3, 8))
    path = f"rec{seed}.wav"
    table = pd.DataFrame(boxes, columns=["start_s", "end_s", "label"]).assign(path=path)
    return RecordingScores(path, starts, scores, 1.0, duration), table


def _curve(rec, table, **kw):
    by_rec = attach_boxes(table, [rec.path])
    return score_curve([rec], by_rec, CLASSES, CLASSES, match=MatchRule("overlap"), **kw), by_rec


def test_the_curve_counts_events_over_window_scores():
    rec, table = _synthetic(0, minutes=20)
    curve, _ = _curve(rec, table, thresholds=(0.2, 0.6, 0.99))
    tone = curve[curve["label"] == "tone"].set_index("threshold")
    n_true = int((table["label"] == "tone").sum())
    assert (tone["true_events"] == n_true).all()
    assert tone.loc[0.2, "recall"] == 1.0  # every true level is ≥ 0.3
    assert tone.loc[0.2, "precision"] < tone.loc[0.6, "precision"]  # distractors drop out as t rises
    assert tone.loc[0.99, "found"] < tone.loc[0.6, "found"] < tone.loc[0.2, "found"]
    assert tone.loc[0.2, "false_per_hour"] == pytest.approx(tone.loc[0.2, "false_alarms"] * 3, rel=1e-3)


def test_recommended_threshold_holds_its_precision_on_a_held_out_recording():
    """The acceptance on generated scores: chosen on seed 0, within ±5 points of the target on seed 1."""
    grid = tuple(round(t, 2) for t in np.arange(0.02, 1.0, 0.02))
    rec, table = _synthetic(0, minutes=120)
    curve, _ = _curve(rec, table, thresholds=grid)
    rec_out = recommend_thresholds(curve, target_precision=0.8)
    chosen = {c: v["threshold"] for c, v in rec_out["classes"].items()}
    assert all(0.2 < t < 0.95 for t in chosen.values()), chosen
    held, held_table = _synthetic(1, minutes=120)
    held_curve, _ = _curve(held, held_table, thresholds=grid)
    for label, t in chosen.items():
        row = held_curve[(held_curve["label"] == label) & (held_curve["threshold"] == t)].iloc[0]
        assert abs(row["precision"] - 0.8) <= 0.05, (label, t, row["precision"])
        assert row["recall"] > 0.3  # not a threshold so high that it finds next to nothing


def test_recommendation_for_false_alarms_per_hour_and_the_unreachable_target():
    rec, table = _synthetic(2, minutes=30)
    curve, _ = _curve(rec, table, thresholds=tuple(np.round(np.arange(0.05, 1.0, 0.05), 2)))
    out = recommend_thresholds(curve, max_false_per_hour=10)
    for label, v in out["classes"].items():
        rows = curve[curve["label"] == label].sort_values("threshold").reset_index(drop=True)
        i = int(np.flatnonzero(rows["threshold"] == v["threshold"])[0])
        assert rows["false_per_hour"].iloc[max(0, i - 1) : i + 2].mean() <= 10 + 1e-3  # smoothed, it holds
        assert v["smoothed_false_per_hour"] <= 10
        rate = rows["false_per_hour"].rolling(3, center=True, min_periods=1).mean()
        more = rows[(rows["recall"] > v["recall"]) & (rows["found"] > 0)]
        assert (rate[more.index] > 10).all()  # whatever finds more gives more false alarms
    impossible = curve.assign(matched=curve["found"] // 2)
    assert recommend_thresholds(impossible, target_precision=0.9)["classes"]["tone"]["threshold"] is None
    with pytest.raises(ValueError, match="one target"):
        recommend_thresholds(curve)


def test_a_few_events_at_a_high_threshold_do_not_veto_the_recommendation():
    """Raw, the 3 events at 0.9 (one false: precision 0.67) would look like precision falling off; smoothed
    with their neighbours they weigh 3 events against the 40 next to them."""
    t = [0.5, 0.6, 0.7, 0.8, 0.9]
    found = [200, 150, 100, 40, 3]
    precision = [0.80, 0.88, 0.93, 0.95, 0.67]
    curve = pd.DataFrame(
        {
            "gap_s": 0.0,
            "min_length_s": 0.0,
            "threshold": t,
            "label": "tone",
            "found": found,
            "precision": precision,
            "recall": [0.9, 0.8, 0.7, 0.4, 0.02],
        }
    )
    curve["matched"] = (curve["precision"] * curve["found"]).round().astype(int)
    for col in ("true_events", "false_alarms", "misses", "f1", "false_per_hour"):
        curve[col] = 0
    assert recommend_thresholds(curve, target_precision=0.9)["classes"]["tone"]["threshold"] == 0.7
    raw = recommend_thresholds(curve.iloc[4:], target_precision=0.9)  # 3 events alone: 0.67
    assert raw["classes"]["tone"]["threshold"] is None


def test_a_class_no_threshold_can_bring_to_the_target_says_what_it_reaches():
    """One class above the target at every threshold (it gets the lowest, with a note), one below it at
    every threshold (no threshold, and the best precision it reached)."""
    t = [0.1, 0.3, 0.5, 0.7]
    curve = pd.concat(
        [
            pd.DataFrame({"label": "frog", "threshold": t, "precision": [0.95, 0.96, 0.97, 0.98]}),
            pd.DataFrame({"label": "dog", "threshold": t, "precision": [0.2, 0.3, 0.4, 0.6]}),
        ]
    ).assign(gap_s=0.0, min_length_s=0.0, found=100, recall=[0.9, 0.8, 0.6, 0.4] * 2)
    curve["matched"] = (curve["precision"] * curve["found"]).round().astype(int)
    for col in ("true_events", "false_alarms", "misses", "f1", "false_per_hour"):
        curve[col] = 0
    out = recommend_thresholds(curve, target_precision=0.8)["classes"]
    assert out["frog"]["threshold"] == 0.1
    assert "precision 0.95 already at the lowest threshold tried (0.1)" in out["frog"]["note"]
    assert out["dog"]["threshold"] is None
    assert out["dog"]["reason"].endswith("precision at most 0.50 (threshold 0.7, 100 events found)")
    close = recommend_thresholds(curve, target_precision=0.93)["classes"]["frog"]
    assert close["threshold"] == 0.1 and "note" not in close  # within 5 points of its target: no note


def test_a_box_of_no_evaluated_recording_is_one_clear_error():
    table = pd.DataFrame({"path": ["elsewhere.wav"], "start_s": [1.0], "end_s": [2.0], "label": ["tone"]})
    table["source"], table["row"] = "boxes.csv", 2
    with pytest.raises(ValueError, match=r"boxes.csv row 2: box of 'elsewhere.wav'"):
        attach_boxes(table, ["rec0.wav"])


def test_evaluate_events_pools_recordings_and_matches_by_file_name():
    boxes = pd.DataFrame(
        {
            "path": ["/data/a.wav", "/data/b.wav"],
            "start_s": [1.0, 5.0],
            "end_s": [2.0, 6.0],
            "label": ["tone", "tone"],
        }
    )
    by_rec = attach_boxes(boxes, ["a.wav", "b.wav"])
    events = pd.DataFrame(
        {
            "path": ["a.wav", "b.wav", "b.wav"],
            "label": ["tone", "tone", "chirp"],
            "start_s": [1.1, 9.0, 5.0],
            "end_s": [2.0, 9.5, 6.0],
        }
    )
    m = evaluate_events(events, by_rec, {"a.wav": 1800.0, "b.wav": 1800.0}, ["tone", "chirp"])
    assert m["per_class"]["tone"]["matched"] == 1 and m["per_class"]["tone"]["false_alarms"] == 1
    assert m["per_class"]["chirp"]["false_per_hour"] == 1.0 and m["overall"]["misses"] == 1


# --- thresholds written to the model -----------------------------------------------------------------------


def _model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"arch": "mfcc_cnn1d", "classes": ["tone", "chirp"], "audio": {}, "thresholds": {"tone": 0.3}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_write_thresholds_keeps_the_ones_it_replaces(tmp_path):
    from learner.folder import write_thresholds
    from learner.serve.events import class_thresholds

    folder = _model_folder(tmp_path)
    after = write_thresholds(folder, {"chirp": 0.65}, source="event evaluation (precision 0.9)")
    assert after == {"tone": 0.3, "chirp": 0.65}
    config = json.loads((folder / "config.json").read_text())
    assert config["thresholds_rule"] == "event evaluation (precision 0.9)"
    assert config["thresholds_history"][-1]["thresholds"] == {"tone": 0.3}
    assert class_thresholds(config["classes"], config).tolist() == [0.3, 0.65]
    with pytest.raises(ValueError, match="no class 'dog'"):
        write_thresholds(folder, {"dog": 0.5}, source="x")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        write_thresholds(folder, {"tone": 1.5}, source="x")
    assert json.loads((folder / "config.json").read_text()) == config  # refused: nothing written


# --- end to end: a model trained here, a generated recording with its boxes ---------------------------------


@pytest.fixture(scope="module")
def event_model(tmp_path_factory) -> Path:
    from learner.config import AudioConfig
    from learner.data.soundscape import make_event_dataset
    from learner.train.fit import TrainArgs, train

    root = tmp_path_factory.mktemp("event_model")
    data = make_event_dataset(root / "clips", n_per_class=20, seed=0)
    audio = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)
    args = TrainArgs(
        data=str(data),
        out=str(root / "model"),
        epochs=6,
        pretrained="none",
        bs=16,
        arch="mfcc_cnn1d",
        progress=False,
        pickle=False,
    )
    return Path(train(args, audio).model_dir)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> tuple[Path, Path]:
    """A 60 s recording with 6 known events and their box CSV."""
    from learner.data.soundscape import write_soundscape

    root = tmp_path_factory.mktemp("annotated")
    truth = write_soundscape(root / "night.wav", duration_s=60.0, n_events=6, overlaps=1, seed=3)
    boxes = pd.DataFrame(
        [{"path": e.path, "start_s": e.start_s, "end_s": e.end_s, "label": e.label} for e in truth]
    )
    boxes.to_csv(root / "boxes.csv", index=False)
    return root / "night.wav", root / "boxes.csv"


def test_each_recording_is_scored_once_whatever_the_thresholds_tried(event_model, annotated):
    from learner.score.event_report import evaluate_on_boxes, load_boxes
    from learner.serve.predictor import Predictor

    predictor = Predictor.from_dir(event_model)
    seen = []
    forward = predictor.predict_waves
    predictor.predict_waves = lambda waves: (seen.append(len(waves)), forward(waves))[1]
    boxes = load_boxes(annotated[1])
    plain = evaluate_on_boxes(boxes, predictor=predictor, window=(1.0, 0.25))
    once = sum(seen)
    seen.clear()
    swept = evaluate_on_boxes(boxes, predictor=predictor, window=(1.0, 0.25), target_precision=0.8)
    assert once == sum(seen) == plain.windows == 237  # 1 s windows every 0.25 s over 60 s
    assert swept.curve[["gap_s", "min_length_s"]].drop_duplicates().shape[0] == 16
    assert plain.metrics["overall"]["true_events"] == 6


def test_jobs_evaluate_boxes_recommends_and_writes_thresholds(event_model, annotated, tmp_path, capsys):
    import shutil

    from jobs.evaluate import main

    model = shutil.copytree(event_model, tmp_path / "model")
    out = tmp_path / "eval"
    argv = [
        "--model",
        str(model),
        "--boxes",
        str(annotated[1]),
        "--windows",
        "1,0.25",
        "--out",
        str(out),
        "--match",
        "overlap",
        "--target-precision",
        "0.8",
        "--write-thresholds",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "recommended (gap" in printed and "threshold(s) to" in printed
    metrics = json.loads((out / "event_metrics.json").read_text())
    assert set(metrics["per_class"]) == {"tone", "chirp", "clicks"}  # background is never an event
    assert metrics["match"]["by"] == "overlap" and metrics["hours"] == pytest.approx(60 / 3600, abs=1e-4)
    curve = pd.read_csv(out / "event_curve.csv")
    assert {"threshold", "precision", "recall", "f1", "false_per_hour", "misses"} <= set(curve.columns)
    assert (out / "event_curve.png").stat().st_size > 0
    recommended = json.loads((out / "recommended_thresholds.json").read_text())
    config = json.loads((model / "config.json").read_text())
    for label, v in recommended["classes"].items():
        if v["threshold"] is not None:
            assert config["thresholds"][label] == v["threshold"] and v["smoothed_precision"] >= 0.8
    assert config["thresholds_rule"].startswith("event evaluation on ")
    low = ["--model", str(model), "--boxes", str(annotated[1]), "--windows", "1,0.25", "--target-precision"]
    assert main([*low, "0.05", "--match", "overlap", "--quiet"]) == 0
    printed = capsys.readouterr().out  # every class is well above 0.05 at any threshold: a note says so
    for label in ("tone", "chirp", "clicks"):
        assert f"earshot: {label}: precision " in printed and "no threshold brings it down to 0.05" in printed


def test_jobs_evaluate_takes_a_scoring_runs_events(event_model, annotated, tmp_path, capsys):
    from jobs.evaluate import main as evaluate_main
    from jobs.score import main as score_main

    run = tmp_path / "scores.parquet"
    score_main(
        [
            str(annotated[0]),
            "--model",
            str(event_model),
            "--out",
            str(run),
            "--windows",
            "1,0.25",
            "--event-gap",
            "0.5",
            "--quiet",
            "--workers",
            "1",
        ]
    )
    capsys.readouterr()
    assert evaluate_main(["--events", str(run), "--boxes", str(annotated[1]), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["overall"]["true_events"] == 6 and metrics["overall"]["found"] >= 1
    assert metrics["windows_scored"] == 0  # nothing scored: the run's events were evaluated
    assert metrics["rule"] == {"gap_s": 0.5, "min_length_s": 0.0}  # the run's rule, as recorded


def test_jobs_evaluate_refuses_unclear_requests(annotated):
    from jobs.evaluate import main

    with pytest.raises(ValueError, match="--model .* or --events"):
        main(["--boxes", str(annotated[1])])
    with pytest.raises(ValueError, match="give --model and --data"):
        main(["--data", "somewhere"])
