"""Training on more audio than fits in memory: peak resident memory and throughput of a 1-epoch run with the
decoded signals in memory and in the on-disk store (`learner.data.store`), on generated 1 s clips.

    .venv/bin/python bench/train_scale.py [--clips 5000,50000] [--arch mfcc_cnn1d] [--loader-workers 0]

Each run is its own process (peak RSS = its ru_maxrss); the store is built first (timed, in its own process)
and reused by the measured runs. Acceptance (issue #15): store peak RSS at the largest size within 1.5× of the
smallest; store throughput ≥ 0.9× in memory on the smallest set (runs interleaved: memory, store, memory,
store).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

SR = 16000


def make_clips(root: Path, n: int, seed: int = 0) -> Path:
    """`n` one-second clips in four classes (tone, chirp, noise bursts, clicks) as 16-bit WAV files."""
    import soundfile as sf

    if (
        sum(1 for _ in root.rglob("*.wav")) == n
    ):  # kept from an earlier run (--tmp): same files, same store keys
        return root
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    for i in range(n):
        kind = i % 4
        folder = root / f"class{kind}"
        if i < 4:
            folder.mkdir(parents=True, exist_ok=True)
        f = rng.uniform(300, 1200)
        if kind == 0:
            x = np.sin(2 * np.pi * f * t)
        elif kind == 1:
            x = np.sin(2 * np.pi * (f * t + 1500 * t**2))
        elif kind == 2:
            x = rng.normal(0, 0.3, SR) * (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0)
        else:
            x = (np.arange(SR) % int(SR / rng.uniform(8, 20)) < 30).astype(float)
        x = 0.5 * x / (np.abs(x).max() + 1e-9) + rng.normal(0, 0.005, SR)
        sf.write(folder / f"c{i:06d}.wav", x.astype(np.float32), SR, subtype="PCM_16")
    return root


def child(data: str, out: str, signals: str, store: str, arch: str, loader_workers: int) -> None:
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    cfg = AudioConfig(sample_rate=SR, duration=1.0, n_mels=64, hop_length=160, n_fft=512, mixup=0.0)
    args = TrainArgs(
        data=data, out=out, arch=arch, epochs=1, pretrained="none", bs=64, progress=False, pickle=False,
        signals=signals, store=store or None, loader_workers=loader_workers,  # what this bench varies
    )
    start = time.time()
    result = train(args, cfg)
    m = result.metrics
    print(
        json.dumps(
            {
                "fit_s": m["train_time_s"],
                "fit_cpu_s": m["train_cpu_s"],
                "n_train": m["n_train"],
                "total_s": time.time() - start,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "accuracy": m["accuracy"],
            }
        )
    )


def child_build(data: str, store: str) -> None:
    """Decode every clip into the store (what the first training run on a new set does), without a fit."""
    from learner.config import AudioConfig
    from learner.data.store import open_store

    cfg = AudioConfig(sample_rate=SR, duration=1.0, n_mels=64, hop_length=160, n_fft=512, mixup=0.0)
    paths = sorted(str(p) for p in Path(data).rglob("*.wav"))
    start = time.time()
    _, failures = open_store(paths, cfg, store, progress=False)
    print(
        json.dumps(
            {
                "build_s": time.time() - start,
                "files": len(paths),
                "failures": len(failures),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def build(data: Path, store: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child-build", str(data), str(store)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-4000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  store built: {res['files']} files in {res['build_s']:.0f} s "
        f"({res['files'] / res['build_s']:.0f} files/s, {res['failures']} failures), "
        f"peak RSS {res['peak_rss_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return res


def run(data: Path, out: Path, signals: str, store: Path | None, arch: str, loader_workers: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(data),
        str(out),
        signals,
        str(store or ""),
        "--arch",
        arch,
        "--loader-workers",
        str(loader_workers),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(proc.stderr[-4000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["clips_per_s"] = res["n_train"] / res["fit_s"]
    res["clips_per_cpu_s"] = res["n_train"] / res["fit_cpu_s"]
    print(
        f"  {signals:6s} {res['n_train']:6d} train clips: fit {res['fit_s']:7.1f} s "
        f"({res['clips_per_s']:6.1f} clips/s, "
        f"{res['clips_per_cpu_s']:6.1f} per CPU-s), "
        f"peak RSS {res['peak_rss_mb']:7.0f} MB, total {res['total_s']:6.0f} s, load "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return res


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--clips", default="5000,50000", help="comma-separated set sizes, smallest first")
    ap.add_argument("--arch", default="mfcc_cnn1d", help="a small model makes the data path count the most")
    ap.add_argument("--loader-workers", type=int, default=0)
    ap.add_argument(
        "--repeats", type=int, default=2, help="interleaved memory/store pairs on the smallest set"
    )
    ap.add_argument(
        "--tmp", default=None, help="where to write the clips and the store (default: a temp dir)"
    )
    ap.add_argument("--child", nargs=4, metavar=("DATA", "OUT", "SIGNALS", "STORE"))
    ap.add_argument("--child-build", nargs=2, metavar=("DATA", "STORE"))
    args = ap.parse_args()
    if args.child_build:
        child_build(*args.child_build)
        return
    if args.child:
        child(*args.child, args.arch, args.loader_workers)
        return
    sizes = [int(s) for s in args.clips.split(",")]
    tmp = Path(args.tmp or tempfile.mkdtemp())
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    results: dict[tuple[str, int], list[dict]] = {}
    for n in sizes:
        t = time.time()
        data = make_clips(tmp / f"clips{n}", n)
        print(f"{n} clips generated in {time.time() - t:.0f} s", flush=True)
        store = tmp / f"store{n}"
        build(data, store)  # decoded once, outside the measured runs (which then only read it)
        pairs = args.repeats if n == sizes[0] else 1
        for r in range(pairs):
            if n == sizes[0]:
                results.setdefault(("memory", n), []).append(
                    run(data, tmp / f"out-m{n}-{r}", "memory", None, args.arch, args.loader_workers)
                )
            results.setdefault(("store", n), []).append(
                run(data, tmp / f"out-d{n}-{r}", "disk", store, args.arch, args.loader_workers)
            )
    small, big = sizes[0], sizes[-1]
    best = {k: max(v, key=lambda r: r["clips_per_s"]) for k, v in results.items()}
    rss = {k: min(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    print(f"\nload average at end: {os.getloadavg()}")
    cpu_best = {k: max(r["clips_per_cpu_s"] for r in v) for k, v in results.items()}
    print("| run | clips | peak RSS MB | clips/s (best) | clips per CPU-s (best) |")
    print("|---|---:|---:|---:|---:|")
    for (mode, n), _ in results.items():
        print(
            f"| {mode} | {n} | {rss[(mode, n)]:.0f} | {best[(mode, n)]['clips_per_s']:.1f} | "
            f"{cpu_best[(mode, n)]:.1f} |"
        )
    print(
        f"store peak RSS {big} / {small} clips: {rss[('store', big)] / rss[('store', small)]:.2f}× (goal ≤ "
        "1.5)"
    )
    print(f"memory peak RSS {big} / {small} clips would hold {big / small:.0f}× the decoded signals")
    print(
        f"store / memory throughput on {small} clips: "
        f"{best[('store', small)]['clips_per_s'] / best[('memory', small)]['clips_per_s']:.2f} wall, "
        f"{cpu_best[('store', small)] / cpu_best[('memory', small)]:.2f} CPU (goal ≥ 0.9)"
    )


if __name__ == "__main__":
    main()
