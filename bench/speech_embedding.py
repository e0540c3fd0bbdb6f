"""Would a pretrained *speech* embedding lift the default model's words (#24: ≥ 95 % right)? A probe, not a
feature: Google's `speech_embedding` (96 values per 0.775 s, Apache-2.0) ships as ONNX inside the PyPI wheel
`openwakeword==0.4.0`, the only speech-pretrained network the package index offers here. Its wake-word models
in the same wheel are CC BY-NC-SA and are never read.

    python bench/speech_embedding.py [--model assets/speech-words]

speech-dev's `manifest-open.csv` (12 classes): a logistic head on the embeddings is fitted on the *fit*
speakers and, beside the shipped model and their average, judged on the *calibration* speakers only (the
split `scripts/build_demo_model.py` chooses its recipe on; `valid` is never scored here). Each line applies
the build script's threshold rule (keep 99 % of correctly named calibration words)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import DEVSETS, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from build_demo_model import REJECT, is_calibration, open_set, word_threshold  # noqa: E402

from learner.serve.predictor import Predictor  # noqa: E402
from learner.serve.reject import Rejection  # noqa: E402

WHEEL = "openwakeword==0.4.0"
MODELS = "openwakeword/resources/models/"
PAD_S = 0.25  # silence each side of a 1 s clip: 9 embeddings (76 mel frames, hop 8) instead of 3


def sessions(work: Path):
    import onnxruntime as ort

    fetch = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(work)]
    subprocess.run(fetch, check=True)
    with zipfile.ZipFile(next(work.glob("openwakeword-*.whl"))) as z:
        z.extractall(work, [MODELS + "melspectrogram.onnx", MODELS + "embedding_model.onnx"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    mel, emb = (str(work / MODELS / f) for f in ("melspectrogram.onnx", "embedding_model.onnx"))
    return ort.InferenceSession(mel, opts, providers=cpu), ort.InferenceSession(emb, opts, providers=cpu)


def embed(mel, emb, clip: np.ndarray, sr: int = 16000) -> np.ndarray:
    """One 1 s clip at 16 kHz → the embeddings of its padded windows, flattened."""
    pad = int(PAD_S * sr)
    x = np.pad(clip[:sr], (pad, pad + sr - len(clip[:sr]))) * 32767  # the model wants int16 scale
    spec = mel.run(None, {"input": x[None].astype(np.float32)})[0].squeeze()
    spec = spec / 10 + 2  # openwakeword's scaling
    wins = np.stack([spec[i : i + 76] for i in range(0, len(spec) - 75, 8)])[..., None].astype(np.float32)
    return emb.run(None, {"input_1": wins})[0].reshape(-1)


def figures(name: str, probs: np.ndarray, classes: list[str], labels: pd.Series) -> str:
    """One table row: the build's threshold rule (`word_threshold`) and its figures (`open_set`), with the
    answers the Predictor's rule (`Rejection`) gives for the model's reject classes."""
    t = word_threshold(probs, labels, classes)
    rule, top = Rejection(classes=REJECT), probs.argmax(axis=1)
    said = [rule.decide(classes[k], float(row[k]), t) for k, row in zip(top, probs, strict=True)]
    rejected = [rule.rejects(a) for a in said]
    f = open_set(pd.DataFrame({"label": labels.to_numpy(), "answer": said, "rejected": rejected}))
    words = ~labels.isin(REJECT).to_numpy()
    top1 = (np.array(classes)[top][words] == labels.to_numpy()[words]).mean()
    unknown = f"{f['unknown_rejected']:.3f} ({f['n_unknown']})"
    return f"| {name} | {top1:.3f} | {t:.3f} | {f['words_right']:.3f} | {unknown} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "assets" / "speech-words")
    ap.add_argument("--data", type=Path, default=DEVSETS / "speech-dev" / "manifest-open.csv")
    a = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(a.data)
    df = df[df.split == "train"].reset_index(drop=True)  # valid is never read
    calib = df.group.astype(str).map(is_calibration).to_numpy()
    pred = Predictor.from_dir(a.model, threads=1)
    clips = [pred.prepare(pred.decode(str(a.data.parent / p)).samples) for p in df.path]
    with tempfile.TemporaryDirectory() as tmp:
        mel, emb = sessions(Path(tmp))
        feats = np.stack([embed(mel, emb, c) for c in clips])
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000))
    head.fit(feats[~calib], df.label[~calib])
    classes = list(pred.classes)
    p_emb = head.predict_proba(feats[calib])[:, [list(head.classes_).index(c) for c in classes]]
    p_cnn = pred.predict_waves(np.stack(clips)[calib])
    truth = df.label[calib]
    print(f"fit {int((~calib).sum())} clips, calibration {int(calib.sum())} clips")
    print("| scores | words top-1 | threshold | words right | unknown rejected (n) |")
    print("|---|---:|---:|---:|---:|")
    print(figures("shipped model", p_cnn, classes, truth))
    print(figures("speech_embedding + logistic head", p_emb, classes, truth))
    print(figures("average of the two", (p_cnn + p_emb) / 2, classes, truth))


if __name__ == "__main__":
    main()
