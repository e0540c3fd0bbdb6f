"""The demo in a real browser (headless Chromium) with generated audio as the microphone (issue 24):
live labels follow a played sequence, Teach learns from recorded takes, two sessions keep their own
models. Skipped, saying why, only when Chromium, chromedriver or selenium is absent."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np
import pytest

from learner.demo.live import agreement, captured_at, heard_segments, onset_latencies
from tests import browser
from tests.conftest import app_serving
from tests.live_audio import SR, sequence, take, teach

# 3 s sounds between 3 s of room noise: a 0.5 s window straddles each edge once (~0.25 s wrong)
PATTERN = [("background", 3), ("tone", 3), ("background", 3), ("siren", 3), ("background", 3), ("tone", 3)]
PATTERN += [("background", 3), ("siren", 3), ("background", 3)]
BENCH_OUT = "EARSHOT_LIVE_BENCH_OUT"  # a JSON-lines file the live test appends its figures to
TAIL_S = 3.0  # more room noise after the sequence: the page stops listening before the file ends (then zeros)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app serving a model taught on generated sounds (background, tone, siren), on a free port."""
    _, _, taught = teach(tmp_path_factory.mktemp("served"))
    # a cache of its own: other demos sweeping a shared /tmp/earshot-gradio remove folders mid-upload
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    with app_serving(taught.folder) as app:
        port = _free_port()
        app.demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
        yield app, f"http://127.0.0.1:{port}"
        app.demo.close()


def listen(url: str, wav, seconds: float):
    """Play `wav` into the Live tab's microphone: (the server's LiveStream, the page's label every 50 ms
    as (wall clock, label), the timeline's windows as the page shows them)."""
    import gc

    from learner.demo.live import LiveStream

    before = {id(o) for o in gc.get_objects() if isinstance(o, LiveStream)}
    LiveStream.keep_audio = True  # to line up what the server heard with what was played
    driver = browser.chromium(fake_file=wav)
    try:
        browser.open_page(driver, url)
        browser.open_tab(driver, "Live")
        browser.button_in(driver, "earshot-live-mic", "record").click()
        seen, end = [], time.time() + seconds
        while time.time() < end:
            seen.append((time.time(), browser.text_of(driver, "earshot-live-now").lstrip("# ").strip()))
            time.sleep(0.05)
        _, shown = browser.timeline(driver)
    finally:
        driver.quit()
        LiveStream.keep_audio = False
    streams = [o for o in gc.get_objects() if isinstance(o, LiveStream) and id(o) not in before and o.heard]
    assert len(streams) == 1, f"{len(streams)} live streams"
    return streams[0], seen, shown


def label_delays(stream, seen: list, segments: list) -> list[float]:
    """Per sound: seconds from its onset's capture until the page showed its label (inf: never)."""
    out = []
    for label, a, b in segments:
        if label == "background":
            continue
        onset = captured_at(stream.arrivals, int(a * stream.sr), stream.sr)
        first = next(
            (t for t, said in seen if said == label and onset - 0.5 <= t <= onset + (b - a) + 1), None
        )
        out.append(float("inf") if first is None else first - onset)
    return out


def test_live_labels_follow_a_played_sequence(server, tmp_path):
    import soundfile as sf

    _, url = server
    rng = np.random.default_rng(5)
    signal, segments = sequence(rng, PATTERN)
    wav = tmp_path / "sequence.wav"
    sf.write(wav, np.concatenate([signal, take("background", TAIL_S, rng)]), SR, subtype="PCM_16")
    stream, seen, shown = listen(url, wav, signal.size / SR + 0.5)
    sounds = [label for label, _ in PATTERN if label != "background"]
    listened = stream.arrivals[-1][0] - stream.arrivals[0][0]
    heard = f"{stream.n_samples / stream.sr:.1f} s heard of {listened:.1f} s streamed"
    starved = stream.n_samples / stream.sr < 0.9 * listened  # chunks lost: browser or server short of CPU
    try:
        known = heard_segments(np.concatenate(stream.heard), stream.sr, sounds)
    except ValueError as e:  # the sounds cannot be told apart in what arrived
        if starved:
            pytest.skip(f"the machine is too busy to judge live labels ({heard}: {e})")
        raise
    windows = list(stream.windows)
    assert (
        abs(len(shown) - len(windows)) <= 2
        and len(windows) > 30
        and {w.label for w in windows} >= {"tone", "siren"}
    )
    score = agreement(windows, known)
    delays = label_delays(stream, seen, known)
    server = onset_latencies(windows, known, stream.arrivals, stream.sr, {"background"})
    if out := os.environ.get(BENCH_OUT):  # bench/live.py runs this test and collects the figures
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"agreement": score, "page_delays": delays, "server_delays": server,
                                "heard_s": stream.n_samples / stream.sr, "listened_s": listened,
                                "skipped": stream.skipped, "load": os.getloadavg()}) + "\n")  # fmt: skip
    assert stream.n_samples / stream.sr >= 0.1 * listened, heard  # a stream, not a trickle
    if starved:
        pytest.skip(f"the machine is too busy to judge live labels ({heard}; load {os.getloadavg()[0]:.1f})")
    assert score >= 0.9, (score, heard, known, [(w.start_s, w.label) for w in windows])
    # the 1 s goal at p95 is measured on a quiet machine by bench/live.py; here: every label shows, soon
    assert len(delays) == len(sounds) and max(delays) <= 3.0, delays


