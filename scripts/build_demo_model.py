"""Build the demo's default model, the one shipped in assets/speech-words/ (issues #16, 24), in one command:

    python scripts/build_demo_model.py [--data ../shared/devsets/speech-dev/manifest-open.csv]
                                       [--from-model DIR] [--refit-from DIR]

The data: Speech Commands' ten command words plus `unknown` (25 other words) and `silence` (background
noise), split by speaker into `train` and `valid` (manifest-open.csv: path,label,split,group). The model
answers "not one of the words" instead of guessing, and nothing about it is chosen on the `valid` speakers
it is judged on:

1. the `train` speakers are split again by speaker (a fifth, by a hash of the speaker id) into **fit** and
   **calibration** speakers;
2. the README's command with `RECIPE` trains from scratch (`--pretrained none`, seed 0) on the fit speakers;
3. it is exported to ONNX and a static int8 ONNX calibrated on 200 fit clips;
3b. `SPEECH_HEAD`: a logistic head on Google's pretrained `speech_embedding` (learner.model.speech_embedding)
   is fitted on the same fit clips, then the network and head are fine-tuned on them (scripts/
   speech_finetune.py `FINETUNE`), and the exported files become the weighted average of the models' class
   probabilities (learner.serve.ensemble): still one ONNX file, "waveform" → "logits";
4. the int8 model scores the calibration speakers; the thresholds (`THRESHOLD_RULE`) are set on them and
   written with the `reject` record (unknown, silence) into config.json (learner.serve.reject);
4b. steps 2–3b again, the same recipe and seeds, on every train speaker (fit and calibration: a fifth more
   voices); the new models take step 4's threshold and reject record, which were set on models that never
   heard the calibration speakers (`--no-refit` ships step 4's models instead);
5. the int8 model, with its thresholds, is judged once on the `valid` speakers: the 12-class metrics and the
   open-set figures (words right, unknown and silence rejected) go to metrics.json;
6. config.json (no local paths), model.int8.onnx, metrics.json and the confusion matrix go to
   assets/speech-words/.

`--from-model DIR` starts at step 3 with a model trained by step 2 (on the fit speakers only); a folder with
no weights but an exported int8 file (a shipped CNN) starts at step 3b, and so does the shipped folder
itself (an ensemble: its first member, the CNN, is taken out unchanged).
`--refit-from DIR` gives step 4b a CNN already trained on WORK-split/all.csv (as step 2 trains, on every
train speaker). `--calibration-only` stops after step 4: it prints the calibration speakers' figures (and
writes them to WORK/calibration.json), the only figures a recipe is chosen on; `valid` is not scored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from learner.folder import WEIGHTS, ModelConfig  # noqa: E402

DEST = ROOT / "assets" / "speech-words"
DEVSET = ROOT.parent / "shared" / "devsets" / "speech-dev" / "manifest-open.csv"
REJECT = ("silence", "unknown")
NAMES = {"unknown": "not one of the words", "silence": "silence"}
# training flags beyond the README's defaults (bench/RESULTS.md: the default model; chosen on the calibration
# speakers): noise at 5–30 dB SNR mixed into the clips, so a word said in a noisy room stays a word and is not
# taken for `silence`; mains hum mixed into every class, so a hum names no word; 31 epochs instead of 15
RECIPE: list[str] = ["--aug-noise-snr", "5", "30", "--aug-hum-snr", "-20", "30", "--epochs", "31"]
CALIB_SHARE = 5  # one speaker in 5 of the train split calibrates the thresholds
WORD_LOSS = 0.01  # THRESHOLD_RULE: the share of correct calibration words a threshold may reject
# step 3b (bench/RESULTS.md: the default model, session 9; chosen by speaker-grouped 5-fold CV on the fit
# speakers): the head sees the clip at three places in its padding (the served graph uses the middle one);
# then one network fine-tuned per seed (scripts/speech_finetune.py); the CNN weighs `cnn_weight`, they share
# the rest
SPEECH_HEAD = {"C": 0.003, "left_s": (0.25, 0.15, 0.35), "seeds": (0,), "cnn_weight": 0.5}
NOTICE = "NOTICE-speech_embedding.md"
NOTICE_TEXT = """# speech_embedding inside model.int8.onnx

