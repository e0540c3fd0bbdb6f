"""One user streaming the microphone into the demo's Live tab, for bench/demo_load.py (`--streamers N`):
a headless Chromium (niced, as the browser would be on the user's own machine, not the server) whose fake
capture device loops generated sounds, pressing Record on the Live tab and keeping it running."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("EARSHOT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EARSHOT_CHROMEDRIVER", "/usr/bin/chromedriver")


def sound_file(folder: Path, seconds: int = 30) -> Path:
    """Generated sounds one after another with room noise between (learner/data/sounds.py), 48 kHz."""
    import soundfile as sf

    from learner.data.sounds import CLASSES, make_sound

    rng = np.random.default_rng(0)
    quiet = [rng.normal(0, 0.005, 48000).astype(np.float32) for _ in range(seconds // 2)]
    sounds = [make_sound(CLASSES[k % 4], 48000, 1.0, rng) for k in range(seconds // 2)]
    parts = [x for pair in zip(sounds, quiet, strict=True) for x in pair]
    path = folder / "live-stream.wav"
    sf.write(path, np.concatenate(parts), 48000, subtype="PCM_16")
    return path


PRIORITY = os.environ.get("EARSHOT_STREAMER_PRIORITY", "idle")  # "idle" (SCHED_IDLE) or a nice value


def _niced_browser(folder: Path) -> Path:
    """Chromium under a wrapper that lowers its CPU priority: SCHED_IDLE by default (it runs only when the
    server and its workers leave a core idle, as a user's own machine would not take the server's cores), or
    `nice -n N` with EARSHOT_STREAMER_PRIORITY=N. Its CPU is counted either way (bench/demo_load.py)."""
    wrapper = folder / "chromium-niced"
    lower = "chrt --idle 0" if PRIORITY == "idle" else f"nice -n {int(PRIORITY)}"
    wrapper.write_text(f'#!/bin/sh\nexec {lower} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


class Streamer(threading.Thread):
    """Streams until `stop` is set; `updates` counts the page's timeline updates, `heard_s` the seconds of
    audio the server said it had heard (the timeline's "now")."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.updates, self.error, self.heard_s = url, stop, 0, "", 0.0
        self.streaming = False  # Record pressed
        self.browser_pid: int | None = None  # chromedriver's (Chromium runs under it): its CPU is counted
        self.folder = Path(tempfile.mkdtemp(prefix="earshot-streamer-"))

    def run(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.common.by import By

        opts = webdriver.ChromeOptions()
        opts.binary_location = str(_niced_browser(self.folder))
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={sound_file(self.folder)}"):  # fmt: skip
            opts.add_argument(flag)
        try:
            driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"[:200]
            return
        self.browser_pid = driver.service.process.pid
        try:
            driver.get(self.url)
            while not driver.find_elements(By.CSS_SELECTOR, "button[role=tab]"):
                time.sleep(0.2)
            next(
                b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Live"
            ).click()
            time.sleep(0.5)
            next(b for b in driver.find_elements(By.CSS_SELECTOR, "#earshot-live-mic button")
                 if "record" in b.text.lower()).click()  # fmt: skip
            self.streaming = True
            last = ""
            while not self.stop.is_set():
                found = driver.find_elements(By.CSS_SELECTOR, ".earshot-live-timeline")
                now = found[0].text if found else ""
                if now != last:
                    self.updates, last = self.updates + 1, now
                    if "now (" in now:
                        self.heard_s = float(now.split("now (")[1].split(" s")[0])
                time.sleep(0.1)
        except Exception as e:  # the bench says so instead of dying
            self.error = f"{type(e).__name__}: {e}"[:200]
        finally:
            driver.quit()