def record_take(driver, kind: str, rng) -> None:
    browser.feed_take(driver, browser.wav_bytes(take(kind, 1.2, rng), SR))
    browser.button_in(driver, "earshot-teach-take", "record").click()
    time.sleep(1.4)
    browser.button_in(driver, "earshot-teach-take", "stop").click()


def teach_in_browser(url: str, kinds: tuple[str, ...], n: int, seed: int) -> dict:
    """Name `kinds`, record `n` takes of each through the page's microphone, Train; what the page said."""
    from selenium.webdriver.common.by import By

    rng = np.random.default_rng(seed)
    driver = browser.chromium()
    try:
        browser.open_page(driver, url)
        browser.open_tab(driver, "Teach")
        box = driver.find_element(
            By.CSS_SELECTOR, "#earshot-teach-names textarea, #earshot-teach-names input"
        )
        box.clear()
        box.send_keys(", ".join(kinds))
        driver.find_element(By.ID, "earshot-teach-set").click()
        for kind in kinds:
            choose(driver, kind)
            for k in range(n):
                record_take(driver, kind, rng)
                want = f"{kind}: {k + 1}"
                browser.wait_for(
                    lambda w=want: w in browser.text_of(driver, "earshot-teach-counts"), 30, what=want
                )
        t0 = time.time()
        driver.find_element(By.ID, "earshot-teach-train").click()
        said = browser.wait_for(
            lambda: "trained" in (s := browser.text_of(driver, "earshot-teach-status")) and s,
            60,
            what="Train",
        )
        return {
            "train_s": time.time() - t0,
            "status": said,
            "counts": browser.text_of(driver, "earshot-teach-counts"),
        }
    finally:
        driver.quit()


def choose(driver, kind: str) -> None:
    """Pick `kind` in the Teach tab's class dropdown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, "#earshot-teach-label input")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(kind)
    time.sleep(0.3)
    for li in driver.find_elements(By.CSS_SELECTOR, "ul[role=listbox] li"):
        if li.text.strip() == kind:
            li.click()
            break
    else:
        box.send_keys(Keys.ENTER)
    time.sleep(0.3)
    assert box.get_attribute("value") == kind, box.get_attribute("value")


def test_teach_from_recorded_takes_then_classify_new_ones(server):
    app, url = server
    got = teach_in_browser(url, ("background", "tone", "siren"), 5, seed=11)
    assert got["train_s"] <= 30, got
    teachers = [t for t in app_teachers(app) if t.classes == ["background", "tone", "siren"]]
    assert len(teachers) == 1 and teachers[0].predictor is not None
    p, rng = teachers[0].predictor, np.random.default_rng(12)
    right = [
        p.predict(take(k, 1.2, rng), sample_rate=SR, window=None).label == k
        for k in p.classes
        for _ in range(10)
    ]
    if out := os.environ.get(BENCH_OUT):
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"teach_train_s": got["train_s"], "teach_accuracy": float(np.mean(right)),
                                "load": os.getloadavg()}) + "\n")  # fmt: skip
    assert np.mean(right) >= 0.9, np.mean(right)


def app_teachers(app) -> list:
    room = app.demo.classroom
    return list(room._teachers.values())


def test_two_sessions_teaching_at_once_get_their_own_models(server):
    app, url = server
    results: dict[str, dict] = {}

    def run(kinds, seed):
        results[kinds[1]] = teach_in_browser(url, kinds, 3, seed)

    threads = [
        threading.Thread(target=run, args=(("background", "tone", "siren"), 21)),
        threading.Thread(target=run, args=(("background", "knock", "chirp"), 22)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert "tone, siren" in results["tone"]["status"] and "knock, chirp" in results["knock"]["status"], (
        results
    )
    mine = {tuple(t.classes): t for t in app_teachers(app) if t.predictor is not None}
    a, b = mine[("background", "tone", "siren")], mine[("background", "knock", "chirp")]
    assert a.predictor is not b.predictor and a.root != b.root
    assert a.predictor.classes != b.predictor.classes
