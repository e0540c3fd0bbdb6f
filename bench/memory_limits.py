"""Peak memory of long and heavy files through the scorer, jobs.predict and the demo's decoding (issue 13,
item 2).

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_limits.py [--work DIR] [--hours 3] [--compare-minutes 20]

Generates, in DIR (a temp folder unless given; files are kept there for the next run), FLACs that are mostly
digital silence with a short sound every 10 s (so they compress to a few MB): 3 hours at 384 kHz mono, 3 hours
at 48 kHz stereo, 1 hour at 384 kHz mono (inside the scorer's sample budget, so it is decoded), and the 590 s
384 kHz 8-channel file of the issue. The model is an untrained `mfcc_cnn1d` at the default AudioConfig
(22.05 kHz, 5 s clips): cheap to run, and memory is the decoder's, not the network's. Each case runs as its
own process (`python -m jobs.score` / `jobs.predict`, or a small decode call); RSS of the process and all its
children is read from /proc every 50 ms: the peak of the whole tree's sum, and each process's own peak
(VmHWM).

`--compare-minutes M` also runs jobs.predict on an M-minute 48 kHz stereo file both ways side by side, block
by
block (today's path) and held whole (the path before), for the ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

GB = 2**30


def make_flac(path: Path, sr: int, channels: int, seconds: float) -> Path:
    """Mostly silence: a 0.2 s chirp-like burst every 10 s, in blocks (never the whole file in memory)."""
    import soundfile as sf

    if path.exists():
        return path
    tmp = path.with_suffix(".part.flac")
    block = 10 * sr
    t = np.arange(int(0.2 * sr)) / sr
    burst = (0.3 * np.sin(2 * np.pi * (500 + 3000 * t) * t)).astype(np.float32)
    with sf.SoundFile(str(tmp), "w", sr, channels, "PCM_16", format="FLAC") as f:
        done, total = 0, int(seconds * sr)
        while done < total:
            n = min(block, total - done)
            x = np.zeros((n, channels), np.float32)
            x[: min(n, burst.size)] = burst[: min(n, burst.size), None]
            f.write(x)
            done += n
    tmp.rename(path)
    return path


def make_model(folder: Path) -> Path:
    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model import create_model, get_arch

    if not (folder / "config.json").exists():
        import torch

        torch.manual_seed(0)
        cfg = AudioConfig()
        classes = ["tone", "chirp", "noise", "clicks"]
        net = create_model("mfcc_cnn1d", len(classes), cfg).eval()
        save_model_dir(
            folder,
            net.state_dict(),
            {
                "arch": "mfcc_cnn1d",
                "input": get_arch("mfcc_cnn1d").input,
                "classes": classes,
                "audio": cfg.to_dict(),
            },
        )
    return folder


def _tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _status_kb(pid: int, key: str, file: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict[str, str]) -> dict:
    """Run `cmd`, sampling every 50 ms: the peak of the tree's summed RSS and summed PSS (shared pages counted
    once), the main process's peak RSS (VmHWM) and the largest child's sampled peak RSS (a child's VmHWM would
    count the parent's pages it shares between fork and exec)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    tree_rss = tree_pss = main = 0
    rss: dict[int, int] = {}
    while proc.poll() is None:
        pids = _tree(proc.pid)
        now = {p: _status_kb(p, "VmRSS") for p in pids}
        tree_rss = max(tree_rss, sum(now.values()))
        tree_pss = max(tree_pss, sum(_status_kb(p, "Pss", "smaps_rollup") for p in pids))
        main = max(main, _status_kb(proc.pid, "VmHWM"))
        for p, kb in now.items():
            if p != proc.pid:
                rss[p] = max(rss.get(p, 0), kb)
        time.sleep(0.05)
    out, err = proc.communicate()
    return {
        "seconds": time.perf_counter() - start,
        "rc": proc.returncode,
        "tree_gb": tree_rss * 1024 / GB,
        "tree_pss_gb": tree_pss * 1024 / GB,
        "main_gb": main * 1024 / GB,
        "worker_gb": max(rss.values(), default=0) * 1024 / GB,
        "out": out.strip(),
        "err": err.strip(),
    }


DECODE = """
import sys, time
from learner.audio import (
    DEMO_MAX_BYTES, DEMO_MAX_S, SCORE_MAX_BYTES, SCORE_MAX_S, AudioDecodeError, ClipPipeline,
)
from learner.config import AudioConfig
pipe = ClipPipeline(AudioConfig())
limits = (DEMO_MAX_S, DEMO_MAX_BYTES) if sys.argv[2] == "demo" else (SCORE_MAX_S, SCORE_MAX_BYTES)
t = time.perf_counter()
try:
    pipe.decode(sys.argv[1], max_duration_s=limits[0], max_bytes=limits[1])  # as the demo
    print(f"decoded in {time.perf_counter() - t:.3f} s")
except AudioDecodeError as e:
    print(f"refused in {(time.perf_counter() - t) * 1000:.1f} ms: {e.reason}")
"""

WHOLE_PREDICT = """
import sys
from learner.audio import decode
from learner.serve.predictor import Predictor
p = Predictor.from_dir(sys.argv[1])
r = p.predict_decoded(decode(sys.argv[2], p.cfg.sample_rate))  # the path before: held whole
print(r.label, len(r.window_starts))
"""


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "--work", default=None, help="folder for the generated files and outputs (default: a temp dir)"
    )
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--compare-minutes", type=float, default=20.0, help="0: skip the side-by-side comparison")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="earshot-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}
    py = sys.executable
    h = args.hours
    t = time.perf_counter()
    model = make_model(work / "model")
    f384 = make_flac(work / f"{h:g}h_384k_mono.flac", 384_000, 1, h * 3600)
    f48 = make_flac(work / f"{h:g}h_48k_stereo.flac", 48_000, 2, h * 3600)
    f384_1h = make_flac(work / "1h_384k_mono.flac", 384_000, 1, 3600)
    f590 = make_flac(work / "590s_384k_8ch.flac", 384_000, 8, 590)
    cases = [
        (
            f"jobs.score, {h:g} h 384 kHz mono ({f384.stat().st_size / 2**20:.0f} MB FLAC)",
            [
                py,
                "-m",
                "jobs.score",
                str(f384),
                "--model",
                str(model),
                "--out",
                str(work / "o384.parquet"),
                "--overwrite",
            ],
        ),
        (
            f"jobs.score --windows 5,2.5, {h:g} h 48 kHz stereo ({f48.stat().st_size / 2**20:.0f} MB)",
            [
                py,
                "-m",
                "jobs.score",
                str(f48),
                "--model",
                str(model),
                "--out",
                str(work / "o48.parquet"),
                "--overwrite",
                "--windows",
                "5,2.5",
            ],
        ),
        (
            f"jobs.score --windows 5,2.5, 1 h 384 kHz mono ({f384_1h.stat().st_size / 2**20:.0f} MB, inside "
            "the budget)",
            [
                py,
                "-m",
                "jobs.score",
                str(f384_1h),
                "--model",
                str(model),
                "--out",
                str(work / "o384_1h.parquet"),
                "--overwrite",
                "--windows",
                "5,2.5",
            ],
        ),
        (f"jobs.predict, {h:g} h 48 kHz stereo", [py, "-m", "jobs.predict", str(f48), "--model", str(model)]),
        (f"jobs.predict, {h:g} h 384 kHz mono", [py, "-m", "jobs.predict", str(f384), "--model", str(model)]),
        (f"decoding with the scorer's limits, {h:g} h 384 kHz mono", [py, "-c", DECODE, str(f384), "score"]),
        ("demo decoding, 590 s 384 kHz 8 channels", [py, "-c", DECODE, str(f590), "demo"]),
    ]
    if args.compare_minutes > 0:
        m = args.compare_minutes
        fm = make_flac(work / f"{m:g}min_48k_stereo.flac", 48_000, 2, m * 60)
        cases += [
            (
                f"jobs.predict, {m:g} min 48 kHz stereo, block by block",
                [py, "-m", "jobs.predict", str(fm), "--model", str(model)],
            ),
            (
                f"Predictor, {m:g} min 48 kHz stereo, held whole (before)",
                [py, "-c", WHOLE_PREDICT, str(model), str(fm)],
            ),
        ]
    print(
        f"files and model ready in {time.perf_counter() - t:.0f} s in {work}; load {os.getloadavg()[0]:.1f}; "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs"
    )
    print(
        "| case | exit | wall s | peak RSS, whole tree (GB) | tree PSS (GB) | main process (GB) | largest "
        "child (GB) "
        "| says |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, cmd in cases:
        r = run_measured(cmd, env)
        says = (r["out"].splitlines() or [""])[-1] if r["rc"] == 0 else (r["err"].splitlines() or [""])[-1]
        if "jobs.score" in cmd and r["rc"] == 0:
            import pyarrow.parquet as pq

            row = pq.read_table(cmd[cmd.index("--out") + 1]).to_pylist()[0]
            says = (
                f"row: error {row['error']!r}"
                if row["error"]
                else (
                    f"row: {row['label']} {row['score']:.3f}, {row['n_windows']} windows, "
                    f"{row['duration_s']:.0f} s"
                )
            )
        print(
            f"| {name} | {r['rc']} | {r['seconds']:.1f} | {r['tree_gb']:.2f} | {r['tree_pss_gb']:.2f} | "
            f"{r['main_gb']:.2f} | "
            f"{r['worker_gb']:.2f} | {says[:160]} |",
            flush=True,
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
