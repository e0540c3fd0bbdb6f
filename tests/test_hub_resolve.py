"""learner/hub and the weights fetch: a Hub that never answers costs the probe timeout only (issue 12, part C,
item 7) and a mistyped local path is not looked up on the Hub (issue 25, item 20)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import save_untrained

# --- issue 12 part C, item 7: offline, the default (ImageNet) training fails at once, in one whole line -----


@pytest.fixture()
def silent_server():
    """A port that accepts connections and never answers (a proxy or firewall that swallows requests)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_hub_that_never_answers_costs_the_probe_timeout_only(silent_server, monkeypatch, tmp_path):
    from learner.model.pretrained import PretrainedError, fetch_imagenet

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", silent_server)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(PretrainedError) as e:
        fetch_imagenet("xresnet18", "timm/resnet18d.ra2_in1k", timeout_s=1.0)
    assert time.perf_counter() - t0 < 3.0
    assert "within 1 s" in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def high_low_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


# --- issue 25, item 20 --------------------------------------------------------------------------------------


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(high_low_model, tmp_path, monkeypatch):
    from learner.hub import HubError, resolve

    (tmp_path / "models").mkdir()
    shutil.copytree(high_low_model, tmp_path / "models" / "my_sounds")
    monkeypatch.chdir(tmp_path)

    def never(*a, **k):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr("huggingface_hub.snapshot_download", never)
    with pytest.raises(HubError) as e:
        resolve("models/my_sonds")
    assert "no such model directory; did you mean models/my_sounds?" in str(e.value)
    assert resolve("models/my_sounds") == Path("models/my_sounds")
