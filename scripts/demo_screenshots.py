"""The screenshots in docs/demo.md: the Live tab hearing generated sounds, and the Teach tab after Train.

    .venv/bin/python scripts/demo_screenshots.py [--out docs/images]

Serves a model taught on generated sounds (background, tone, siren) in headless Chromium, plays a sequence
of them as the microphone (tests/browser.py), and saves demo-live.png and demo-teach.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    out = Path(p.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    import soundfile as sf

    from tests import browser
    from tests.conftest import app_serving
    from tests.live_audio import SR, sequence, teach
    from tests.test_demo_browser import _free_port, choose, record_take

    tmp = Path(tempfile.mkdtemp(prefix="earshot-shots-"))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp / "gradio"))
    _, _, taught = teach(tmp / "served")
    rng = np.random.default_rng(5)
    signal, _ = sequence(
        rng, [("background", 2), ("tone", 3), ("background", 2), ("siren", 3), ("background", 4)]
    )
    sf.write(tmp / "seq.wav", signal, SR, subtype="PCM_16")
    with app_serving(taught.folder) as app:
        port = _free_port()
        app.demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}"
        driver = browser.chromium(fake_file=tmp / "seq.wav", height=900)
        try:
            browser.open_page(driver, url)
            browser.open_tab(driver, "Live")
            browser.button_in(driver, "earshot-live-mic", "record").click()
            time.sleep(11.5)
            driver.save_screenshot(str(out / "demo-live.png"))
        finally:
            driver.quit()
        driver = browser.chromium(height=900)
        try:
            from selenium.webdriver.common.by import By

            browser.open_page(driver, url)
            browser.open_tab(driver, "Teach")
            driver.find_element(By.ID, "earshot-teach-set").click()
            for kind, sound in (("background", "background"), ("clap", "clicks"), ("whistle", "tone")):
                choose(driver, kind)
                for k in range(3):
                    record_take(driver, sound, rng)
                    browser.wait_for(
                        lambda w=f"{kind}: {k + 1}": w in browser.text_of(driver, "earshot-teach-counts"), 30
                    )
            driver.find_element(By.ID, "earshot-teach-train").click()
            browser.wait_for(lambda: "trained" in browser.text_of(driver, "earshot-teach-status"), 60)
            time.sleep(0.5)
            driver.save_screenshot(str(out / "demo-teach.png"))
        finally:
            driver.quit()
        app.demo.close()
    print(f"wrote {out / 'demo-live.png'} and {out / 'demo-teach.png'}")


if __name__ == "__main__":
    main()
