"""How the default model's speech_embedding head was chosen, and what it costs (#24; report only).

    python bench/speech_embedding.py [--model assets/speech-words] [--folds 5] [--finetune]

1. **The choice** (`scripts/build_demo_model.py` `SPEECH_HEAD`): speaker-grouped k-fold cross-validation on
   the build's *fit* speakers only (the calibration speakers set the thresholds and `valid` judges; neither is
   read here): a logistic head (StandardScaler, then C) on the embeddings of each clip with the clip at the
   middle of its padding, or also 0.1 s earlier and later (three placements per training clip). The figure is
   the ten words' top-class accuracy on the held-out folds, mean ± std over folds.
   With `--finetune`, the same folds (4 by default) choose `scripts/speech_finetune.py` `FINETUNE`: the
   network and its flat nine-window head fine-tuned from the head fitted on the fold's training speakers,
   for each of `FINETUNE_VARIANTS`; the figure is the same, the clip at the middle of its padding.
2. **The cost**: CPU per clip of the shipped ONNX file against its first member alone (the trained CNN, cut
   out of the same file), one thread, side by side in one run.

The embeddings come from `learner.model.speech_embedding.feature_graph`, the graph the shipped file contains;
the clips are prepared by the shipped model's own Predictor (decode, trim, 1 s)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import DEVSETS, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from build_demo_model import REJECT, is_calibration  # noqa: E402

from learner.model import speech_embedding as se  # noqa: E402
from learner.serve.predictor import Predictor  # noqa: E402

PLACEMENTS = {"middle only": (0.25,), "middle, ±0.1 s": (0.25, 0.15, 0.35)}
CS = (0.003, 0.01, 0.03)
FINETUNE_VARIANTS = {
    "8 epochs, lr 3e-4": {"epochs": 8, "lr": 3e-4},
    "16 epochs, lr 3e-4": {"epochs": 16, "lr": 3e-4},
    "8 epochs, lr 1e-3": {"epochs": 8, "lr": 1e-3},
}


def session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def features(clips: np.ndarray, left_s: float) -> np.ndarray:
    s = session(se.feature_graph(clips.shape[1], *se.published_files(), left_s=left_s))
    return np.concatenate([s.run(None, {"waveform": clips[i : i + 64]})[0] for i in range(0, len(clips), 64)])


def choice(clips: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    views = {s: features(clips, s) for s in {s for p in PLACEMENTS.values() for s in p}}
    speakers = len(set(groups[~np.isin(labels, ["silence"])]))
    print(f"\n{folds}-fold CV by speaker on {len(clips)} fit clips ({speakers} speakers): words right")
    print("| placements | " + " | ".join(f"C {c:g}" for c in CS) + " |")
    print("|---|" + "---:|" * len(CS))
    for name, places in PLACEMENTS.items():
        cells = []
        for c in CS:
            accs = []
            for tr, te in GroupKFold(folds).split(clips, groups=groups):
                x = np.concatenate([views[s][tr] for s in places])
                head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
                head.fit(x, np.tile(labels[tr], len(places)))
                words = ~np.isin(labels[te], REJECT)
                accs.append((head.predict(views[0.25][te])[words] == labels[te][words]).mean())
            cells.append(f"{np.mean(accs):.3f} ± {np.std(accs):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def finetune_choice(clips: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int) -> None:
    import speech_finetune
    import torch
    from build_demo_model import SPEECH_HEAD
    from sklearn.model_selection import GroupKFold

    from learner.model.head_fit import fit_linear
    from learner.model.speech_embedding_net import published_net

    classes = sorted(set(labels))
    y, silence = np.array([classes.index(v) for v in labels]), classes.index("silence")
    places = SPEECH_HEAD["left_s"]
    views = {s: features(clips, s) for s in places}
    net_file = se.published_files()[1]
    print(f"\n{folds}-fold CV by speaker on {len(clips)} fit clips: words right after fine-tuning")
    print("| fine-tuning | words right | per fold |\n|---|---:|---|")
    for name, change in FINETUNE_VARIANTS.items():
        cfg = {**speech_finetune.FINETUNE, **change}
        accs = []
        for tr, te in GroupKFold(folds).split(clips, groups=groups):
            head = fit_linear(np.concatenate([views[s][tr] for s in places]), np.tile(y[tr], len(places)),
                              SPEECH_HEAD["C"])  # fmt: skip
            net = published_net(net_file)
            net, head = speech_finetune.finetune(net, head, clips[tr], y[tr], silence, cfg=cfg)
            model = speech_finetune.WindowedHead(net, head).eval()
            with torch.no_grad():
                top = np.concatenate([model(torch.from_numpy(clips[te][i : i + 64])).argmax(1).numpy()
                                      for i in range(0, len(te), 64)])  # fmt: skip
            words = ~np.isin(labels[te], REJECT)
            accs.append((top[words] == y[te][words]).mean())
            print(f"  {name}: fold {len(accs)} {accs[-1]:.3f}", flush=True)
        cells = ", ".join(f"{a:.3f}" for a in accs)
        print(f"| {name} | {np.mean(accs):.3f} ± {np.std(accs):.3f} | {cells} |", flush=True)


def cost(model_file: Path, clips: np.ndarray) -> None:
    import onnx

    from learner.serve.ensemble import member

    graphs = {"trained CNN alone (member 0)": session(member(onnx.load(str(model_file)), 0)),
              "shipped ensemble": session(str(model_file))}  # fmt: skip
    print(f"\nCPU ms per clip, one thread, {model_file.name}")
    print("| graph | batch 1 | batch 8 |")
    print("|---|---:|---:|")
    rows = {name: [] for name in graphs}
    for _ in range(3):  # interleaved rounds, so both see the same load
        for name, s in graphs.items():
            per = []
            for b in (1, 8):
                s.run(None, {"waveform": clips[:b]})
                t, n = time.process_time(), 64 // b
                for i in range(n):
                    s.run(None, {"waveform": clips[i * b : (i + 1) * b]})
                per.append((time.process_time() - t) / (n * b) * 1000)
            rows[name].append(per)
    for name, per in rows.items():
        best = np.min(np.array(per), axis=0)
        print(f"| {name} | {best[0]:.1f} | {best[1]:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "assets" / "speech-words")
    ap.add_argument("--data", type=Path, default=DEVSETS / "speech-dev" / "manifest-open.csv")
    ap.add_argument("--folds", type=int, default=None, help="5, or 4 with --finetune")
    ap.add_argument("--finetune", action="store_true", help="choose FINETUNE instead of the frozen head")
    a = ap.parse_args()
    df = pd.read_csv(a.data)
    df = df[(df.split == "train") & ~df.group.astype(str).map(is_calibration)].reset_index(drop=True)
    pred = Predictor.from_dir(a.model, threads=1)
    clips = np.stack([pred.prepare(pred.decode(str(a.data.parent / p)).samples) for p in df.path])
    clips = clips.astype(np.float32)
    labels, groups = df.label.to_numpy(), df.group.astype(str).to_numpy()
    if a.finetune:
        finetune_choice(clips, labels, groups, a.folds or 4)
        return
    cost(a.model / "model.int8.onnx", clips)
    choice(clips, labels, groups, a.folds or 5)


if __name__ == "__main__":
    main()
