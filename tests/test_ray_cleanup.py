"""Issue 13, item 9: after kill -9 of the driver of a Ray run that started Ray itself, no process of that Ray
session stays and the staging folder leaves OUT at once (learner/score/ray_reaper.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.score import ray_reaper

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the watcher reads Linux /proc")

# A stand-in driver: starts a "raylet" that starts an "agent" (neither dies with the driver, as Ray's agents
# did not), hands the raylet to the watcher, stages a folder, prints the session's processes (pid → start
# time), then waits to be killed, or forgets the folder (as after a commit) and exits normally.
FAKE_DRIVER = """
import json, subprocess, sys, time
from learner.score import ray_reaper
sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
spawn = f"import subprocess, time; subprocess.Popen({sleeper!r}); time.sleep(120)"
raylet = subprocess.Popen([sys.executable, "-c", spawn])
while not ray_reaper.children_of(raylet.pid):
    time.sleep(0.05)
reaper = ray_reaper.start([raylet.pid])
reaper.watch(sys.argv[1])
time.sleep(3 * ray_reaper.REFRESH_S)  # the watcher has followed the agent
table = ray_reaper._table()
pids = [raylet.pid, reaper.proc.pid, *ray_reaper.children_of(raylet.pid)]
if sys.argv[2] == "done":
    reaper.forget(sys.argv[1])
print(json.dumps({p: table[p][1] for p in pids}), flush=True)
time.sleep(0 if sys.argv[2] == "done" else 120)
"""


def _tree(pid: int) -> dict[int, int]:
    known = {pid: ray_reaper._table()[pid][1]}
    ray_reaper._follow(known)
    return known


def _wait_gone(known: dict[int, int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (alive := ray_reaper._alive(known, ray_reaper._table())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("end", ["killed", "done"])
def test_the_watcher_stops_the_session_and_removes_staging_when_the_driver_goes(tmp_path, end):
    staging = tmp_path / "out" / ".ray-staging-test"
    staging.mkdir(parents=True)
    (staging / "part.parquet").write_bytes(b"half written")
    driver = subprocess.Popen(
        [sys.executable, "-c", FAKE_DRIVER, str(staging), end], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    session = {int(p): t for p, t in json.loads(driver.stdout.readline()).items()}
    assert len(session) == 3  # raylet, agent, watcher
    if end == "killed":
        driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    started = time.monotonic()
    assert _wait_gone(session, 10) == [], "processes of the session outlived the driver"
    assert time.monotonic() - started < 5
    assert staging.exists() == (
        end == "done"
    )  # a folder the driver forgot (committed, removed) is not touched


def test_no_watcher_for_a_cluster_given_by_address(monkeypatch):
    """`--ray-address`: the engine did not start those processes, so it never stops them; a local start is
    watched, and the processes `ray.init` started are what the watcher stops."""
    import types

    from learner.score import ray_engine

    spawned = []

    def init(**kw):  # what a local ray.init does here: start processes of its own
        spawned.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))

    try:
        for address, expect_watcher in (("ray://head:10001", False), (None, True)):
            monkeypatch.setitem(
                sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=init)
            )
            monkeypatch.setattr(ray_reaper, "_current", None)
            ray_engine._init_ray(address)
            assert (ray_reaper.current() is not None) == expect_watcher
        reaper = ray_reaper.current()
        time.sleep(2 * ray_reaper.REFRESH_S)
        reaper.proc.stdin.close()  # this "driver" goes: the watcher stops what the local ray.init started
        reaper.proc.wait(10)
        assert spawned[1].wait(5) == -signal.SIGTERM
        assert spawned[0].poll() is None  # the cluster's process given by address: untouched
    finally:
        for p in spawned:
            p.kill()
            p.wait()


@pytest.mark.timeout(300)  # Ray start-up is slow: ~30 s on 2 loaded cores
def test_kill_9_of_a_ray_scoring_run_leaves_no_ray_process_and_no_staging(trained_model, tmp_path):
    pytest.importorskip("ray")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(600):
        sf.write(src / f"{i:03d}.wav", make_sound(("tone", "noise")[i % 2], 16000, 0.3, rng), 16000)
    out = tmp_path / "scores.parquet"
    cmd = [
        sys.executable,
        "-m",
        "jobs.score",
        "--engine",
        "ray",
        "--model",
        str(trained_model.model_dir),
        "--input",
        str(src),
        "--output",
        str(out),
        "--quiet",
        "--batch-size",
        "8",
    ]
    driver = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not list(out.glob(".ray-staging-*")):
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "Ray never started writing"
        time.sleep(0.05)
    session = _tree(driver.pid)
    del session[driver.pid]
    assert len(session) >= 4  # GCS, raylet, agents, workers (and the watcher)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    killed = time.monotonic()
    alive = _wait_gone(session, 20)  # without the watcher, ray::DashboardAgent and ray::RuntimeEnvAgent stay
    assert alive == [], [Path(f"/proc/{p}/cmdline").read_bytes()[:40] for p in alive]
    assert time.monotonic() - killed < 10  # SIGTERM, then SIGKILL after 2 s (the agents do not heed SIGTERM)
    assert not list(out.glob(".ray-staging-*"))
