"""Does training collapse when another process uses the CPU, and which thread setting avoids it?

One training epoch (xresnet18 from scratch on generated 1 s clips), each thread setting in its own process,
on the machine as it is ("quiet") and with one extra busy process (a Python spin loop pinned to core 0),
all settings interleaved in one run so that they see the same background load.

    .venv/bin/python bench/train_threads.py [--clips 256] [--repeats 2] [--settings default,1,passive,auto]

Prints per setting and condition: the epoch's wall seconds, the process's CPU seconds, and busy / quiet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import ROOT, parser  # first: it puts the checkout on the import path

SETTINGS = {  # name → environment changes (None: remove the variable); "auto" is learner.train.threads
    "default": {
        "OMP_NUM_THREADS": None,
        "OMP_WAIT_POLICY": None,
    },  # torch: one thread per core, spinning waits
    "1": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": None},
    "passive": {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": "PASSIVE"},  # all cores, sleeping waits
    "auto": {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None, "EARSHOT_THREADS_AUTO": "1"},
}


def child(data: str, out: str, epochs: int) -> None:
    if os.environ.get("EARSHOT_THREADS_AUTO"):
        from learner.train.threads import configure_threads

        configure_threads("auto")
    import torch

    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    cfg = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=160, n_fft=512, mixup=0.0)
    args = TrainArgs(
        data=data,
        out=out,
        arch="xresnet18",
        epochs=epochs,
        pretrained="none",
        bs=32,
        progress=False,
        pickle=False,
        workers=1,
        signals="memory",
    )
    cpu0 = time.process_time()
    result = train(args, cfg)
    print(
        json.dumps(
            {
                "fit_s": result.metrics["train_time_s"],
                "cpu_s": time.process_time() - cpu0,
                "threads": torch.get_num_threads(),
            }
        )
    )


def spinner() -> subprocess.Popen:
    code = "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def run_one(setting: str, data: Path, out: Path, epochs: int) -> dict:
    env = dict(os.environ)
    for k, v in SETTINGS[setting].items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cmd = [sys.executable, __file__, "--child", str(data), str(out), "--epochs", str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = parser(
        __doc__,
        clips=256,
        epochs=1,
        repeats=2,
        settings="default,1,passive,auto",
        conditions=("quiet,busy", "quiet = the machine as it is; busy = plus one spin loop"),
    )
    ap.add_argument("--child", nargs=2, metavar=("DATA", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.epochs)
        return
    from learner.data.sounds import make_dataset

    tmp = Path(tempfile.mkdtemp())
    data = make_dataset(tmp / "data", n_per_class=args.clips // 4, sr=16000, duration=1.0)
    settings = args.settings.split(",")
    rows: dict[tuple[str, str], list[dict]] = {}
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for r in range(args.repeats):
        for condition in args.conditions.split(","):
            spin = spinner() if condition == "busy" else None
            try:
                for s in settings:
                    res = run_one(s, data, tmp / f"m-{s}-{condition}-{r}", args.epochs)
                    rows.setdefault((s, condition), []).append(res)
                    print(
                        f"  {s:8s} {condition:5s} fit {res['fit_s']:6.1f} s  cpu {res['cpu_s']:6.1f} s  "
                        f"threads {res['threads']}  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            finally:
                if spin:
                    spin.kill()
                    spin.wait()
    print(f"load average at end: {os.getloadavg()}")
    print("\n| setting | threads | quiet fit s | busy fit s | busy / quiet | quiet CPU s | busy CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in settings:
        q, b = rows.get((s, "quiet")), rows.get((s, "busy"))
        q, b = q or b, b or q  # one condition only: both columns show it
        qf, bf = min(x["fit_s"] for x in q), min(x["fit_s"] for x in b)
        qc, bc = min(x["cpu_s"] for x in q), min(x["cpu_s"] for x in b)
        print(f"| {s} | {q[0]['threads']} | {qf:.1f} | {bf:.1f} | {bf / qf:.2f} | {qc:.1f} | {bc:.1f} |")
    print("(best of the repeats; fit s = fastai's fit of the epochs, CPU s = the whole process)")


if __name__ == "__main__":
    main()
