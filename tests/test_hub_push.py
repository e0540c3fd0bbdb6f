"""Issue 12, part C, item 10: what `jobs.push` publishes (card refreshed per push, only after it succeeds; no
local paths in the card or config.json; "fine-tuned" only when the model was)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.hub import HubError, push
from tests.hub_server import HubServer, isolate_hf
from tests.test_hub import make_model_dir

TOKEN = "hf_test_alice"


@pytest.fixture(autouse=True)
def hf_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    return tmp_path / "hf_home"


@pytest.fixture
def hub_server():
    with HubServer({TOKEN: "alice"}) as server:
        yield server


def _stored(server: HubServer, repo: str, name: str) -> str:
    f = server.repos[repo].resolve("main").files[name]
    return (f.data or server.lfs_objects[f.lfs_sha256]).decode()


def test_each_push_carries_a_card_for_its_own_repo_written_locally_only_after_success(hub_server, tmp_path):
    d = make_model_dir(tmp_path / "m")
    with pytest.raises(HubError):
        push(d, "alice/first", token="hf_expired", endpoint=hub_server.url)
    assert not (d / "README.md").exists()  # a failed push leaves the folder as it was
    push(d, "alice/first", token=TOKEN, endpoint=hub_server.url)
    first = _stored(hub_server, "alice/first", "README.md")
    assert 'Predictor.from_pretrained("alice/first")' in first and (d / "README.md").read_text() == first
    push(d, "alice/second", token=TOKEN, endpoint=hub_server.url)
    second = _stored(hub_server, "alice/second", "README.md")
    assert 'Predictor.from_pretrained("alice/second")' in second and "alice/first" not in second
    assert (d / "README.md").read_text() == second


def test_a_card_the_user_wrote_is_pushed_as_it_is(hub_server, tmp_path):
    d = make_model_dir(tmp_path / "m")
    (d / "README.md").write_text("# my own words\n")
    push(d, "alice/mine", token=TOKEN, endpoint=hub_server.url)
    assert _stored(hub_server, "alice/mine", "README.md") == "# my own words\n"
    assert (d / "README.md").read_text() == "# my own words\n"


def test_no_local_paths_in_the_published_card_or_config(hub_server, tmp_path):
    d = make_model_dir(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    secret = str(tmp_path / "home" / "me" / "recordings")
    cfg["train"]["data"] = f"{secret}/dogs"
    cfg["train"]["cache_dir"] = f"{secret}/cache"
    cfg["pretrained"] = f"body of {secret}/older_model"
    (d / "config.json").write_text(json.dumps(cfg))
    push(d, "alice/clean", token=TOKEN, endpoint=hub_server.url)
    card, config = (
        _stored(hub_server, "alice/clean", "README.md"),
        _stored(hub_server, "alice/clean", "config.json"),
    )
    assert secret not in card and secret not in config and str(tmp_path) not in card + config
    published = json.loads(config)
    assert published["train"]["data"] == "dogs" and published["pretrained"] == "body of older_model"
    assert "fine-tuned with fastai from body of older_model" in card
    assert json.loads((d / "config.json").read_text()) == cfg  # the local folder keeps its own record


@pytest.mark.parametrize(
    "start,words",
    [
        ("none (random init)", "trained from scratch with fastai"),
        (
            "imagenet (timm/resnet18d.ra2_in1k)",
            "fine-tuned with fastai from imagenet (timm/resnet18d.ra2_in1k)",
        ),
    ],
)
def test_card_says_fine_tuned_only_when_it_was(tmp_path, start, words):
    from learner.card import model_card

    d = make_model_dir(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["pretrained"] = start
    (d / "config.json").write_text(json.dumps(cfg))
    card = model_card(d, repo_id="alice/x")
    assert f"(`xresnet18`, {words})" in card
    assert ("fine-tuned" in card) == start.startswith("imagenet")


def test_training_writes_no_local_paths_into_config(trained_model, four_class_dir):
    text = (trained_model.model_dir / "config.json").read_text()
    cfg = json.loads(text)
    assert cfg["train"]["data"] == four_class_dir.name and "cache_dir" not in cfg["train"]
    assert str(four_class_dir.parent) not in text and str(trained_model.model_dir.parent) not in text
