"""Rejection in the serving layer (learner.serve.reject, issue 24 item 3): the Predictor answers "not one of
the words" for a reject class or a top class below its threshold, on a tiny model of the previous release
whose probabilities are known (tests/fixtures/earshot-0.1.0: tone → chirp 0.315, noise → noise 0.431)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLIPS = FIXTURES / "clips-0.1.0"
NAMES = {"unknown": "not one of the words", "noise": "just noise"}


def folder_with(tmp_path: Path, **config) -> Path:
    """The fixture folder copied, its config.json updated with `config` (None removes a key)."""
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "earshot-0.1.0", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(config)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    return folder


def predict(folder: Path, clip: str):
    from learner import Predictor

    return Predictor.from_dir(folder, backend="onnx").predict(CLIPS / f"{clip}.wav", top_k=4)


def test_a_folder_without_a_reject_record_answers_its_top_class(tmp_path):
    for clip, top in [("tone", "chirp"), ("noise", "noise"), ("clicks", "clicks")]:
        p = predict(folder_with(tmp_path / clip), clip)
        assert (p.answer, p.answer_text, p.rejected, p.known) == (top, top, False, True)


def test_a_reject_class_on_top_is_the_answer_by_its_name(tmp_path):
    reject = {"classes": ["noise"], "answer": "unknown", "names": NAMES}
    folder = folder_with(tmp_path, reject=reject)
    p = predict(folder, "noise")
    assert p.label == "noise" and p.answer == "noise" and p.rejected and not p.known
    assert p.answer_text == "just noise"
    assert p.detected == []  # a reject class says nothing was detected (jobs.score's `detected` column too)
    assert not predict(folder, "clicks").rejected  # a word on top is still the answer


def test_a_top_class_below_its_threshold_is_not_one_of_the_words(tmp_path):
    reject = {"classes": ["noise"], "answer": "unknown", "names": NAMES}
    folder = folder_with(tmp_path, reject=reject, thresholds={"chirp": 0.5, "clicks": 0.3})
    p = predict(folder, "tone")  # chirp 0.315 < 0.5
    assert p.label == "chirp" and p.answer == "unknown" and p.rejected
    assert p.answer_text == "not one of the words" and p.detected == []
    assert predict(folder, "clicks").answer == "clicks"  # 0.362 reaches 0.3


def test_a_score_equal_to_its_threshold_is_accepted(tmp_path):
    score = predict(folder_with(tmp_path / "a"), "clicks").score
    p = predict(folder_with(tmp_path / "b", thresholds={"clicks": score}), "clicks")
    assert p.answer == "clicks" and not p.rejected


def test_old_folders_with_thresholds_say_none_of_the_known_classes(tmp_path):
    p = predict(folder_with(tmp_path, thresholds={"chirp": 0.9}), "tone")
    assert p.answer == "unknown" and p.rejected and p.answer_text == "none of the known classes"


def test_the_reject_record_round_trips_and_is_checked(tmp_path):
    from learner.folder import ModelConfig, ModelDirError

    reject = {"classes": ["noise"], "answer": "unknown", "names": NAMES}
    cfg = ModelConfig.read(folder_with(tmp_path / "ok", reject=reject))
    assert cfg.reject == reject and cfg.to_dict()["reject"] == reject
    assert ModelConfig.read(folder_with(tmp_path / "old")).reject is None  # tolerant default
    bad = folder_with(tmp_path / "bad", reject={"classes": ["silence"]})
    with pytest.raises(ModelDirError, match=r"config.json: 'reject.classes' names 'silence'"):
        ModelConfig.read(bad)
    with pytest.raises(ModelDirError, match=r"'reject' must be an object"):
        ModelConfig.read(folder_with(tmp_path / "worse", reject=["noise"]))


def test_reject_classes_never_become_events():
    from learner.serve.events import background_classes

    classes = ["yes", "no", "unknown", "silence"]
    assert background_classes(classes, {}) == {"silence"}
    assert background_classes(classes, {"reject": {"classes": ["unknown", "silence"]}}) == {
        "unknown",
        "silence",
    }


def test_jobs_predict_and_the_classify_tab_say_the_answer(tmp_path, capsys):
    from jobs.predict import main
    from learner import Predictor
    from learner.demo.classify import classify

    reject = {"classes": ["noise"], "answer": "unknown", "names": NAMES}
    folder = folder_with(tmp_path, reject=reject, thresholds={"chirp": 0.5})
    main(["--model", str(folder), "--json", str(CLIPS / "tone.wav"), str(CLIPS / "noise.wav")])
    rows = {Path(r["path"]).stem: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert (rows["tone"]["answer"], rows["tone"]["rejected"], rows["tone"]["label"]) == (
        "unknown",
        True,
        "chirp",
    )
    assert (rows["noise"]["answer"], rows["noise"]["rejected"]) == ("noise", True)
    main(["--model", str(folder), str(CLIPS / "tone.wav"), str(CLIPS / "clicks.wav")])
    text = capsys.readouterr().out.splitlines()
    assert text[0].endswith("\t→ not one of the words") and "→" not in text[1]
    p = Predictor.from_dir(folder, backend="onnx")
    below = classify(p, CLIPS / "tone.wav", saliency=False)
    assert below.labels == "not one of the words"
    assert below.message.startswith(
        "**not one of the words** (best guess 'chirp' at 31%, below its threshold)"
    )
    caught = classify(p, CLIPS / "noise.wav", saliency=False)
    assert next(iter(caught.labels)) == "just noise" and caught.message.startswith("**just noise** (43%)")


def test_the_model_tab_says_what_it_answers_for_none_of_the_words(tmp_path):
    from learner import Predictor
    from learner.demo.model_tab import model_info

    reject = {"classes": ["noise"], "answer": "unknown", "names": NAMES}
    folder = folder_with(tmp_path / "new", reject=reject, thresholds={"chirp": 0.5})
    figures = {"words_right": 0.951, "words_rejected": 0.02, "n_words": 649, "unknown_rejected": 0.93}
    figures |= {"n_unknown": 89, "silence_rejected": 1.0, "n_silence": 111}
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "open_set": figures}))
    info = model_info(Predictor.from_dir(folder, backend="onnx"), folder).summary
    assert "it answers **just noise** or **not one of the words** when `noise` is on top" in info
    assert "**95.1%** of 649 words right" in info and "**93.0%** of 89 other words" in info
    old = folder_with(tmp_path / "old", thresholds=None, thresholds_rule=None)  # top class, always
    assert "None of its words" not in model_info(Predictor.from_dir(old, backend="onnx"), old).summary
