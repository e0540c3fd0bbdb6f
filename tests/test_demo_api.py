"""Issue 25 through the demo on 127.0.0.1 (items 12, 20, 22): a fragment too short to classify is refused as
jobs.score refuses it, the threshold box starts at two decimals, and a refused payload says why."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from tests.conftest import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.conftest import app_serving

    folder = save_untrained(tmp_path_factory.mktemp("model") / "calibrated", ["high", "low"])
    cfg = json.loads((folder / "config.json").read_text())
    cfg["thresholds"] = {"high": 0.4413515, "low": 0.4413515}
    (folder / "config.json").write_text(json.dumps(cfg))
    with app_serving(folder) as app:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            app.demo.close()


def _call(server: str, api: str, payload: dict) -> tuple[str, dict]:
    """POST to the API, then read the event stream: (event name, its data)."""
    req = urllib.request.Request(
        f"{server}gradio_api/call/{api}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    event_id = json.loads(urllib.request.urlopen(req, timeout=60).read())["event_id"]
    text = urllib.request.urlopen(f"{server}gradio_api/call/{api}/{event_id}", timeout=120).read().decode()
    lines = [ln for ln in text.splitlines() if ln]
    return lines[-2].removeprefix("event: "), json.loads(lines[-1].removeprefix("data: "))


def test_the_demo_refuses_a_fragment_too_short_to_classify(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    cut = tmp_path / "cut.wav"
    sf.write(cut, make_sound("tone", SR, 0.03, np.random.default_rng(1)), SR)
    with pytest.raises(AppError, match="too short to classify: 0.03 s of audio, the minimum is 0.05 s"):
        client.predict(handle_file(str(cut)), api_name="/classify")
    whole = tmp_path / "whole.wav"
    sf.write(whole, make_sound("tone", SR, 1.0, np.random.default_rng(2)), SR)
    labels, *_ = client.predict(handle_file(str(whole)), api_name="/classify")
    assert labels["label"] in ("high", "low")


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]}, "not uploaded by a user"),
        ({"data": []}, "didn't receive enough input values"),
    ],
)
def test_a_refused_payload_says_why(server, payload, words):
    event, data = _call(server, "classify", payload)
    assert event == "error" and data["error"] and words in data["error"]
    assert "root:" not in data["error"]  # refused, not read


def test_the_threshold_box_starts_at_two_decimals(server):
    config = json.loads(urllib.request.urlopen(f"{server}config", timeout=60).read())
    (slider,) = [c for c in config["components"] if c.get("type") == "slider"]
    assert slider["props"]["value"] == 0.44


def test_model_path_given_relative_still_reaches_the_demo_workers(tmp_path, monkeypatch):
    from learner.demo.lanes import Lanes
    from learner.serve.predictor import Predictor

    folder = save_untrained(tmp_path / "m", ["high", "low"])
    monkeypatch.chdir(tmp_path)
    recipe = Lanes.recipe(Predictor.from_dir(Path("m")))
    assert recipe["folder"] == str(folder.resolve())  # workers run in the package root
