"""Inference latency of torch, ONNX and ONNX int8, side by side in one run (issue 7; extends issue 4's).

    .venv/bin/python bench/latency.py [--model DIR] [--threads 2] [--runs 200] [--cold 5] [--rounds 2]
    [--record]
                                      [--agree-model TRAINED_EXPORTED_DIR]

Without --model it builds a default-AudioConfig (22.05 kHz, 5 s, 128 mels) xresnet18 with random weights
(timing does not depend on them), exports model.onnx + model.int8.onnx, and writes a 5 s WAV at 22.05 kHz.
Per backend, each in its own fresh process (as a server would run one backend): cold start (spawn →
`python -m jobs.predict` prints its first line), imports, model-ready time after imports, per-clip p50/p95
end to end (decode included, file on disk), the model-only forward for reference, batch-64 clips/s, size
on disk, and the CPU time of one prediction on one thread (the cost of the work, little moved by load).
Rounds alternate the backend order; the best round per number is kept (the machine is shared).
--record writes the table into bench/RESULTS.md under "## Inference latency" (only that section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import ROOT, parser  # first: it puts the checkout on the import path

BACKENDS = ("torch", "onnx", "onnx-int8")
FILES = {"torch": "model.safetensors", "onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
HEAVY = ("torch", "torchaudio", "fastai", "timm")


def child(backend: str, model: str, clip: str, batch_dir: str, runs: int, threads: int) -> None:
    """One backend in a fresh process: prints a JSON line of timings."""
    t0 = time.perf_counter()
    import numpy as np

    from learner.serve.predictor import Predictor

    if backend == "torch":  # what TorchBackend imports, so that "ready" excludes library imports
        import learner.model.frontend  # noqa: F401
        import learner.model.registry  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
    t1 = time.perf_counter()
    p = Predictor.from_dir(model, backend=backend, threads=threads, batch_size=64)
    t2 = time.perf_counter()
    p.predict(clip, top_k=1)
    t3 = time.perf_counter()

    def timed(fn, n: int) -> list[float]:
        out = []
        for _ in range(n):
            s = time.perf_counter()
            fn()
            out.append(time.perf_counter() - s)
        return out

    for _ in range(5):
        p.predict(clip, top_k=1)
    e2e = timed(lambda: p.predict(clip, top_k=1), runs)
    wave = p.prepare(p.decode(clip).samples)[None]
    fwd = timed(lambda: p.backend(wave), runs)
    dec = timed(lambda: p.decode(clip), max(20, runs // 4))
    prep_sig = p.decode(clip).samples
    prep = timed(lambda: p.prepare(prep_sig), max(20, runs // 4))
    files = sorted(str(f) for f in Path(batch_dir).glob("*.wav"))[:64]
    p.predict_many(files, top_k=1)
    b64 = timed(lambda: p.predict_many(files, top_k=1), 3)
    waves = np.stack([p.prepare(p.decode(f).samples) for f in files])
    b64m = timed(lambda: p.backend(waves), 3)
    # CPU time on one thread (the caller's): what the work costs, barely moved by other processes' load
    p1 = Predictor.from_dir(model, backend=backend, threads=1, batch_size=64)

    def cpu(fn, n: int) -> float:
        fn()
        out = []
        for _ in range(n):
            s = time.thread_time()
            fn()
            out.append(time.thread_time() - s)
        return 1e3 * float(np.quantile(out, 0.25))

    e2e_cpu = cpu(lambda: p1.predict(clip, top_k=1), max(20, runs // 4))
    fwd_cpu = cpu(lambda: p1.backend(wave), max(20, runs // 4))
    q = np.quantile
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "ready_s": t2 - t1,
                "first_s": t3 - t2,
                "p50_ms": 1e3 * q(e2e, 0.5),
                "p95_ms": 1e3 * q(e2e, 0.95),
                "fwd_ms": 1e3 * q(fwd, 0.5),
                "decode_ms": 1e3 * q(dec, 0.5),
                "prepare_ms": 1e3 * q(prep, 0.5),
                "b64_cps": 64 / min(b64),
                "b64_model_cps": 64 / min(b64m),
                "e2e_cpu1_ms": e2e_cpu,
                "fwd_cpu1_ms": fwd_cpu,
                "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)),
            }
        )
    )


def cold_start(backend: str, model: Path, clip: Path, threads: int) -> float:
    """Seconds from spawning `python -m jobs.predict` to its first line on stdout."""
    cmd = [
        sys.executable,
        "-m",
        "jobs.predict",
        str(clip),
        "--model",
        str(model),
        "--backend",
        backend,
        "--threads",
        str(threads),
        "--top-k",
        "1",
    ]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t
    proc.wait()
    if proc.returncode != 0 or not line.startswith(str(clip)):
        raise SystemExit(f"cold start ({backend}) failed: {proc.stderr.read().strip()}")
    return elapsed


def build_model(root: Path) -> Path:
    import torch

    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model.registry import create_model
    from learner.serve.export import export_model_dir

    torch.manual_seed(0)
    cfg = AudioConfig()
    net = create_model("xresnet18", 10, cfg)
    for (
        m
    ) in net.modules():  # trained-like BatchNorm (fresh ones are identities, zero-init ones zero whole convs)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    folder = save_model_dir(
        root / "xresnet18",
        net.state_dict(),
        {"arch": "xresnet18", "classes": [f"class{i}" for i in range(10)], "audio": cfg.to_dict()},
    )
    export_model_dir(folder, int8=True)
    return folder


def write_clips(root: Path, sr: int, seconds: float) -> tuple[Path, Path]:
    import numpy as np
    import soundfile as sf

    from learner.config import AudioConfig
    from learner.serve.export import generated_clips

    clips = generated_clips(AudioConfig(sample_rate=sr, duration=seconds), 64, seed=5)
    batch = root / "batch"
    batch.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(clips):
        sf.write(batch / f"clip{i:02d}.wav", x, sr, subtype="PCM_16")
    clip = root / "clip_5s.wav"
    sf.write(clip, np.asarray(clips[0]), sr, subtype="PCM_16")
    return clip, batch


def agreement(model: Path, n: int = 512) -> dict[str, float]:
    """torch vs onnx max |Δp|, and int8 vs fp32 top-1 agreement, on generated clips (of the model's own
    classes when it was trained on learner.data.sounds's sounds)."""
    import numpy as np

    from learner.data.sounds import CLASSES, make_sound
    from learner.serve.export import generated_clips
    from learner.serve.predictor import Predictor

    ps = {b: Predictor.from_dir(model, backend=b) for b in BACKENDS}
    cfg = ps["torch"].cfg
    waves = generated_clips(cfg, n, seed=21)
    if set(ps["torch"].classes) <= set(
        CLASSES
    ):  # a model trained on learner.data.sounds sounds: test on its own kind
        rng = np.random.default_rng(21)
        kinds = ps["torch"].classes
        waves = np.stack(
            [make_sound(kinds[i % len(kinds)], cfg.sample_rate, cfg.duration, rng) for i in range(n)]
        )
    probs = {b: p.predict_waves(waves) for b, p in ps.items()}
    return {
        "max_dp": float(np.abs(probs["onnx"] - probs["torch"]).max()),
        "int8_top1": float(np.mean(probs["onnx-int8"].argmax(1) == probs["onnx"].argmax(1))),
        "n": n,
    }


def table(
    res: dict[str, dict], agree: dict[str, float], model: Path, trained: dict[str, float] | None = None
) -> str:
    def row(label: str, key: str, fmt: str) -> str:
        return f"| {label} | " + " | ".join(format(res[b][key], fmt) for b in BACKENDS) + " |"

    lines = [
        "| | torch | onnx | onnx-int8 |",
        "|---|---:|---:|---:|",
        row("cold start: spawn → first prediction printed (s)", "cold_s", ".2f"),
        row("imports (s)", "import_s", ".2f"),
        row("model ready after imports (s)", "ready_s", ".2f"),
        row("per clip p50, 5 s WAV end to end (ms)", "p50_ms", ".1f"),
        row("per clip p95 (ms)", "p95_ms", ".1f"),
        row("model-only forward, 1 clip (ms)", "fwd_ms", ".1f"),
        row("per clip end to end, CPU time on 1 thread (ms)", "e2e_cpu1_ms", ".1f"),
        row("model-only forward, CPU time on 1 thread (ms)", "fwd_cpu1_ms", ".1f"),
        "| decode / trim+crop, in the p50 (ms) | "
        + " | ".join(f"{res[b]['decode_ms']:.2f} / {res[b]['prepare_ms']:.2f}" for b in BACKENDS)
        + " |",
        row("batch-64 clips/s, files end to end", "b64_cps", ".0f"),
        row("batch-64 clips/s, model only", "b64_model_cps", ".0f"),
        "| size on disk (MB) | "
        + " | ".join(f"{(model / FILES[b]).stat().st_size / 2**20:.1f}" for b in BACKENDS)
        + " |",
    ]
    t, o, q = res["torch"], res["onnx"], res["onnx-int8"]
    goals = [
        ("ONNX cold start ≤ 1.5 s", o["cold_s"] <= 1.5, f"{o['cold_s']:.2f} s"),
        (
            "ONNX p50 ≤ 8 ms end to end",
            o["p50_ms"] <= 8,
            f"{o['p50_ms']:.1f} ms (int8 {q['p50_ms']:.1f} ms); CPU time on 1 thread {o['e2e_cpu1_ms']:.1f} "
            "ms "
            f"(int8 {q['e2e_cpu1_ms']:.1f} ms)",
        ),
        (
            "torch p50 ≤ 1.2 × its model-only forward",
            t["p50_ms"] <= 1.2 * t["fwd_ms"],
            f"{t['p50_ms']:.1f} / {t['fwd_ms']:.1f} = {t['p50_ms'] / t['fwd_ms']:.2f}×",
        ),
        ("torch p50 ≤ 85 ms (issue 4)", t["p50_ms"] <= 85, f"{t['p50_ms']:.1f} ms"),
        ("torch ready after imports ≤ 2.3 s (issue 4)", t["ready_s"] <= 2.3, f"{t['ready_s']:.2f} s"),
        (
            "int8 ≥ 1.5× faster than fp32 (model forward)",
            o["fwd_ms"] >= 1.5 * q["fwd_ms"],
            f"{o['fwd_ms'] / q['fwd_ms']:.2f}× forward, {o['p50_ms'] / q['p50_ms']:.2f}× end to end, "
            f"{q['b64_model_cps'] / o['b64_model_cps']:.2f}× batch-64, "
            f"{o['fwd_cpu1_ms'] / q['fwd_cpu1_ms']:.2f}× in 1-thread CPU time",
        ),
        (
            "int8 top-1 agreement ≥ 99 %",
            (trained or agree)["int8_top1"] >= 0.99,
            (
                f"{trained['int8_top1']:.1%} on a trained model ({trained['n']} clips of its classes), "
                if trained
                else ""
            )
            + f"{agree['int8_top1']:.1%} on the random-weight timing model ({agree['n']} generated clips)",
        ),
    ]
    lines += ["", "| goal | met | measured |", "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {m} |" for g, ok, m in goals]
    lines.append(
        f"\ntorch vs onnx max |Δp|: {agree['max_dp']:.1e} on the timing model"
        + (f", {trained['max_dp']:.1e} on the trained model" if trained else "")
        + ". "
        f"Heavy modules in the ONNX processes: {o['heavy'] or 'none'} / {q['heavy'] or 'none'}."
    )
    return "\n".join(lines)


def record(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    head = "## Inference latency"
    if head in old:
        before, rest = old.split(head, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1 :] if nxt >= 0 else ""
        new = before + text.rstrip() + "\n" + ("\n" + after if after else "")
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    path.write_text(new)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model", default=None, help="an exported model directory (default: random xresnet18)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200, help="timed predictions per backend and round")
    ap.add_argument("--cold", type=int, default=5, help="cold starts per backend and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="write the table into bench/RESULTS.md")
    ap.add_argument(
        "--agree-model",
        default=None,
        metavar="DIR",
        help="also measure int8 agreement on this trained, exported model (random weights are a weak test)",
    )
    ap.add_argument(
        "--child", nargs=4, metavar=("BACKEND", "MODEL", "CLIP", "BATCH_DIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        child(*args.child, runs=args.runs, threads=args.threads)
        return

    with tempfile.TemporaryDirectory(prefix="earshot-latency-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    """The side-by-side measurement (models, clips and outputs live under `tmp`)."""
    model = Path(args.model) if args.model else build_model(tmp)
    sr = json.loads((model / "config.json").read_text())["audio"]["sample_rate"]
    clip, batch = write_clips(tmp, sr, 5.0)
    agree = agreement(model)
    trained = agreement(Path(args.agree_model)) if args.agree_model else None
    load0 = os.getloadavg()
    res: dict[str, dict] = {b: {} for b in BACKENDS}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for r in range(args.rounds):
        order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
        for b in order:
            colds = [cold_start(b, model, clip, args.threads) for _ in range(args.cold)]
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    b,
                    str(model),
                    str(clip),
                    str(batch),
                    "--runs",
                    str(args.runs),
                    "--threads",
                    str(args.threads),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"{b}: {out.stderr.strip()}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            m["cold_s"] = statistics.median(colds)
            for k, v in m.items():  # best round per number: lowest times, highest throughput
                if k not in res[b] or (
                    v > res[b][k]
                    if k.endswith("_cps")
                    else (v < res[b][k] if isinstance(v, float) else False)
                ):
                    res[b][k] = v
            print(
                f"round {r + 1} {b}: "
                + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()),
                file=sys.stderr,
            )
    load1 = os.getloadavg()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    import onnxruntime
    import torch

    text = (
        f"## Inference latency\n\n`bench/latency.py --threads {args.threads} --runs {args.runs} --cold "
        f"{args.cold} "
        f"--rounds {args.rounds}` ({time.strftime('%Y-%m-%d')}): xresnet18, default AudioConfig (22.05 kHz, "
        "5 s, "
        f"128 mels), {'random weights' if not args.model else model}; {args.threads} threads per backend.\n"
        f"Machine: {os.cpu_count()}-core {cpu}, no GPU, shared with other engineers' work "
        f"(load average {load0[0]:.1f} at start, {load1[0]:.1f} at end); torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}. Best of {args.rounds} rounds per number; cold start = "
        "median of "
        f"{args.cold} spawns per round.\n\n" + table(res, agree, model, trained) + "\n"
    )
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    main()
