"""Issue 13, item 2 (the demo's part): a long upload never starves short ones. Long requests go to a worker
process of their own, one at a time, niced, under a budget (learner/demo/lanes.py); short ones are served at
once in the server. Driven through the running app with gradio_client, and through `Lanes` on an ONNX copy
of the session's model (its worker starts in about a second)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound

SR = 16000


def _wav(path: Path, seconds: float, kind: str = "tone", sr: int = SR) -> Path:
    sf.write(path, make_sound(kind, sr, seconds, np.random.default_rng(1)), sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lanes")
    odd_rate = (
        d / "rate_500hz.wav"
    )  # long by its header (so: the long lane), then refused by the decoder there
    sf.write(odd_rate, np.zeros(500 * 400, np.int16), 500, subtype="PCM_16")
    over = d / "eleven_minutes.flac"
    sf.write(
        over, np.zeros(660 * 8000, np.int16), 8000, subtype="PCM_16"
    )  # over the demo's 10 min, small as silence
    return {
        "short": _wav(d / "short.wav", 1.0),
        "long": _wav(d / "long.wav", 120.0),
        "odd_rate": odd_rate,
        "over": over,
        "medium": _wav(d / "medium.wav", 8.0),
        "twelve": _wav(d / "twelve.wav", 12.0),
    }  # long for a lane of 2 s


@pytest.fixture(scope="module")
def onnx_predictor(trained_model, tmp_path_factory):
    from learner.serve.export import export_model_dir
    from learner.serve.predictor import Predictor

    folder = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(trained_model.model_dir, folder)
    export_model_dir(folder)
    return Predictor.from_dir(folder, backend="onnx", threads=1)


def _wait(cond, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- through the running app
# ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(app_module):
    from gradio_client import Client

    port = _free_port()
    app_module.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app_module.demo.close()
        app_module.demo.lanes.close()


@pytest.mark.timeout(300)
def test_short_clips_are_served_while_two_long_uploads_are_read(app_module, client, files):
    """Before the lanes, two long uploads held both of the demo's slots and a short clip waited for them."""
    from gradio_client import handle_file

    lanes = app_module.demo.lanes
    long_jobs = [client.submit(handle_file(str(files["long"])), api_name="/classify") for _ in range(2)]
    _wait(lambda: lanes.long_admitted == 2)
    started = time.perf_counter()
    for _ in range(3):
        labels, *_, message = client.predict(handle_file(str(files["short"])), api_name="/classify")
        assert labels["label"] == "tone" and "one 1 s clip" in message
    short_s = time.perf_counter() - started
    assert lanes.long_admitted == 2 and not any(j.done() for j in long_jobs), (
        f"3 short clips took {short_s:.1f} s"
    )
    for job in long_jobs:  # the long ones finish too, with their windows and timeline drawn in the worker
        labels, _, _, timeline, message = job.result(timeout=240)
        assert labels["label"] == "tone" and "239 windows of 1 s" in message
        assert timeline["visible"] is True and timeline["value"]["plot"].startswith("data:image/")
    assert lanes.worker.started == 1 and lanes.long_admitted == 0


def test_over_the_limit_is_refused_at_once_without_the_long_lane(app_module, client, files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    started = time.perf_counter()
    with pytest.raises(AppError, match="eleven_minutes.flac.*over the 600 s limit"):
        client.predict(handle_file(str(files["over"])), api_name="/classify")
    assert time.perf_counter() - started < 5.0 and app_module.demo.lanes.long_admitted == 0


# --- the lanes themselves
# -----------------------------------------------------------------------------------------


def test_short_uploads_never_start_the_worker(onnx_predictor, files):
    from learner.demo.lanes import Lanes

    lanes = Lanes(onnx_predictor, short_s=10.0)
    try:
        assert "8.00 s" in lanes.run("classify", str(files["medium"])).message  # 8 s < 10 s: in the server
        assert lanes.run("events", str(files["short"]), 0.5).events is not None
        from learner.audio import TooLongError

        with pytest.raises(TooLongError, match="over the 600 s limit"):
            lanes.run("classify", str(files["over"]))
        assert lanes.worker.started == 0
    finally:
        lanes.close()


def test_short_workers_classify_as_the_server_would(onnx_predictor, files, tmp_path):
    """`short_workers`: short clips are classified in worker processes (no GIL shared with the server), with
    the
    server's answers: the same labels and scores, the same refusals, and "too long" sends a file on its
    way."""
    from learner.audio import TooLongError
    from learner.demo.classify import classify
    from learner.demo.lanes import Lanes, UploadRefused

    lanes = Lanes(onnx_predictor, short_s=10.0, short_workers=2)
    try:
        here = classify(onnx_predictor, str(files["short"]))
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(lanes.run("classify", str(files["short"]))))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 2 and [r.labels for r in results] == [here.labels, here.labels]
        assert sum(w.started for w in lanes._all_short) == 2  # both requests at once: two processes
        assert lanes.worker.started == 0  # the long lane was not needed
        text = tmp_path / "notes.wav"
        text.write_text("not audio")
        with pytest.raises(UploadRefused, match="notes.wav"):
            lanes.run("classify", str(text))
        with pytest.raises(TooLongError, match="twelve.wav"):
            lanes._all_short[0].call("classify", str(files["twelve"]), (), {"max_duration_s": 2.0})
    finally:
        lanes.close()
    assert all(w.pid is None for w in lanes._all_short)


