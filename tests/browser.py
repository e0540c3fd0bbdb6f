"""Driving the demo in headless Chromium with generated audio as the microphone (tests and bench/live.py).

Two ways to feed the microphone:
- `chromium(fake_file=WAV)`: Chromium's own fake capture device plays the file (`--use-file-for-fake-
  audio-capture=WAV%noloop`); every new capture starts the file again, so it suits one long stream (Live);
- `feed_take(driver, wav_bytes)`: the page's `getUserMedia` answers with a Web Audio stream playing the
  given clip, for takes of several classes in one page (Teach), which one fake file cannot give.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("EARSHOT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EARSHOT_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(path)):
            return (
                f"needs Chromium and chromedriver: {path} is absent (EARSHOT_CHROMIUM, EARSHOT_CHROMEDRIVER)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install selenium)"
    return None


def chromium(fake_file: Path | None = None, width: int = 1280, height: int = 1000):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--window-size={width},{height}", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    if fake_file is not None:
        flags.append(f"--use-file-for-fake-audio-capture={fake_file}%noloop")
    for f in flags:
        opts.add_argument(f)
    return webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)


def wav_bytes(signal: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(signal, -1, 1).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


SHIM = """
window.__earshotTake = arguments[0];
if (!window.__earshotShim) {
  window.__earshotShim = true;
  navigator.mediaDevices.getUserMedia = async function () {
    const ctx = new AudioContext();
    const raw = Uint8Array.from(atob(window.__earshotTake), c => c.charCodeAt(0)).buffer;
    const buffer = await ctx.decodeAudioData(raw);
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    const dest = ctx.createMediaStreamDestination();
    src.connect(dest);
    src.start();
    return dest.stream;
  };
}
"""


def feed_take(driver, wav: bytes) -> None:
    """The next recording in this page hears `wav` (then silence)."""
    driver.execute_script(SHIM, base64.b64encode(wav).decode())


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]"):
        if b.text.strip() == name:
            b.click()
            time.sleep(0.3)
            return
    raise AssertionError(f"no tab {name!r}")


def button_in(driver, elem_id: str, word: str):
    """The button whose text (or aria-label) has `word`, inside the element `elem_id`."""
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} button"):
        said = f"{b.text} {b.get_attribute('aria-label') or ''}".lower()
        if word in said and b.is_displayed():
            return b
    raise AssertionError(f"no {word!r} button in #{elem_id}")


def wait_for(predicate, timeout_s: float, every_s: float = 0.1, what: str = "condition"):
    end = time.time() + timeout_s
    while time.time() < end:
        got = predicate()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def text_of(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, elem_id)
    return found[0].text.strip() if found else ""


def timeline(driver) -> tuple[float, list[tuple[float, float, str]]]:
    """(the stream's start, wall clock) and the windows (start s, end s, label) the Live timeline shows."""
    got = driver.execute_script(
        """const t = document.querySelector('.earshot-live-timeline');
        if (!t) return null;
        return [t.dataset.startedAt, Array.from(t.querySelectorAll('[data-label]')).map(
            c => [c.getAttribute('title'), c.dataset.label])];"""
    )
    if not got:
        return 0.0, []
    rows = []
    for title, label in got[1]:
        span = title.split(" s:")[0]
        a, b = span.split("–")
        rows.append((float(a), float(b), label))
    return float(got[0]), rows


def open_page(driver, url: str) -> None:
    """Load the demo and wait until its tabs are drawn."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "button[role=tab]"), 60, what=f"tabs at {url}")
    time.sleep(0.5)
