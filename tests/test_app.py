"""The Gradio demo: `app.demo` launched on 127.0.0.1 and driven through `gradio_client` and headless Chromium,
plus its library side (learner.demo, learner.model.saliency) on the session's trained model."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound

ROOT = Path(__file__).resolve().parents[1]

SR = 16000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clip(
    kind: str, path: Path, sr: int = SR, channels: int = 1, seconds: float = 1.0, seed: int = 3
) -> Path:
    x = make_sound(kind, sr, seconds, np.random.default_rng(seed))
    data = np.stack([x, 0.8 * x], axis=1) if channels == 2 else x
    sf.write(path, data, sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(app_module):
    port = _free_port()
    app_module.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app_module.demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("app_clips")
    (d / "empty.wav").write_bytes(b"")
    good = _clip("tone", d / "tone.wav")
    (d / "corrupt.wav").write_bytes(good.read_bytes()[:30])  # a WAV cut inside its fmt chunk
    (d / "notes.wav").write_text("not audio, just text with a .wav name\n" * 20)
    return {
        "tone": good,
        "clicks": _clip("clicks", d / "clicks.wav"),
        "mic": _clip(
            "clicks", d / "recording.wav", sr=48000, channels=2, seed=5
        ),  # browser MediaRecorder → WAV
        "long": _clip("tone", d / "long.wav", seconds=5.0),
        "empty": d / "empty.wav",
        "corrupt": d / "corrupt.wav",
        "notes": d / "notes.wav",
    }


def _classify(client, path: Path):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/classify")


def _top(label_out) -> str:
    return label_out["label"]


def test_valid_clips_get_the_right_top_label(client, clips):
    for kind in ("tone", "clicks"):
        labels, spec, sal, timeline, message = _classify(client, clips[kind])
        assert _top(labels) == kind, labels
        assert len(labels["confidences"]) == 4  # all 4 classes of the model (top 5 asked)
        assert abs(sum(c["confidence"] for c in labels["confidences"]) - 1) < 1e-4
        for plot in (spec, sal):  # the log-mel the model saw, and the saliency overlay
            assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")
        assert timeline["visible"] is False and timeline["value"] is None  # a 1 s clip is scored as one clip
        assert f"{kind}.wav" in message and "one 1 s clip" in message


def test_microphone_style_wav_48k_int16_stereo(client, clips):
    assert sf.info(clips["mic"]).samplerate == 48000 and sf.info(clips["mic"]).channels == 2
    labels, *_, message = _classify(client, clips["mic"])
    assert _top(labels) == "clicks", labels
    assert "48000 Hz stereo" in message and "mono 16000 Hz" in message


def test_long_input_is_scored_in_windows_with_a_timeline(client, clips):
    labels, spec, sal, timeline, message = _classify(client, clips["long"])
    assert _top(labels) == "tone"
    assert timeline["visible"] is True and timeline["value"]["plot"].startswith("data:image/")
    assert "9 windows of 1 s" in message


@pytest.mark.parametrize(
    "kind, words", [("corrupt", "corrupt"), ("empty", "empty file"), ("notes", "not an audio file")]
)
def test_bad_uploads_get_a_clear_error_and_the_server_keeps_serving(client, clips, kind, words):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        _classify(client, clips[kind])
    assert clips[kind].name in str(err.value) and words in str(err.value)
    labels, *_ = _classify(client, clips["tone"])  # the next request is served normally
    assert _top(labels) == "tone"


def test_model_tab_and_examples(app_module, trained_model):
    from learner.demo.examples import example_files
    from learner.demo.model_tab import model_info

    served = app_module.served
    info = model_info(served.predictor, served.folder)
    assert (
        "chirp, clicks, noise, tone" in info.summary
        and "accuracy" in info.summary
        and "| tone | " in info.summary
    )
    assert "| sample_rate | `16000` |" in info.audio and "| epochs | `2` |" in info.training
    assert info.confusion_png is not None and info.confusion_png.startswith(b"\x89PNG")
    examples = ROOT / "examples"
    assert example_files(served.predictor.classes, examples) == []  # no digits examples for a 4-class model
    from learner.data.synth import DIGITS

    shipped = example_files(list(DIGITS), examples)
    assert len(shipped) >= 3 and all(Path(p).stat().st_size < 200_000 for p in shipped)


def test_a_backend_without_torch_model_gets_occlusion_saliency(app_module, clips):
    import copy

    from learner.demo.classify import classify

    class Opaque:  # like ONNX Runtime: logits out, no torch model to differentiate
        name = "opaque"

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, waves):
            return self.inner(waves)

    p = copy.copy(app_module.served.predictor)
    p.backend = Opaque(p.backend)
    out = classify(p, clips["tone"])
    assert next(iter(out.labels)) == "tone" and out.saliency is not None and out.spectrogram is not None
    assert "occlusion" in out.saliency.axes[0].get_title()  # asked through the backend itself, no gradients


def test_saliency_follows_the_tone(trained_model, clips):
    """Input gradient for 'tone' concentrates on the tone's mel bands; Grad-CAM has the log-mel's shape."""
    from learner.model.saliency import Explainer
    from learner.serve.predictor import Predictor

    p = Predictor.from_dir(trained_model.model_dir)
    ex = Explainer(p.backend.model, p.cfg)
    clip = p.prepare(p.decode(clips["tone"]).samples)
    assert ex.default_method() == "gradient" and ex.cam_shape == (2, 2)  # 64 mels × 63 frames → 2×2 cells
    sal = ex(clip, target=p.classes.index("tone"))
    assert sal.heat.shape == sal.logmel.shape == (p.cfg.n_mels, p.cfg.n_frames)
    assert 0 <= sal.heat.min() and sal.heat.max() == pytest.approx(1.0)
    loud = sal.logmel.mean(axis=1)
    bands = np.flatnonzero(
        loud > loud.max() - 15
    )  # the tone and its harmonic (mel rows within 15 dB of the loudest)
    near = np.zeros(len(loud), dtype=bool)
    for b in bands:
        near[max(0, b - 2) : b + 3] = True
    rows = sal.heat.mean(axis=1)
    assert near[rows.argmax()], (bands, rows.argmax())
    assert rows[near].mean() > 1.8 * rows[~near].mean()  # uniform heat would give 1.0
    cam = ex(clip, method="gradcam")
    assert (
        cam.method == "gradcam"
        and cam.heat.shape == sal.logmel.shape
        and cam.target == p.classes.index("tone")
    )


def test_default_model_is_built_once_and_cached(tmp_path, monkeypatch):
    from learner.data.synth import DIGITS, espeak_available
    from learner.train import fallback

    if not espeak_available():
        pytest.skip("espeak-ng is not available (pip install espeakng-loader)")
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path))
    monkeypatch.delenv("EARSHOT_DATA", raising=False)
    lines: list[str] = []
    folder = fallback.ensure_default_model(
        log=lines.append,
        voices=["en-us", "en+f3", "en-gb-scotland+m4"],
        per_voice=2,
        epochs=1,
        progress=False,
    )
    assert folder == tmp_path / "models" / "spoken-digits"
    assert (
        any("[1/2]" in s for s in lines)
        and any("[2/2]" in s for s in lines)
        and "default model ready" in lines[-1]
    )
    from learner.folder import read_config

    assert read_config(folder)["classes"] == sorted(DIGITS)
    assert not list(folder.parent.glob(".*.tmp"))  # built aside, renamed into place
    again: list[str] = []
    assert (
        fallback.ensure_default_model(log=again.append) == folder and again == []
    )  # cached: no rebuild, no output


def test_no_espeak_says_what_to_do(tmp_path, monkeypatch):
    from learner.data import synth
    from learner.train import fallback

    def unavailable(*a, **k):
        raise synth.EspeakUnavailableError("espeak-ng is not available (no system libespeak-ng)")

    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path))
    monkeypatch.setattr(synth, "ensure_spoken_digits", unavailable)
    with pytest.raises(fallback.DefaultModelError) as err:
        fallback.ensure_default_model(log=lambda s: None)
    msg = str(err.value)
    assert "pip install espeakng-loader" in msg and "model=DIR_OR_USER/NAME" in msg and "EARSHOT_MODEL" in msg
    assert "--" not in msg  # the library names fields; app.py says them as flags (test_app_... below)


def test_app_with_a_bad_model_exits_with_one_line(tmp_path):
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("EARSHOT_MODEL", None)
    r = subprocess.run(
        [sys.executable, "app.py", "--model", str(tmp_path / "nope")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith(f"earshot: {tmp_path / 'nope'}")
        and "no such model directory" in lines[0]
    )


CHROMIUM, CHROMEDRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="Debian chromium + chromium-driver not installed (scripts/system-deps.sh installs them)",
)
def test_browser_upload_shows_labels(server, clips, artifacts, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1500",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(server)
        wait = WebDriverWait(driver, 60)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(clips["clicks"]))
        wait.until(
            EC.text_to_be_present_in_element(
                (By.CSS_SELECTOR, '[data-testid="label-output-value"]'), "clicks"
            )
        )
        wait.until(
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, ".gradio-container img, .gradio-container canvas")) >= 2
            )
        )
        time.sleep(0.5)  # let the plots paint
        shot = artifacts / "demo.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert "one 1 s clip" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