def test_long_lane_budget_busy_refusals_and_a_dead_worker(onnx_predictor, files):
    from learner.demo.lanes import LaneError, Lanes, UploadRefused

    lanes = Lanes(onnx_predictor, short_s=2.0, long_slots=1, budget_s=120.0)
    try:
        out = lanes.run("events", str(files["twelve"]), 0.5)  # drawn and written in the worker, shown here
        assert out.figure is not None and Path(out.csv_path).is_file() and "12.0 s" in out.message
        assert lanes.worker.started == 1

        with pytest.raises(
            UploadRefused, match="rate_500hz.wav: sample rate 500 Hz is outside"
        ):  # the decoder's words
            lanes.run("classify", str(files["odd_rate"]))

        done: list = []
        first = threading.Thread(target=lambda: done.append(lanes.run("classify", str(files["twelve"]))))
        first.start()
        _wait(lambda: lanes.long_admitted == 1)
        started = time.perf_counter()
        with pytest.raises(LaneError, match="long recordings are already being read or waiting"):
            lanes.run("classify", str(files["twelve"]))  # one slot: the second is told at once, not queued
        assert time.perf_counter() - started < 1.0
        assert "one 1 s clip" in lanes.run("classify", str(files["short"])).message  # short ones still pass
        first.join(240)
        assert done and "23 windows" in done[0].message and lanes.worker.started == 1

        lanes.worker.budget_s = 0.01  # over budget: the worker is stopped and replaced
        pid = lanes.worker.pid
        with pytest.raises(LaneError, match=r"twelve.wav: stopped after 0.01 s"):
            lanes.run("classify", str(files["twelve"]))
        _wait(lambda: not _alive(pid), 10)
        lanes.worker.budget_s = 120.0

        assert "23 windows" in lanes.run("classify", str(files["twelve"])).message  # a fresh worker
        pid = lanes.worker.pid
        before = _cpu_s(pid)

        def kill_once_working() -> None:  # as the OOM killer would, while the worker reads the file
            _wait(lambda: lanes.long_admitted == 1 and _cpu_s(pid) > before + 0.05)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_once_working)
        killer.start()
        with pytest.raises(
            LaneError,
            match=r"twelve.wav: the worker .* stopped while reading twelve.wav \(killed by signal 9",
        ):
            lanes.run("classify", str(files["twelve"]))
        killer.join()
        assert (
            "23 windows" in lanes.run("classify", str(files["twelve"])).message
        )  # and the next one is served
        assert lanes.worker.started == 3
    finally:
        lanes.close()


def test_a_model_not_loaded_from_a_folder_keeps_every_request_in_the_server(onnx_predictor, files):
    import copy

    from learner.demo.lanes import Lanes

    p = copy.copy(onnx_predictor)
    p.folder = None
    lanes = Lanes(p)
    assert lanes.worker is None and "23 windows" in lanes.run("classify", str(files["twelve"])).message
    assert Lanes(onnx_predictor, enabled=False).worker is None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVER = """
import sys, threading, time
from learner.demo.lanes import Lanes
from learner.serve.predictor import Predictor
lanes = Lanes(Predictor.from_dir(sys.argv[1], backend="onnx"), short_s=2.0)
threading.Thread(target=lanes.run, args=("classify", sys.argv[2]), daemon=True).start()
while lanes.worker.pid is None:
    time.sleep(0.05)
print(lanes.worker.pid, flush=True)
time.sleep(120)
"""


def test_the_worker_goes_when_the_server_is_killed(onnx_predictor, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    long = _wav(
        tmp_path / "five_minutes.wav", 300.0
    )  # seconds of CPU in the worker: it is busy when the server goes
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(onnx_predictor.folder), str(long)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = int(server.stdout.readline())
    before = _cpu_s(worker)
    _wait(lambda: _cpu_s(worker) > before + 0.3)  # reading the file
    server.kill()  # no atexit, no clean-up: the worker notices its parent is gone
    server.wait()
    killed = time.monotonic()
    _wait(lambda: not _alive(worker) or Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z", 10)
    assert time.monotonic() - killed < 3.0  # not after the read it was doing for nobody
