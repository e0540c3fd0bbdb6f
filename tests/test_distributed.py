"""Training in two processes (gloo on the CPU, started by torchrun as a user would) matches one process,
and writes one model directory, one history and one summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SMALL_AUDIO, SMALL_FLAGS

ROOT = Path(__file__).resolve().parent.parent


def test_two_gloo_processes_train_like_one_and_write_one_model_dir(four_class_dir, tmp_path):
    pytest.importorskip("accelerate")
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    out, store = tmp_path / "model", tmp_path / "store"
    fit = dict(arch="mfcc_cnn1d", epochs=6, pretrained="none")  # 1.0 on this set in one process, ~10 s of CPU
    one = train(
        TrainArgs(
            data=str(four_class_dir),
            out=str(tmp_path / "one"),
            bs=16,
            progress=False,
            pickle=False,
            workers=1,
            **fit,
        ),
        AudioConfig(**SMALL_AUDIO),
    ).metrics
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "jobs.train",
        "--data",
        str(four_class_dir),
        "--out",
        str(out),
        "--arch",
        fit["arch"],
        "--pretrained",
        "none",
        "--epochs",
        str(fit["epochs"]),
        "--bs",
        "8",
        "--no-pickle",
        "--quiet",
        "--workers",
        "1",
        "--store",
        str(store),
        *SMALL_FLAGS,
    ]  # 2 × 8 = one process's batch of 16
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("earshot: accuracy") == 1, run.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_valid"] == one["n_valid"] and sum(map(sum, metrics["confusion"])) == one["n_valid"]
    assert abs(metrics["accuracy"] - one["accuracy"]) <= 0.15, (metrics["accuracy"], one["accuracy"])
    assert metrics["accuracy"] >= 0.7
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(fit["epochs"]))  # one writer: no interleaved or repeated rows
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            ".earshot-train.json",  # the run's own mark: only it may replace this folder (--overwrite)
            "config.json",
            "metrics.json",
            "history.csv",
            "confusion_matrix.png",
            "curves.png",
            "model.safetensors",
        ]
    )
    assert len(list(store.rglob("*.json"))) == 1, "the second process decoded again instead of waiting"