model.int8.onnx contains Google's `speech_embedding` network (the ONNX files `melspectrogram.onnx` and
`embedding_model.onnx` of the PyPI wheel openwakeword==0.4.0, by David Scripka), beside earshot's own
network, with two changes made by earshot: the log-mel floor is set per clip, and the embedding network's
weights were fine-tuned on Speech Commands clips (scripts/speech_finetune.py). It is licensed under the
Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0, whose full text follows this notice.

Cite: James Lin, Kevin Kilgour, Dominik Roblek and Matthew Sharifi, "Training Keyword Spotters with Limited
and Synthesized Speech Data", Proc. ICASSP 2020, pp. 7474-7478.
"""
THRESHOLD_RULE = (
    "one threshold for every word: the highest that keeps 99 % of the calibration speakers' correctly named "
    "words (a fifth of the train speakers, held out of training by speaker; int8 model)"
)
REFIT_RULE = (
    THRESHOLD_RULE[:-1] + "), set on the models trained without the calibration speakers; the shipped models "
    "are the same recipe retrained on every train speaker"
)


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def is_calibration(group: str) -> bool:
    """A fifth of the train speakers (silence: of the clips), by a hash that no split of the devset uses."""
    return int(hashlib.sha256(f"earshot-calib/{group}".encode()).hexdigest(), 16) % CALIB_SHARE == 0


def manifests(data: Path, work: Path) -> dict[str, Path]:
    """fit.csv (fit speakers `train`, calibration speakers `valid`), calib.csv, valid.csv, all.csv (every
    train speaker `train`); absolute paths."""
    df = pd.read_csv(data, dtype=str)
    missing = {"path", "label", "split", "group"} - set(df.columns)
    if missing:
        sys.exit(f"build_demo_model: {data}: no {', '.join(sorted(missing))} column (path,label,split,group)")
    if not set(REJECT) <= set(df["label"]):
        sys.exit(f"build_demo_model: {data}: no {' or '.join(REJECT)} rows; use manifest-open.csv")
    df["path"] = [q if Path(q).is_absolute() else str(data.parent / q) for q in df["path"]]
    train = df[df["split"] == "train"].copy()
    train["split"] = ["valid" if is_calibration(g) else "train" for g in train["group"]]
    work.mkdir(parents=True, exist_ok=True)
    out = {"fit": work / "fit.csv", "calib": work / "calib.csv", "valid": work / "valid.csv"}
    train.to_csv(out["fit"], index=False)
    train[train["split"] == "valid"].to_csv(out["calib"], index=False)
    # step 4b trains on every train speaker; jobs.train needs a validation split, so the calibration
    # speakers are listed again as one (a figure to watch training by, never to choose anything on)
    every = pd.concat([train.assign(split="train"), train[train["split"] == "valid"]])
    out["all"] = work / "all.csv"
    every.to_csv(out["all"], index=False)
    df[df["split"] == "valid"].to_csv(out["valid"], index=False)
    return out


def answers(model: Path, manifest: Path, probs: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every clip of `manifest` through the int8 Predictor (or its rule on `probs` already scored):
    (rows with answer/rejected, class probabilities)."""
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(model, backend="onnx-int8", threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    df = pd.read_csv(manifest, dtype=str)
    if probs is None:
        preds = p.predict_many(list(df["path"]), top_k=1)
        bad = [str(r) for r in preds if isinstance(r, Exception)]
        if bad:
            sys.exit(f"build_demo_model: {len(bad)} clips failed to decode, first: {bad[0]}")
        probs = np.stack([r.probs for r in preds])
    said = [p.answer(row) for row in probs]
    df["answer"], df["rejected"] = [a for a, _ in said], [r for _, r in said]
    return df, probs


def word_threshold(probs: np.ndarray, labels: pd.Series, classes: list[str]) -> float:
    """THRESHOLD_RULE on the calibration clips: the WORD_LOSS quantile of the top probability of the words
    the model names right (rounded down, so no calibration decision sits exactly on it)."""
    top = probs.argmax(axis=1)
    words = ~labels.isin(REJECT).to_numpy()
    right = words & (np.array(classes)[top] == labels.to_numpy())
    scores = np.sort(probs[right, top[right]])
    return round(float(np.floor(float(scores[int(WORD_LOSS * len(scores))]) * 1000)) / 1000, 3)


def open_set(df: pd.DataFrame) -> dict[str, float | int]:
    """Words answered right (a rejected word is wrong), unknown and silence clips rejected."""
    words = df[~df["label"].isin(REJECT)]
    figures: dict[str, float | int] = {
        "words_right": float((words["answer"] == words["label"]).mean()),
        "words_rejected": float(words["rejected"].mean()),
        "n_words": len(words),
    }
    for c in REJECT:
        rows = df[df["label"] == c]
        figures[f"{c}_rejected"] = float(rows["rejected"].mean())
        figures[f"n_{c}"] = len(rows)
    return figures


def answer_open_set(work: Path) -> None:
    """The reject record (unknown, silence) into work/config.json, with no thresholds yet."""
    from learner.folder import ModelConfig
    from learner.serve.reject import reject_record

    config = ModelConfig.read(work)
    config.reject = reject_record(REJECT, "unknown", NAMES)
    config.extra["background_classes"] = list(REJECT)  # no "unknown" or "silence" events in long files
    config.thresholds, config.thresholds_rule = None, None
    config.write(work)


def write_word_threshold(work: Path, threshold: float, rule: str) -> None:
    """One threshold for every word into work/config.json; unknown and silence are answered at any score."""
    from learner.folder import write_thresholds

    classes = ModelConfig.read(work).classes
    write_thresholds(work, {c: (threshold if c not in REJECT else 0.0) for c in classes}, source=rule)


def calibrate(work: Path, calib: Path) -> dict:
    """Step 4: thresholds and the reject record into work/config.json; the calibration figures."""
    answer_open_set(work)
    config = ModelConfig.read(work)
    before, probs = answers(work, calib)
    classes = config.classes
    t = word_threshold(probs, before["label"], classes)
    write_word_threshold(work, t, THRESHOLD_RULE)
    after, _ = answers(work, calib, probs)  # the same scores under the new thresholds
    speakers = before.loc[before["label"] != "silence", "group"].nunique()
    return {
        "threshold": t,
        "rule": THRESHOLD_RULE,
        "speakers": int(speakers),
        "clips": len(before),
        "without_thresholds": open_set(before),
        "with_thresholds": open_set(after),
    }


def train(fit: Path, work: Path) -> None:
    run(*("-m", "jobs.train", "--data", str(fit), "--out", str(work), "--pretrained", "none"),
        *("--seed", "0", "--no-pickle", "--quiet", *RECIPE))  # fmt: skip


def export_int8(fit: Path, work: Path) -> None:
    """Step 3: static int8 calibrated on 200 fit clips (never on calibration or valid speakers)."""
    df = pd.read_csv(fit, dtype=str)
    with tempfile.TemporaryDirectory() as calib:
        rows = df[df["split"] == "train"].sample(n=min(200, (df["split"] == "train").sum()), random_state=0)
        for i, q in enumerate(rows["path"]):
            os.symlink(q, Path(calib) / f"{i:03d}{Path(q).suffix}")
        run("-m", "jobs.export", "--model", str(work), "--int8", "--calib", calib, "--n-calib", "200")


def first_member(work: Path) -> None:
    """A shipped folder (an ensemble already) back to the CNN it was built on: member 0 of its int8 file,
    unchanged, and config.json without the ensemble and backbone records."""
    import onnx

    from learner.folder import ModelConfig
    from learner.serve.ensemble import member
    from learner.serve.onnx_backend import INT8_FILE, sha256_file

    onnx.save(member(onnx.load(str(work / INT8_FILE)), 0), str(work / INT8_FILE))
    config = ModelConfig.read(work)
    config.onnx = {k: v for k, v in config.onnx.items() if k != "ensemble"}
    config.onnx["files"] = {INT8_FILE: sha256_file(work / INT8_FILE)}
    config.backbone = None
    config.write(work)
    print(f"+ {work}: the shipped ensemble's first member ({config.arch}) starts step 3b", flush=True)


def add_speech_embedding(fit: Path, work: Path) -> dict:
    """Step 3b: fit the head on the fit clips (as the Predictor prepares them) and make every exported file
    the average of itself and the head; returns the config.json record of how."""
    import onnx
    import onnxruntime as ort
    from speech_finetune import FINETUNE, finetune

    from learner.folder import ModelConfig
    from learner.model import speech_embedding as se
    from learner.model.head_fit import backbone_record, fit_linear
    from learner.model.speech_embedding_net import published_net, with_weights
    from learner.serve.ensemble import average_into
    from learner.serve.predictor import Predictor

    config = ModelConfig.read(work)
    if (config.onnx or {}).get("ensemble"):  # checked again by average_into; here before any embedding
        sys.exit(f"build_demo_model: {work}: its ONNX files are an ensemble already; start from the CNN")
    rows = pd.read_csv(fit, dtype=str)
    rows = rows[rows["split"] == "train"]
    pred = Predictor.from_dir(work, backend="onnx-int8", threads=1)
    clips = np.stack([pred.prepare(pred.decode(q).samples) for q in rows["path"]]).astype(np.float32)
    mel, net = se.published_files()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1"))

    def features(left_s: float) -> np.ndarray:
        graph = se.feature_graph(clips.shape[1], mel, net, left_s=left_s)
        session = ort.InferenceSession(graph.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, {"waveform": clips[i : i + 64]})[0]
                               for i in range(0, len(clips), 64)])  # fmt: skip

    x = np.concatenate([features(s) for s in SPEECH_HEAD["left_s"]])
    y = np.tile(rows["label"].map(config.classes.index).to_numpy(), len(SPEECH_HEAD["left_s"]))
    if len(set(y)) != len(config.classes):
        sys.exit(f"build_demo_model: {fit}: the fit speakers lack some classes; the head needs all of them")
    head = fit_linear(x, y, SPEECH_HEAD["C"])  # standardised, as every frozen head (learner.model.head_fit)
    members, silence = [], config.classes.index("silence")
    for seed in SPEECH_HEAD["seeds"]:  # one fine-tuned network per seed, all from the same frozen head
        tuned, tuned_head = finetune(published_net(net), head, clips, y[: len(clips)], silence, seed)
        tuned_file = work / f"speech_embedding-finetuned-{seed}.onnx"
        onnx.save(with_weights(onnx.load(str(net)), tuned.state_dict()), str(tuned_file))
        t, features_graph = tuned_head, se.feature_graph(clips.shape[1], mel, tuned_file)
        members.append(se.with_linear_head(features_graph, t.weight.T, t.bias, t.mean, t.scale, t.l2))
    n = len(members)
    record = {
        "members": [f"{config.arch} (the exported model)"]
        + [f"speech_embedding fine-tuned (seed {s}), linear head" for s in SPEECH_HEAD["seeds"]],
        "head": {"C": SPEECH_HEAD["C"], "clips": len(rows), "placements_s": list(SPEECH_HEAD["left_s"])},
        "finetune": {k: list(v) if isinstance(v, tuple) else v for k, v in FINETUNE.items()},
    }
    cnn = SPEECH_HEAD["cnn_weight"]
    files = average_into(work, members, [cnn] + [(1 - cnn) / n] * n, record)
    config = ModelConfig.read(work)
    use = "fine-tuned with a linear head, averaged with the network"
    config.backbone = backbone_record("speech_embedding", use)
    config.write(work)
    print(f"+ speech_embedding head on {len(rows)} fit clips × {len(SPEECH_HEAD['left_s'])} placements, "
          f"{n} fine-tuned; {', '.join(files)} now average them with the {config.arch}", flush=True)
    return record


