"""Issue 23, acceptance: the Review tab in a real browser (headless Chromium driven by Selenium). Keyboard
answers land in the review file; the server killed (SIGKILL) mid-review has lost nothing answered, and the
restarted server offers only windows not answered yet. Generated audio and an untrained model."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from learner.data.review import read_answers, read_review

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER) and HAVE_SELENIUM),
    reason="needs chromium, chromedriver and selenium (Debian: apt-get install chromium chromium-driver "
    "python3-selenium)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 20 s generated recording scored in 1 s windows by an untrained 3-class model."""
    from jobs.score import main as score_main
    from learner.data.soundscape import make_soundscape
    from tests.conftest import save_untrained

    root = tmp_path_factory.mktemp("review-browser")
    x, _ = make_soundscape(20.0, 2, overlaps=0, seed=1)
    sf.write(root / "rec.wav", x, 16000)
    model = save_untrained(root / "model", ["chirp", "clicks", "tone"])
    out = root / "scores.parquet"
    score_main([str(root / "rec.wav"), "--model", str(model), "--out", str(out), "--windows", "1,0.5",
                "--quiet", "--workers", "1"])  # fmt: skip
    return root, model, out


def _serve(model: Path, out: Path, review_file: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(REPO))
    argv = [sys.executable, str(REPO / "app.py"), "--model", str(model), "--review", str(out),
            "--review-file", str(review_file), "--port", str(port), "--short-workers", "0"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited: {proc.stderr.read().decode()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("app.py did not start listening within 90 s")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"):
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "review-status").text


def _wait(driver, done, what: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: done(d), message=what)


def _open_review(driver, port: int, n: int) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"http://127.0.0.1:{port}/")
    _wait(driver, lambda d: d.find_elements(By.ID, "review-tab-button"), "the Review tab")
    driver.find_element(By.ID, "review-tab-button").click()
    windows = _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#review-windows input"), "n field")
    windows.clear()
    windows.send_keys(str(n))
    driver.find_element(By.ID, "review-start").click()
    _wait(driver, lambda d: f"0 of {n} answered" in _status(d), "the first window")


def _press(driver, key: str, answered: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()
    _wait(driver, lambda d: f"{answered} of" in _status(d), f"key {key!r} → {answered} answered")


def test_keyboard_answers_land_in_the_file_and_survive_a_killed_server(run, browser, tmp_path):
    from selenium.webdriver.common.by import By

    _, model, out = run
    review_file, port = tmp_path / "answers.review.csv", _free_port()
    server = _serve(model, out, review_file, port)
    try:
        _open_review(browser, port, 6)
        shown = []
        for key, after in (("y", 1), ("n", 2), ("o", 3), ("z", 2), ("u", 3), ("y", 4)):
            shown.append(_status(browser).split("(picked")[0])
            _press(browser, key, after)
        browser.find_element(By.ID, "review-status").click()  # focus off any field: keys still answer
        server.send_signal(signal.SIGKILL)  # mid-review: two windows not answered yet
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    lines = read_answers(review_file)
    assert lines["answer"].tolist() == ["yes", "no", "other", "undo", "unsure", "yes"]
    assert lines.loc[2, "answered_label"] == "chirp"  # the "other label" dropdown's first class
    latest = read_review(review_file)
    assert latest["answer"].tolist() == ["yes", "no", "unsure", "yes"]
    assert len(set(shown)) == 4 and shown[4] == shown[2]  # undo showed the third window again
    times = [f"{r.start_s:.2f}–{r.end_s:.2f} s" for r in lines.itertuples()]
    on_screen = [shown[0], shown[1], shown[2], shown[2], shown[4], shown[5]]  # the undo line: window 3
    assert all(t in seen for t, seen in zip(times, on_screen, strict=True)), (times, on_screen)

    server = _serve(model, out, review_file, port)  # restarted: only windows nobody answered
    try:
        _open_review(browser, port, 3)
        text = _status(browser)
        answered = {f"{r.start_s:.2f}–{r.end_s:.2f} s" for r in latest.itertuples()}
        assert not any(a in text for a in answered), text
        _press(browser, "n", 1)
    finally:
        server.kill()
        server.wait(timeout=10)
    assert read_review(review_file)["answer"].tolist() == ["yes", "no", "unsure", "yes", "no"]
