"""Build the demo's default model, the one shipped in assets/speech-words/ (issue #16), in one command:

    python scripts/build_demo_model.py [--data ../shared/devsets/speech-dev/manifest.csv] [--from-model DIR]

1. trains with the README's command and its defaults, from scratch (`--pretrained none`, seed 0), on the
   `train` speakers of a Speech Commands manifest (path,label,split,group: the ten command words);
2. exports ONNX and a static int8 ONNX calibrated on 200 training clips (never on held-out speakers);
3. evaluates the int8 model on the `valid` speakers, whom training never heard: that is the figure the demo
   shows;
4. copies config.json (no local paths), model.int8.onnx, metrics.json and the confusion matrix into
   assets/speech-words/.

`--from-model DIR` starts at step 2 with a model already trained by that command (the tuning bench trains
exactly it as `speech-dev default seed 0`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEST = ROOT / "assets" / "speech-words"
DEVSET = ROOT.parent / "shared" / "devsets" / "speech-dev" / "manifest.csv"


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", default=str(DEVSET), help="manifest with path,label,split (train/valid by speaker)"
    )
    p.add_argument("--from-model", default=None, help="skip training: a model trained by the same command")
    p.add_argument("--work", default="runs/demo-model", help="where the model is trained and exported")
    args = p.parse_args()
    if not Path(args.data).is_file():  # the default lives beside the checkout (../shared), not in it
        sys.exit(
            f"build_demo_model: {args.data}: no such manifest; pass --data MANIFEST.csv "
            "(a Speech Commands manifest with path,label,split columns: the ten command words)"
        )
    work = (ROOT / args.work).absolute()
    df = pd.read_csv(args.data, dtype=str)
    df["path"] = [q if Path(q).is_absolute() else str(Path(args.data).parent / q) for q in df["path"]]
    if args.from_model:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(args.from_model, work)
    else:
        run(
            "-m",
            "jobs.train",
            "--data",
            args.data,
            "--out",
            str(work),
            "--pretrained",
            "none",
            "--seed",
            "0",
            "--no-pickle",
            "--quiet",
        )
    with tempfile.TemporaryDirectory() as calib:
        train = df[df["split"] == "train"].sample(n=min(200, (df["split"] == "train").sum()), random_state=0)
        for i, q in enumerate(train["path"]):
            os.symlink(q, Path(calib) / f"{i:03d}{Path(q).suffix}")
        run("-m", "jobs.export", "--model", str(work), "--int8", "--calib", calib, "--n-calib", "200")
    run(
        "-m",
        "jobs.evaluate",
        "--model",
        str(work),
        "--data",
        args.data,
        "--subset",
        "valid",
        "--backend",
        "onnx-int8",
        "--out",
        str(work / "int8-valid"),
        "--quiet",
    )

    from learner.folder import strip_local_paths

    DEST.mkdir(parents=True, exist_ok=True)
    config = strip_local_paths(json.loads((work / "config.json").read_text()))
    (DEST / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    metrics = json.loads((work / "int8-valid" / "metrics.json").read_text())
    speakers = df.loc[df["split"] == "valid", "group"].nunique() if "group" in df else None
    metrics["split"] = f"{speakers} real speakers not used in training" if speakers else "held-out speakers"
    metrics["backend"] = "onnx-int8"
    (DEST / "metrics.json").write_text(json.dumps(strip_local_paths(metrics), indent=2) + "\n")
    shutil.copy(work / "model.int8.onnx", DEST / "model.int8.onnx")
    shutil.copy(work / "int8-valid" / "confusion_matrix.png", DEST / "confusion_matrix.png")
    print(
        f"earshot: {DEST}: accuracy {metrics['accuracy']:.3f} on {metrics['n_samples']} clips of "
        f"{metrics['split']}"
    )


if __name__ == "__main__":
    main()