def refit(csvs: dict[str, Path], fitted: Path, threshold: float, refit_from: str | None) -> Path:
    """Step 4b: the same recipe again on every train speaker (fit and calibration): the CNN (or the one in
    `refit_from`, trained on csvs["all"]), its int8 file, the speech_embedding member; then the reject
    record and the threshold set in step 4 on the models that never heard the calibration speakers."""
    work = fitted.with_name(fitted.name + "-refit")
    if work.exists():
        shutil.rmtree(work)
    if refit_from:
        shutil.copytree(refit_from, work)
    else:
        train(csvs["all"], work)
    if not (work / WEIGHTS).is_file():
        sys.exit(f"build_demo_model: {work}: no {WEIGHTS}; --refit-from takes a model trained on all.csv")
    export_int8(csvs["all"], work)
    add_speech_embedding(csvs["all"], work)
    answer_open_set(work)
    write_word_threshold(work, threshold, REFIT_RULE)
    return work


def judge(work: Path, valid: Path, calibration: dict, speakers: int) -> dict:
    """Step 5, once: the 12-class metrics and confusion matrix (as jobs.evaluate writes them) and the
    open-set figures, from one pass of the int8 model over the valid speakers."""
    from learner.folder import write_json
    from learner.report.metrics import classification_report
    from learner.report.plots import plot_confusion

    scored, probs = answers(work, valid)
    classes = json.loads((work / "config.json").read_text())["classes"]
    metrics = classification_report(probs, np.array([classes.index(c) for c in scored["label"]]), classes)
    metrics["open_set"] = {**open_set(scored), "calibration": calibration}
    metrics["split"] = f"{speakers} real speakers not used in training"
    metrics["backend"] = "onnx-int8"
    out = work / "int8-valid"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    title = f"{speakers} held-out speakers · accuracy {metrics['accuracy']:.3f}"
    plot_confusion(metrics["confusion"], classes, out / "confusion_matrix.png", title=title)
    return metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEVSET), help="manifest-open.csv: path,label,split,group")
    p.add_argument("--from-model", default=None, help="skip training: a model trained by step 2")
    p.add_argument("--work", default="runs/demo-model", help="where the model is trained and exported")
    p.add_argument("--dest", default=str(DEST), help="the shipped folder to write")
    p.add_argument(
        "--calibration-only", action="store_true", help="stop after step 4: no valid figures, nothing shipped"
    )
    p.add_argument("--no-refit", action="store_true", help="ship the fit speakers' models (no step 4b)")
    p.add_argument("--refit-from", default=None, help="step 4b's CNN: a model trained on WORK-split/all.csv")
    args = p.parse_args()
    data = Path(args.data)
    if not data.is_file():  # the default lives beside the checkout (../shared), not in it
        sys.exit(
            f"build_demo_model: {data}: no such manifest; pass --data MANIFEST.csv (Speech Commands words "
            "with unknown and silence rows: path,label,split,group)"
        )
    work = (ROOT / args.work).absolute()
    if args.from_model:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(args.from_model, work)
    csvs = manifests(data.absolute(), work.with_name(work.name + "-split"))  # train wants a new --out
    if not args.from_model:
        train(csvs["fit"], work)
    if (work / WEIGHTS).is_file():
        export_int8(csvs["fit"], work)
    elif (ModelConfig.read(work).onnx or {}).get("ensemble"):
        first_member(work)
    elif not (work / "model.int8.onnx").is_file():
        sys.exit(f"build_demo_model: {work}: neither weights ({WEIGHTS}) nor an exported model.int8.onnx")
    add_speech_embedding(csvs["fit"], work)
    calibration = calibrate(work, csvs["calib"])
    if args.calibration_only:
        (work / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
        print(json.dumps(calibration, indent=2))
        return
    if not args.no_refit:
        work = refit(csvs, work, calibration["threshold"], args.refit_from)
        calibration["refit"] = "the same recipe retrained on every train speaker; the threshold above kept"
    valid = pd.read_csv(csvs["valid"], dtype=str)
    metrics = judge(
        work, csvs["valid"], calibration, valid.loc[valid["label"] != "silence", "group"].nunique()
    )
    ship(work, metrics, Path(args.dest))


def ship(work: Path, metrics: dict, dest: Path) -> None:
    """Step 6: the shipped folder, with no local paths."""
    from learner.folder import strip_local_paths
    from learner.serve.onnx_backend import INT8_FILE

    dest.mkdir(parents=True, exist_ok=True)
    config = strip_local_paths(json.loads((work / "config.json").read_text()))
    onnx_files = config["onnx"]["files"]  # only the int8 file ships
    config["onnx"]["files"] = {k: v for k, v in onnx_files.items() if k == INT8_FILE}
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (dest / "metrics.json").write_text(json.dumps(strip_local_paths(metrics), indent=2) + "\n")
    shutil.copy(work / INT8_FILE, dest / INT8_FILE)
    shutil.copy(work / "int8-valid" / "confusion_matrix.png", dest / "confusion_matrix.png")
    licence = (ROOT / "assets" / "licences" / "Apache-2.0.txt").read_text()
    (dest / NOTICE).write_text(NOTICE_TEXT + "\n```\n" + licence + "```\n")  # travels with the weights
    o = metrics["open_set"]
    print(
        f"earshot: {dest}: on {metrics['split']}: words right {o['words_right']:.3f} (n={o['n_words']}), "
        f"unknown rejected {o['unknown_rejected']:.3f} (n={o['n_unknown']}), silence rejected "
        f"{o['silence_rejected']:.3f} (n={o['n_silence']}); 12-class accuracy {metrics['accuracy']:.3f}"
    )


if __name__ == "__main__":
    main()
