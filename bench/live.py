"""Live mode and Teach (issue 24): label delay after a sound's onset, agreement with a played sequence,
Teach's training time and accuracy on generated takes and on real voices (speech-dev).

    OMP_NUM_THREADS=1 .venv/bin/python bench/live.py [--runs 5] [--draws 5] [--skip-browser]

- live (headless Chromium, `tests/test_demo_browser.py` run `--runs` times as it is: generated sounds
  played as the microphone through Chromium's fake capture device into the Live tab of `python app.py`'s
  page): per sound onset, the seconds until its label was on the page (and ready on the server), p50/p95;
  the share of windows whose label is the sequence's at the window's centre; audio lost on the way;
- teach, generated: 3 classes × 5 takes → Train seconds (wall and CPU) and accuracy on 10 new takes each
  (the Teach tab's own code, `learner.demo.teach`); the browser test's figures for the same, recorded;
- teach, real voices: speech-dev, `--draws` draws of 3 of the 10 words, 5 takes of each from training
  speakers, then every held-out speaker's clip of those words (mean ± std of accuracy): the aisfx head
  alone (its 0.5 s clip, and 1 s), then what Train does (`auto`: the aisfx or the speech_embedding head,
  whichever cross-validates better on the takes).
Prints the machine's load beside every figure: figures taken under load are not the 2-core figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit import CHILD_ENV, DEVSETS, ROOT, parser

SR = 48000


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def browser_runs(runs: int) -> list[dict]:
    out = Path(tempfile.mkdtemp(prefix="earshot-live-bench-")) / "figures.jsonl"
    env = {**CHILD_ENV, "EARSHOT_LIVE_BENCH_OUT": str(out)}
    for k in range(runs):
        what = "live_labels" if k else "live_labels or teach_from"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "tests/test_demo_browser.py",
            "-k",
            what,
            "-p",
            "no:cacheprovider",
        ]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        print(
            f"  browser run {k + 1}/{runs}: {r.stdout.strip().splitlines()[-1] if r.stdout else r.returncode}"
        )
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def report_browser(rows: list[dict]) -> None:
    live = [r for r in rows if "agreement" in r]
    teach = [r for r in rows if "teach_train_s" in r]
    if live:
        page = np.array([d for r in live for d in r["page_delays"]])
        server = np.array([d for r in live for d in r["server_delays"]])
        heard = np.array([r["heard_s"] / r["listened_s"] for r in live])
        loads = ", ".join(f"{r['load'][0]:.1f}" for r in live)
        p50, p95 = np.percentile(page, [50, 95])
        agree = [r["agreement"] for r in live]
        print(
            f"live: {len(live)} runs, {page.size} onsets; label on the page after onset p50 {p50:.2f} s, "
            f"p95 {p95:.2f} s, max {page.max():.2f} s (ready on the server: p95 "
            f"{np.percentile(server, 95):.2f} s)"
        )
        print(
            f"      agreement {np.mean(agree):.3f} (min {min(agree):.3f}); audio heard / streamed "
            f"{heard.mean():.2f} (min {heard.min():.2f}); skipped windows {sum(r['skipped'] for r in live)}; "
            f"1-min load per run: {loads}"
        )
    for r in teach:
        print(
            f"teach in the browser: Train {r['teach_train_s']:.1f} s on the page, "
            f"{r['teach_accuracy']:.0%} of 30 new takes right (load {r['load'][0]:.1f})"
        )


def generated_teach(seed: int = 0) -> None:
    from learner.data.sounds import make_sound
    from learner.demo.teach import Classroom

    rng = np.random.default_rng(seed)

    def take(kind: str) -> np.ndarray:
        s = rng.uniform(1, 2)
        return (
            rng.normal(0, 0.005, int(SR * s)).astype(np.float32)
            if kind == "background"
            else make_sound(kind, SR, s, rng)
        )

    with tempfile.TemporaryDirectory() as tmp:
        t = Classroom(Path(tmp)).get("bench")
        t.set_classes("background, tone, siren")
        t0 = time.perf_counter()
        for k in t.classes:
            for _ in range(5):
                t.add_example(k, (SR, take(k)))
        added = time.perf_counter() - t0
        w0, c0 = time.perf_counter(), time.process_time()
        r = t.train()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        right = [
            r.predictor.predict(take(k), sample_rate=SR, window=None).label == k
            for k in t.classes
            for _ in range(10)
        ]
    print(
        f"teach, generated: 15 takes embedded in {added:.1f} s; Train {wall:.1f} s wall, {cpu:.1f} s CPU;"
        f" {np.mean(right):.0%} of 30 new takes right ({load()})"
    )


def speech_teach(draws: int, clip_s: float, backbone: str = "aisfx") -> None:
    import pandas as pd

    import learner.demo.teach as teach

    teach.CLIP_S = clip_s
    folder = DEVSETS / "speech-dev"
    m = pd.read_csv(folder / "manifest.csv")
    accs, times = [], []
    for d in range(draws):
        rng = np.random.default_rng(100 + d)
        words = sorted(rng.choice(sorted(m.label.unique()), 3, replace=False))
        with tempfile.TemporaryDirectory() as tmp:
            t = teach.Classroom(Path(tmp)).get("bench")
            t.set_classes(", ".join(words))
            for w in words:
                pool = m[(m.label == w) & (m.split == "train")]
                for path in pool.sample(5, random_state=int(rng.integers(1 << 30))).path:
                    t.add_example(w, str(folder / path))
            w0 = time.perf_counter()
            r = t.train(backbone=backbone)
            times.append(time.perf_counter() - w0)
            test = m[m.label.isin(words) & (m.split == "valid")]
            right = [
                r.predictor.predict(str(folder / p), window=None).label == y
                for p, y in zip(test.path, test.label)
            ]
            accs.append(float(np.mean(right)))
            cv = ", ".join(f"{k} {v:.0%}" for k, v in r.cross_validation.items())
            print(f"  draw {d + 1}: {', '.join(words)}: {accs[-1]:.1%} of {len(right)} held-out clips "
                  f"({r.backbone}; inner CV {cv})")  # fmt: skip
    print(
        f"teach, speech-dev (backbone {backbone}, aisfx clip {clip_s:g} s): 3 words × 5 takes from training "
        "speakers → held-out "
        f"speakers {np.mean(accs):.1%} ± {np.std(accs):.1%} over {draws} draws (Train "
        f"{np.mean(times):.1f} s; {load()})"
    )


def main() -> None:
    p = parser(__doc__, runs=(5, "browser runs of the live test"), draws=(5, "speech-dev draws"),
               skip_browser=False)  # fmt: skip
    args = p.parse_args()
    print(f"bench/live.py · {os.cpu_count()} CPUs · {load()}")
    generated_teach()
    if (folder := DEVSETS / "speech-dev").is_dir():
        for clip, backbone in ((0.5, "aisfx"), (1.0, "aisfx"), (0.5, "auto")):  # auto: what Train does
            speech_teach(args.draws, clip, backbone)
    else:
        print(f"teach, speech-dev: skipped ({folder} is absent)")
    if not args.skip_browser:
        report_browser(browser_runs(args.runs))


if __name__ == "__main__":
    main()
