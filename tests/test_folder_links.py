"""Issue 25, items 1-2: a model folder is read as regular files only. A symbolic link anywhere in it is
refused on push (nothing uploaded), on load, and the demo never serves what one points to nor names server
files in /config. Each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from learner.folder import ModelDirError
from learner.hub import HubError, push, resolve
from learner.serve.predictor import Predictor
from tests.conftest import app_serving, save_untrained
from tests.hub_server import HubServer, isolate_hf
from tests.test_hub import make_model_dir

TOKEN = "hf_test_alice"


SECRET = "TOP-SECRET-CREDENTIALS\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    d = tmp_path / "home" / "secret"
    d.mkdir(parents=True)
    (d / "credentials").write_text(SECRET)
    return d


def _plant(folder: Path, kind: str, secret: Path) -> Path:
    """One link of `kind` inside `folder`; returns the link."""
    if kind == "file":
        link = folder / "passwd.png"
        link.symlink_to(secret / "credentials")
    elif kind == "dir":
        link = folder / "linkdir"
        link.symlink_to(secret, target_is_directory=True)
    elif kind == "nested":
        (folder / "extra").mkdir()
        link = folder / "extra" / "notes.txt"
        link.symlink_to(secret / "credentials")
    elif kind == "shown":  # a file the card and demo show, replaced by a link
        link = folder / "confusion_matrix.png"
        link.unlink(missing_ok=True)
        link.symlink_to(secret / "credentials")
    else:
        link = folder / "dangling.png"
        link.symlink_to(folder / "nowhere")
    return link


KINDS = ["file", "dir", "nested", "shown", "dangling"]


@pytest.mark.parametrize("kind", KINDS)
def test_push_refuses_links_and_uploads_nothing(tmp_path, monkeypatch, secret, kind):
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    d = make_model_dir(tmp_path / "m")
    link = _plant(d, kind, secret)
    with HubServer({TOKEN: "alice"}) as hub:
        with pytest.raises(HubError) as err:
            push(d, "alice/leak", token=TOKEN, endpoint=hub.url)
        assert str(link) in str(err.value) and "symbolic link" in str(err.value)
        assert "\n" not in str(err.value)
        assert "alice/leak" not in hub.repos  # refused before any network call: no repo, no commit
        assert not any(SECRET.encode() in blob for blob in hub.lfs_objects.values())


def test_push_without_links_still_publishes_every_file(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    d = make_model_dir(tmp_path / "m")
    (d / "extra").mkdir()
    (d / "extra" / "notes.txt").write_text("mine\n")
    with HubServer({TOKEN: "alice"}) as hub:
        push(d, "alice/ok", token=TOKEN, endpoint=hub.url)
        files = hub.repos["alice/ok"].resolve("main").files
    assert {"config.json", "model.safetensors", "confusion_matrix.png", "extra/notes.txt"} <= set(files)


@pytest.mark.parametrize("kind", KINDS)
def test_loading_refuses_links(tmp_path, secret, kind):
    d = save_untrained(tmp_path / "m", ["a", "b"])
    link = _plant(d, kind, secret)
    for load in (Predictor.from_dir, resolve):
        with pytest.raises((ModelDirError, HubError)) as err:
            load(d)
        assert str(link) in str(err.value) and "\n" not in str(err.value)


def test_a_linked_config_or_weights_is_refused(tmp_path, secret):
    d = save_untrained(tmp_path / "m", ["a", "b"])
    real = tmp_path / "elsewhere"
    real.mkdir()
    os.replace(d / "model.safetensors", real / "model.safetensors")
    (d / "model.safetensors").symlink_to(real / "model.safetensors")
    with pytest.raises(ModelDirError, match="model.safetensors: a symbolic link"):
        Predictor.from_dir(d)


def test_a_hub_snapshot_of_links_into_its_own_blobs_still_loads(tmp_path):
    """huggingface_hub's cache is a folder of links into the repo's blobs/: that layout (only that) loads."""
    src = save_untrained(tmp_path / "src", ["a", "b"])
    repo = tmp_path / "cache" / "models--alice--m"
    snap = repo / "snapshots" / ("0" * 40)
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(src.iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        os.replace(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    assert Predictor.from_dir(snap).classes == ["a", "b"]
    (snap / "leak.png").symlink_to("/etc/passwd")  # a link leaving the repo's blobs is refused even there
    with pytest.raises(ModelDirError, match="leak.png: a symbolic link"):
        Predictor.from_dir(snap)


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_config_names_no_server_file_and_links_are_never_served(tmp_path, secret):
    from learner.demo.model_tab import model_info

    d = save_untrained(tmp_path / "m", ["a", "b"])
    (d / "confusion_matrix.png").write_bytes(_png())
    with app_serving(d) as app:
        port = _free_port()
        app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            base = f"http://127.0.0.1:{port}"
            config = urllib.request.urlopen(f"{base}/config", timeout=30).read().decode()
            paths = [p for p in re.findall(r'"path": ?"([^"]*)"', config) if not p.startswith("http")]
            assert paths == [] and str(d) not in config and "/tmp/" not in config
            assert "data:image/png;base64," in config  # the matrix is shown, inline
            # a link swapped in after the page was built is neither read nor served
            (d / "confusion_matrix.png").unlink()
            _plant(d, "shown", secret)
            assert model_info(app.served.predictor, d).confusion_png is None
            for path in (d / "confusion_matrix.png", secret / "credentials"):
                try:
                    body = urllib.request.urlopen(f"{base}/gradio_api/file={path}", timeout=30).read()
                except urllib.error.HTTPError as e:
                    assert e.code in (403, 404)
                else:
                    assert SECRET.encode() not in body
        finally:
            app.demo.close()


def test_demo_refuses_a_model_folder_with_a_link(tmp_path, secret):
    d = save_untrained(tmp_path / "m", ["a", "b"])
    _plant(d, "shown", secret)
    with pytest.raises(ModelDirError, match="confusion_matrix.png: a symbolic link"):
        with app_serving(d):
            pass
    assert json.loads((d / "config.json").read_text())["classes"] == ["a", "b"]
