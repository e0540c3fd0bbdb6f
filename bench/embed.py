"""Cost of `earshot embed`: clips/s per CPU core and the peak memory of a run, for each embedder.

    OMP_NUM_THREADS=1 .venv/bin/python bench/embed.py [--clips 200] [--long-min 1,10] [--work DIR]

Generates `--clips` 5 s clips (44.1 kHz, 16-bit WAV) and long recordings of `--long-min` minutes, then runs
the job (`python -m jobs.embed ... --threads 1 --workers 1`) once per embedder and input, each under a
small parent that reads the job's resource usage (CPU seconds of the job and its decoding process, and the
largest peak RSS among them). Start-up (imports, model load) is measured on a run over one clip and
subtracted from the CPU time, so clips/s per core is the steady rate. Embedders: the aisfx backbone
(pretrained weights, when installed) and an untrained xresnet18 earshot model at the default AudioConfig
(its penultimate 512-d features; random weights cost what trained ones do).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

_RUN = """
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": r.returncode, "cpu_s": u.ru_utime + u.ru_stime, "peak_mb": u.ru_maxrss / 1024,
                  "out": r.stdout[-400:], "err": r.stderr[-400:]}))
"""


def make_inputs(work: Path, clips: int, long_min: list[float]) -> dict[str, Path]:
    from learner.data.sounds import make_sound

    rng = np.random.default_rng(0)
    sr = 44100
    folders = {"clips": work / "clips", "one": work / "one"}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    kinds = ["tone", "chirp", "noise", "clicks"]
    for i in range(clips):
        p = folders["clips"] / f"c{i:04d}.wav"
        if not p.exists():
            sf.write(p, make_sound(kinds[i % 4], sr, 5.0, rng), sr, subtype="PCM_16")
    shutil.copy(folders["clips"] / "c0000.wav", folders["one"] / "c0000.wav")
    for m in long_min:
        p = work / f"long{m:g}min" / "long.wav"
        p.parent.mkdir(exist_ok=True)
        if not p.exists():
            with sf.SoundFile(p, "w", sr, 1, "PCM_16") as f:
                for k in range(int(m * 60 / 5)):
                    f.write(make_sound(kinds[k % 4], sr, 5.0, rng))
        folders[f"long{m:g}min"] = p.parent
    return folders


def make_model(folder: Path) -> Path:
    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model.registry import create_model, get_arch

    cfg = AudioConfig()
    if not (folder / "config.json").exists():
        net = create_model("xresnet18", 4, cfg)
        config = {"arch": "xresnet18", "input": get_arch("xresnet18").input, "classes": list("abcd")}
        save_model_dir(folder, net.state_dict(), {**config, "audio": cfg.to_dict()})
    return folder


def run_job(model: str, src: Path, out: Path, windows: str | None) -> dict:
    cmd = [sys.executable, "-m", "jobs.embed", "--model", model, str(src), "--output", str(out)]
    cmd += ["--threads", "1", "--workers", "1", "--quiet", "--overwrite"]
    cmd += ["--windows", windows] if windows else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _RUN, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["rc"]:
        raise RuntimeError(res["err"])
    return res


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--long-min", default="1,10")
    p.add_argument("--work", default=None)
    p.add_argument("--embedders", default="aisfx,xresnet18")
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="earshot-embed-bench-"))
    long_min = [float(m) for m in a.long_min.split(",") if m]
    inputs = make_inputs(work, a.clips, long_min)
    models = {"aisfx": "aisfx", "xresnet18": str(make_model(work / "xresnet18"))}
    print(f"# load before: {os.getloadavg()}", flush=True)
    for name in a.embedders.split(","):
        model = models[name]
        base = run_job(model, inputs["one"], work / "o.parquet", None)
        row = run_job(model, inputs["clips"], work / "o.parquet", None)
        steady = row["cpu_s"] - base["cpu_s"]
        print(
            json.dumps(
                {
                    "embedder": name,
                    "input": f"{a.clips} clips of 5 s",
                    "startup_cpu_s": round(base["cpu_s"], 1),
                    "cpu_s": round(row["cpu_s"], 1),
                    "clips_per_cpu_s": round((a.clips - 1) / steady, 2),
                    "peak_mb": round(row["peak_mb"]),
                }
            ),
            flush=True,
        )
        for m in long_min:
            for windows in (None, "5,2.5"):
                r = run_job(model, inputs[f"long{m:g}min"], work / "o.parquet", windows)
                audio_s = m * 60
                print(
                    json.dumps(
                        {
                            "embedder": name,
                            "input": f"one {m:g} min file" + (f", windows {windows}" if windows else ""),
                            "cpu_s": round(r["cpu_s"], 1),
                            "audio_s_per_cpu_s": round(audio_s / max(1e-9, r["cpu_s"] - base["cpu_s"]), 1),
                            "peak_mb": round(r["peak_mb"]),
                        }
                    ),
                    flush=True,
                )
    print(f"# load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
