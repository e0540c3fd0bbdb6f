"""Throughput of `jobs.score` next to the model forward alone and a per-file loop, in one run.

    .venv/bin/python bench/score_throughput.py [--files 2000] [--batch-size 32] [--loop-files 100] [--work
    DIR]

Generates N 5 s clips at 22.05 kHz (16-bit WAV) and an untrained xresnet18 model directory at the default
AudioConfig (22.05 kHz, 5 s, 128 mels), then measures files/s of
  1. `python -m jobs.score` over all N files (the scoring-loop figure it prints: process start-up and model
     load excluded), run in `--rounds` rounds with `--resume`, each round adding N / rounds files,
  2. the model forward alone: `Predictor.predict_waves` on pre-made batches of the same batch size,
  3. per-file loops: fastai `Learner.predict(path)` on a Learner built over the same weights, and
     earshot's `Predictor.predict(path)` (batch of one), each on `--loop-files` files per round.
Every round times all four back to back, so a shared machine's changing load hits them alike; the
totals are files / seconds summed over the rounds. CPU time per file (user + system, all threads and worker
processes; the job's start-up measured on an empty run and subtracted) is printed too: on a machine shared
with other work it is far steadier than wall-clock rates.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

CLASSES = ["tone", "chirp", "noise", "clicks"]


def make_clips(folder: Path, n: int, sr: int, seconds: float) -> list[Path]:
    from learner.data.sounds import make_sound

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{i // 500:02d}" / f"clip{i:05d}.wav"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, make_sound(CLASSES[i % 4], sr, seconds, rng), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def make_model(folder: Path) -> Path:
    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model.registry import create_model

    cfg = AudioConfig()
    if not (folder / "config.json").exists():
        net = create_model("xresnet18", len(CLASSES), cfg)
        save_model_dir(
            folder,
            net.eval().state_dict(),
            {"arch": "xresnet18", "input": "spectrogram", "classes": CLASSES, "audio": cfg.to_dict()},
        )
    return folder


class ModelOnly:
    """`Predictor.predict_waves` on one pre-made batch, timed over `n_batches` batches per call."""

    def __init__(self, model_dir: Path, batch_size: int) -> None:
        from learner.serve.predictor import Predictor

        self.p = Predictor.from_dir(model_dir, batch_size=batch_size)
        self.x = (
            np.random.default_rng(0).normal(0, 0.1, (batch_size, self.p.cfg.n_samples)).astype(np.float32)
        )
        self.p.predict_waves(self.x[:2])  # warm-up

    def __call__(self, n_batches: int) -> tuple[int, float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n_batches):
            self.p.predict_waves(self.x)
        return n_batches * len(self.x), time.perf_counter() - start, time.process_time() - cpu


def _children_cpu() -> float:
    ru = resource.getrusage(
        resource.RUSAGE_CHILDREN
    )  # the job and its decoding workers, once they have exited
    return ru.ru_utime + ru.ru_stime


def job(model_dir: Path, manifest: Path, out: Path, batch_size: int) -> tuple[int, float, float]:
    """One `jobs.score --resume` run: (files scored, seconds of its scoring loop, CPU seconds of the whole
    run)."""
    cmd = [
        sys.executable,
        "-m",
        "jobs.score",
        "--model",
        str(model_dir),
        "--input",
        str(manifest),
        "--output",
        str(out),
        "--resume",
        "--batch-size",
        str(batch_size),
        "--quiet",
    ]
    cpu = _children_cpu()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    cpu = _children_cpu() - cpu
    if r.returncode:
        raise SystemExit(f"jobs.score failed:\n{r.stderr[-3000:]}")
    m = re.search(r"scored (\d+), failed (\d+), .* in ([\d.]+) s", r.stdout)
    return int(m.group(1)) + int(m.group(2)), float(m.group(3)), cpu


def fastai_learner(model_dir: Path, paths: list[Path]):
    """fastai's own per-item path: a Learner rebuilt around the saved weights, for `Learner.predict(path)`."""
    import pandas as pd
    from fastai.callback.progress import ProgressCallback  # noqa: F401  (adds Learner.no_bar)
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import ColReader, ColSplitter
    from fastai.learner import Learner

    from learner.config import AudioConfig
    from learner.folder import load_model_dir
    from learner.model.frontend import FrontEnd
    from learner.model.registry import create_model
    from learner.train.transforms import AudioBlock

    config, sd = load_model_dir(model_dir)
    cfg = AudioConfig.from_dict(config["audio"])
    df = pd.DataFrame(
        {
            "path": [str(p) for p in paths[:8]],
            "label": [CLASSES[i % 4] for i in range(8)],
            "is_valid": [False] * 4 + [True] * 4,
        }
    )
    dblock = DataBlock(
        blocks=(AudioBlock(cfg, FrontEnd(cfg, "spectrogram")), CategoryBlock(vocab=CLASSES)),
        get_x=ColReader("path"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
    )
    net = create_model("xresnet18", len(CLASSES), cfg)
    net.load_state_dict(sd, strict=True)
    learn = Learner(dblock.dataloaders(df, bs=4, num_workers=0, device="cpu"), net)
    with learn.no_bar(), learn.no_logging():
        learn.predict(str(paths[0]))  # warm-up
    return learn


def timed_loop(fn, paths: list[Path]) -> tuple[int, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for p in paths:
        fn(p)
    return len(paths), time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4, help="each round times every method back to back")
    ap.add_argument(
        "--model-batches", type=int, default=8, help="batches timed for the model-only figure per round"
    )
    ap.add_argument("--loop-files", type=int, default=25, help="files timed per round for each per-file loop")
    ap.add_argument("--work", default=None, help="keep clips and model here (default: a temp folder)")
    args = ap.parse_args()

    import shutil

    import torch

    from learner.serve.predictor import Predictor

    work = Path(args.work or tempfile.mkdtemp(prefix="earshot-bench-"))
    data, model_dir = work / "clips", make_model(work / "model")
    t = time.perf_counter()
    paths = make_clips(data, args.files, 22050, 5.0)
    print(
        f"{len(paths)} clips (5 s, 22.05 kHz) ready in {time.perf_counter() - t:.0f} s; machine: "
        f"{os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    out = work / "scores.parquet"
    shutil.rmtree(out, ignore_errors=True)
    model_only = ModelOnly(model_dir, args.batch_size)
    learn = fastai_learner(model_dir, paths)
    pred = Predictor.from_dir(model_dir)
    pred.predict(paths[0])
    totals = {k: [0, 0.0, 0.0] for k in ("job", "model", "fastai", "predictor")}
    empty = work / "empty.txt"
    empty.write_text("")
    _, _, overhead = job(
        model_dir, empty, work / "empty.parquet", args.batch_size
    )  # start-up, model load, workers
    shutil.rmtree(work / "empty.parquet", ignore_errors=True)

    def add(key: str, m: tuple[int, float, float]) -> float:
        for i in range(3):
            totals[key][i] += m[i]
        return m[0] / m[1]

    print(
        f"\n{'round':<7}{'load':>6}{'jobs.score':>12}{'model only':>12}"
        f"{'fastai loop':>13}{'Predictor loop':>16}  (files/s)"
    )
    for r in range(args.rounds):
        manifest = work / f"round{r}.txt"
        manifest.write_text("\n".join(str(p) for p in paths[: len(paths) * (r + 1) // args.rounds]) + "\n")
        load = os.getloadavg()[0]
        m = add("model", model_only(args.model_batches))
        n, secs, cpu = job(model_dir, manifest, out, args.batch_size)
        j = add("job", (n, secs, max(cpu - overhead, 0.0)))
        loop = paths[r * args.loop_files : (r + 1) * args.loop_files]
        with learn.no_bar(), learn.no_logging():
            f = add("fastai", timed_loop(lambda p: learn.predict(str(p)), loop))
        q = add("predictor", timed_loop(pred.predict, loop))
        print(f"{r:<7}{load:>6.1f}{j:>12.2f}{m:>12.2f}{f:>13.2f}{q:>16.2f}")
    rate = {k: n / s for k, (n, s, _) in totals.items()}
    cpu_ms = {k: 1000 * c / n for k, (n, _, c) in totals.items()}
    model = rate["model"]
    print(f"\njobs.score start-up CPU (an empty run, subtracted): {overhead:.1f} s")
    print(f"\n{'what':<58}{'files/s':>10}{'ratio':>8}{'CPU ms/file':>13}{'ratio':>8}")
    for key, what in (
        ("job", f"jobs.score over {totals['job'][0]} files (decode workers + model + parquet)"),
        ("model", f"model forward alone, pre-made batches of {args.batch_size}"),
        ("fastai", "per-file loop: fastai Learner.predict(path)"),
        ("predictor", "per-file loop: earshot Predictor.predict(path)"),
    ):
        print(
            f"{what:<58}{rate[key]:>10.2f}{rate[key] / model:>7.2f}x{cpu_ms[key]:>13.1f}"
            f"{cpu_ms['model'] / cpu_ms[key]:>7.2f}x"
        )
    print(
        f"\njobs.score / model-only = {rate['job'] / model:.2f}   jobs.score / fastai per-file loop = "
        f"{rate['job'] / rate['fastai']:.2f}   jobs.score / Predictor per-file loop = "
        f"{rate['job'] / rate['predictor']:.2f}"
        f"   (load avg at the end {os.getloadavg()[0]:.1f})"
    )
    print(
        f"by CPU time per file (robust to a shared machine's load): jobs.score / model-only = "
        f"{cpu_ms['model'] / cpu_ms['job']:.2f}   jobs.score / fastai loop = "
        f"{cpu_ms['fastai'] / cpu_ms['job']:.2f}   "
        f"jobs.score / Predictor loop = {cpu_ms['predictor'] / cpu_ms['job']:.2f}"
    )


if __name__ == "__main__":
    main()
