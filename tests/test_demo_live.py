"""Live mode's window state and the Teach tab's per-session models, without a browser (issue 24)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learner.demo.live import LiveStream, agreement, heard_segments, onset_latencies
from learner.demo.teach import Classroom, TeachError
from learner.serve.predictor import Predictor
from tests.live_audio import SR, new_takes_right, sequence, take, teach


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    t0 = time.perf_counter()
    room, teacher, result = teach(tmp_path_factory.mktemp("teach"), "session-a")
    return room, teacher, result, time.perf_counter() - t0


def test_teach_trains_fast_and_classifies_new_takes(taught):
    _, _, result, _ = taught
    assert result.seconds < 30 and (result.folder / "model.safetensors").is_file()  # Train alone
    assert (right := new_takes_right(result.predictor, seed=7)) >= 0.9, right


def test_live_windows_equal_the_predictors_and_events_close(taught):
    _, _, result, _ = taught
    p = result.predictor
    signal, segments = sequence(np.random.default_rng(3))
    live = LiveStream(p)
    live.keep_audio = True
    closed = []
    for i in range(0, signal.size, SR // 4):  # Gradio's int16 chunks of 0.25 s
        closed += live.push(SR, (signal[i : i + SR // 4] * 32767).astype(np.int16)).closed
    assert live.skipped == 0
    windows = list(live.windows)
    starts = np.array([w.start_s for w in windows])
    assert np.allclose(np.diff(starts), 0.25)  # half the 0.5 s clip
    # the same windows and scores as the Predictor on the whole recording (same resampling, same cuts)
    quantised = (signal * 32767).astype(np.int16).astype(np.float32) / 32767
    d = p.decode(quantised, sample_rate=SR)
    wp, st = p.predict_windows(d.samples, live.plan)
    k = len(windows)
    assert np.allclose(st[:k], starts) and np.allclose(
        wp[:k], np.stack([w.probs for w in windows]), atol=1e-4
    )
    assert agreement(windows, segments) >= 0.9, agreement(windows, segments)
    labels = [e.label for e in closed]
    assert labels == ["tone", "siren"], labels  # background never becomes an event
    for e, (_, a, b) in zip(closed, segments[1::2], strict=True):
        assert abs(e.start_s - a) < 0.8 and abs(e.end_s - b) < 0.8, (e, a, b)
    lat = onset_latencies(windows, segments, live.arrivals, live.sr, {"background"})
    assert all(np.isfinite(lat)), lat
    found = heard_segments(np.concatenate(live.heard), live.sr, ["tone", "siren"])
    assert [s[0] for s in found] == [s[0] for s in segments]
    assert all(abs(f[1] - s[1]) < 0.3 for f, s in zip(found, segments, strict=True)), found
    assert "data-label=" in live.timeline_html() and live.top()


def _streamed(live, signal, chunk: int = SR // 10, settle: bool = False):
    """Feed `signal` as the browser does (int16 chunks of 0.1 s); the windows' scores. `settle`: wait for
    scores computed elsewhere after each chunk (as a chunk arriving later would collect them)."""
    for i in range(0, signal.size, chunk):
        live.push(SR, (signal[i : i + chunk] * 32767).astype(np.int16))
        if settle:
            live.settle()
    return np.stack([w.probs for w in live.windows])


def test_live_lane_scores_in_its_own_niced_worker_as_the_server_would(taught, tmp_path):
    """Streamed windows are scored in the live lane's worker (nice LIVE_NICE, not the server's process):
    the same scores as in the server, for the demo's model and for a taught one (another folder, loaded
    there on first use), each stream its own; a worker killed mid-stream costs no window."""
    import os

    from learner.demo.lanes import LIVE_NICE, Lanes
    from learner.demo.live_lane import LiveLane
    from tests.conftest import save_untrained

    _, _, result, _ = taught
    taught_p = result.predictor
    demo_p = Predictor.from_dir(save_untrained(tmp_path / "demo", ["a", "b"]), backend="torch")
    lanes = Lanes(demo_p, enabled=True)
    try:
        lane = LiveLane(lanes.live_worker)
        lanes.live_worker.warm()  # as `Lanes.warm` does at the app's start
        pid = lane.pid
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, 0) == LIVE_NICE
        signal, _ = sequence(np.random.default_rng(4))
        for p in (demo_p, taught_p):  # the worker's own model, then a taught one
            here = _streamed(LiveStream(p), signal)
            there = _streamed(LiveStream(p, score=lane.score), signal)
            assert there.shape == here.shape and np.allclose(there, here, atol=1e-5)
            later = _streamed(LiveStream(p, score=lane.submit), signal, settle=True)  # as the Live tab does
            assert later.shape == here.shape and np.allclose(later, here, atol=1e-5)
        assert lane.local == 0 and lane.remote > 0
        a, b = LiveStream(taught_p, score=lane.score), LiveStream(taught_p, score=lane.score)
        quiet = take("background", 2.0, np.random.default_rng(5))
        _streamed(a, signal[: SR * 3])
        b_probs = _streamed(b, quiet)  # another listener between a's chunks: each stream keeps its own
        a_probs = _streamed(a, signal[SR * 3 : SR * 6])
        assert np.allclose(a_probs, _streamed(LiveStream(taught_p), signal[: SR * 6]), atol=1e-5)
        assert np.allclose(b_probs, _streamed(LiveStream(taught_p), quiet), atol=1e-5)
        os.kill(pid, 9)  # as the OOM killer would
        live = LiveStream(taught_p, score=lane.score)
        _streamed(live, signal)
        assert live.skipped == 0 and np.allclose(np.stack([w.probs for w in live.windows]), here, atol=1e-5)
        assert lane.local > 0  # scored in the server while the worker was replaced
    finally:
        lanes.close()


def test_a_chunk_never_waits_for_a_slow_scorer(taught):
    """Gradio drops a chunk that arrives while the previous one is being handled: with scores computed
    elsewhere (a Future), a chunk's handler returns at once and the windows arrive with a later chunk, none
    lost; windows that pile up meanwhile are scored in the next request (the newest `max_windows`)."""
    from concurrent.futures import ThreadPoolExecutor

    from learner.demo.live import score_windows

    _, _, result, _ = taught
    pool = ThreadPoolExecutor(1)

    def slow(*a):
        def late():
            time.sleep(0.5)
            return score_windows(*a)

        return pool.submit(late)

    live, signal = LiveStream(result.predictor, score=slow), take("tone", 3.0, np.random.default_rng(2))
    chunk, times = SR // 10, []
    for i in range(0, SR * 2, chunk):
        t0 = time.perf_counter()
        live.push(SR, (signal[i : i + chunk] * 32767).astype(np.int16))
        times.append(time.perf_counter() - t0)
    assert max(times) < 0.2, max(times)  # never the scorer's 0.5 s
    assert not live.windows or len(live.windows) < 6  # two seconds of windows are still being scored
    time.sleep(0.6)
    u = live.push(SR, (signal[SR * 2 : SR * 2 + chunk] * 32767).astype(np.int16))
    assert u.scored > 0  # collected by a later chunk
    live.settle()
    live.push(SR, (signal[SR * 2 + chunk :] * 32767).astype(np.int16))
    live.settle()
    assert live.skipped > 0  # the windows that piled up past max_windows
    starts = [w.start_s for w in live.windows]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    pool.shutdown()


def test_a_listener_behind_skips_the_oldest_windows(taught):
    _, _, result, _ = taught
    live = LiveStream(result.predictor, max_windows=3)
    u = live.push(SR, np.zeros(SR * 4, np.int16) + 3)
    assert u.scored == 3 and u.skipped > 0 and live.windows[-1].end_s == pytest.approx(4.0, abs=0.3)


def test_sessions_are_separate_and_bounded(taught, tmp_path):
    room, teacher, result, _ = taught
    other = room.get("session-b")
    assert other is not teacher and other.predictor is None and other.classes == []
    assert room.peek("session-a").predictor is result.predictor
    small = Classroom(tmp_path, max_sessions=2)
    firsts = [small.get(s) for s in ("x", "y")]
    firsts[0].root.mkdir(parents=True)
    small.get("z")  # x is the least recently used: it goes, folder and all
    assert small.peek("x") is None and not firsts[0].root.exists() and len(small) == 2


def test_teach_says_what_is_missing(tmp_path):
    t = Classroom(tmp_path).get("s")
    with pytest.raises(TeachError, match="2 to 10 classes"):
        t.set_classes("only")
    with pytest.raises(TeachError, match="differ"):
        t.set_classes("a, a")
    t.set_classes("a, b")
    with pytest.raises(TeachError, match="at least 3 examples.*a \\(0\\), b \\(0\\)"):
        t.train()
    with pytest.raises(TeachError, match="not one of the classes"):
        t.add_example("c", (SR, np.zeros(SR, np.int16)))


def test_download_zip_and_offline_push_say_one_line(taught, monkeypatch):
    import zipfile

    from learner.hub import HubError

    _, teacher, _, _ = taught
    with zipfile.ZipFile(teacher.zip()) as z:
        assert {"config.json", "model.safetensors"} <= set(z.namelist())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError) as e:
        teacher.push("someone/taught", "hf_notatoken")
    assert "\n" not in str(e.value), str(e.value)
