"""Is the data pipeline the bottleneck of training? Batches/s of the full fastai pipeline + training step,
against the training step alone on the same (pre-made) batches, measured side by side in one run.

    .venv/bin/python bench/train_pipeline.py [--clips 256] [--bs 32] [--batches 12] [--arch xresnet18]

Goal: full / step-only ≥ 0.9 (the pipeline hides behind the model step).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from benchkit import parser  # first: it puts the checkout on the import path


def main() -> None:
    args = parser(__doc__, clips=256, bs=32, batches=12, arch="xresnet18", duration=5.0).parse_args()

    import torch

    from learner.config import AudioConfig
    from learner.data.sounds import make_dataset
    from learner.train.fit import TrainArgs, build_learner, prepare_data

    tmp = Path(tempfile.mkdtemp())
    per_class = args.clips // 4
    make_dataset(tmp / "data", n_per_class=per_class, sr=22050, duration=args.duration)
    cfg = AudioConfig(duration=args.duration)  # the defaults: 22.05 kHz, 128 mels, SpecAugment on
    targs = TrainArgs(
        data=str(tmp / "data"),
        out=str(tmp / "out"),
        arch=args.arch,
        bs=args.bs,
        pretrained="none",
        progress=False,
    )
    used, signals, _, classes = prepare_data(targs, cfg)
    learn, _, _ = build_learner(targs, cfg, used, signals, classes, tmp / "out")
    model, dl = learn.model.train(), learn.dls.train
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        xb, yb = xb.as_subclass(torch.Tensor), yb.as_subclass(torch.Tensor)
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()

    n = args.batches
    it = iter(dl)
    warm = next(it)
    step(*warm)  # warm-up (allocations, thread pools)

    # 1) full pipeline: fetch each batch from the fastai DataLoader (crop, features, SpecAugment) + step
    made = []
    t0 = time.perf_counter()
    for _ in range(n):
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(dl)
            xb, yb = next(it)
        step(xb, yb)
        made.append((xb.clone(), yb.clone()))
    full = n / (time.perf_counter() - t0)

    # 2) the model step alone on the very same batches, already made
    t0 = time.perf_counter()
    for xb, yb in made:
        step(xb, yb)
    step_only = n / (time.perf_counter() - t0)

    # 3) the pipeline alone (for reference)
    t0 = time.perf_counter()
    it = iter(dl)
    for _ in range(n):
        try:
            next(it)
        except StopIteration:
            it = iter(dl)
    pipe_only = n / (time.perf_counter() - t0)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    print(
        f"{args.arch}, bs {args.bs}, {args.duration:g} s clips at {cfg.sample_rate} Hz, {cfg.n_mels} mels, "
        f"{n} batches"
    )
    print(f"full pipeline + step : {full:7.3f} batches/s")
    print(f"step alone           : {step_only:7.3f} batches/s")
    print(f"pipeline alone       : {pipe_only:7.3f} batches/s")
    print(f"ratio full/step      : {full / step_only:7.3f}  (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
