"""Push and pull through the real huggingface_hub client against the local Hub in tests/hub_server.py.

Every test runs with its own HF cache and token file in tmp, Xet off (the local Hub speaks classic LFS),
and never touches the network or the user's cache.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import HfApi, ModelCard, constants
from safetensors.numpy import load_file, save_file

from learner.card import model_card, write_model_card
from learner.hub import HubError, parse_hub_ref, push, resolve_model
from tests.conftest import run_job
from tests.hub_server import HubServer, isolate_hf

ROOT = Path(__file__).resolve().parents[1]
TOKEN, OTHER_TOKEN = "hf_test_alice", "hf_test_bob"
SERVED = {"README.md", "config.json", "metrics.json", "model.safetensors", "confusion_matrix.png"}


@pytest.fixture(autouse=True)
def hf_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF home: cache, token file, no Xet, online; the same for subprocesses via the environment."""
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    return tmp_path / "hf_home"


@pytest.fixture
def hub_server():
    """A fresh local Hub; alice and bob have tokens."""
    with HubServer({TOKEN: "alice", OTHER_TOKEN: "bob"}) as server:
        yield server


def make_model_dir(path: Path, seed: int = 0) -> Path:
    """A small but real model folder: safetensors weights, config, metrics, an image, a pickle and some
    junk."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file(
        {
            "head.weight": rng.standard_normal((3, 64)).astype(np.float32),
            "head.bias": np.zeros(3, np.float32),
        },
        str(path / "model.safetensors"),
    )
    config = {
        "earshot_version": "0.1.0",
        "arch": "xresnet18",
        "classes": ["dog", "rain", "siren"],
        "audio": {"sample_rate": 22050, "duration": 5.0, "n_mels": 128, "norm": "dataset", "extra": {}},
        "train": {"epochs": 5, "lr": 0.001, "pretrained": "imagenet", "data": "esc50", "split": "fold 5"},
        "versions": {"torch": "2.11.0", "fastai": "2.8.12"},
        "dataset": "esc50",
    }
    metrics = {
        "accuracy": 0.9,
        "top3_accuracy": 0.98,
        "map3": 0.93,
        "macro_precision": 0.91,
        "macro_recall": 0.9,
        "macro_f1": 0.905,
        "n_samples": 30,
        "per_class": [
            {
                "label": c,
                "support": 10,
                "top1": 0.9,
                "top3": 1.0,
                "precision": 0.91,
                "recall": 0.9,
                "f1": 0.905,
            }
            for c in config["classes"]
        ],
        "confusion": [[9, 1, 0], [0, 9, 1], [1, 0, 9]],
    }
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (path / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    (path / "model.pkl").write_bytes(b"\x80\x04" + rng.bytes(200))
    (path / "history.csv").write_text("epoch,train_loss,valid_loss\n0,1.0,0.9\n")
    (path / "model.safetensors.tmp").write_bytes(b"partial")
    (path / ".cache").mkdir(exist_ok=True)
    (path / ".cache" / "junk").write_text("x")
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model_dir(tmp_path / "model")


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def test_push_stores_weights_as_lfs_and_pull_is_byte_identical(
    hub_server: HubServer, model_dir: Path
) -> None:
    url = push(model_dir, "alice/esc50-demo", token=TOKEN, endpoint=hub_server.url)
    assert url.startswith(f"{hub_server.url}/alice/esc50-demo/commit/")

    stored = hub_server.repos["alice/esc50-demo"].resolve("main").files
    assert stored["model.safetensors"].lfs_sha256 in hub_server.lfs_objects  # LFS, not inline in the commit
    assert stored["config.json"].lfs_sha256 is None
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p in hub_server.requests)
    assert not any("xet" in p for _, p in hub_server.requests)
    assert {"model.pkl", "history.csv", "README.md"} <= set(stored)
    assert not {"model.safetensors.tmp", ".cache/junk"} & set(stored)
    tree = {
        f.path: f for f in HfApi(endpoint=hub_server.url).list_repo_tree("alice/esc50-demo", recursive=True)
    }
    assert tree["model.safetensors"].lfs.sha256 == stored["model.safetensors"].lfs_sha256
    assert (
        tree["config.json"].lfs is None
        and tree["config.json"].size == (model_dir / "config.json").stat().st_size
    )

    local = resolve_model("alice/esc50-demo", endpoint=hub_server.url)
    assert Path(constants.HF_HUB_CACHE) in local.parents
    assert {p.name for p in local.iterdir()} == SERVED  # no pickle, no .gitattributes
    for name in SERVED:
        assert same_bytes(local / name, model_dir / name), name
    np.testing.assert_array_equal(
        load_file(str(local / "model.safetensors"))["head.weight"],
        load_file(str(model_dir / "model.safetensors"))["head.weight"],
    )

    with_pickle = resolve_model("alice/esc50-demo", endpoint=hub_server.url, include_pickle=True)
    assert same_bytes(with_pickle / "model.pkl", model_dir / "model.pkl")


def test_model_card_metadata_parses(hub_server: HubServer, model_dir: Path) -> None:
    push(model_dir, "alice/card", token=TOKEN, endpoint=hub_server.url)
    text = (resolve_model("alice/card", endpoint=hub_server.url) / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "fastai" and meta["pipeline_tag"] == "audio-classification"
    assert {"earshot", "audio", "audio-classification", "fastai", "xresnet18"} <= set(meta["tags"])
    assert meta["datasets"] == ["esc50"] and "accuracy" in meta["metrics"]
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "audio-classification" and result["dataset"]["split"] == "fold 5"
    assert {m["type"]: m["value"] for m in result["metrics"]}["accuracy"] == 0.9
    card = ModelCard(text)  # huggingface_hub's own parser accepts the model-index
    assert card.data.eval_results[0].metric_value == 0.9 and card.data.library_name == "fastai"
    for needle in (
        'Predictor.from_pretrained("alice/card")',
        "python -m jobs.predict clip.wav --model alice/card",
        "![Confusion matrix](confusion_matrix.png)",
        "`siren`",
        "| `sample_rate` | `22050` |",
        "Intended use and limitations",
        "allow_pickle=True",
    ):
        assert needle in text, needle


def test_model_card_written_only_if_absent(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    (d / "metrics.json").unlink()
    readme = write_model_card(d)
    meta = yaml.safe_load(readme.read_text().split("---\n")[1])
    assert "model-index" not in meta and "metrics" not in meta  # no metrics.json → no claims
    assert 'Predictor.from_pretrained("USER/NAME")' in readme.read_text()
    readme.write_text("my own card")
    assert write_model_card(d, repo_id="a/b").read_text() == "my own card"
    assert "a/b" in write_model_card(d, repo_id="a/b", overwrite=True).read_text()
    assert model_card(d, repo_id="a/b") == readme.read_text()


def test_revisions_commit_and_branch(hub_server: HubServer, tmp_path: Path) -> None:
    v1 = make_model_dir(tmp_path / "v1", seed=1)
    v2 = make_model_dir(tmp_path / "v2", seed=2)
    first = push(v1, "alice/rev", token=TOKEN, endpoint=hub_server.url).rsplit("/", 1)[-1]
    push(v2, "alice/rev", token=TOKEN, endpoint=hub_server.url, commit_message="v2")
    push(v1, "alice/rev", token=TOKEN, endpoint=hub_server.url, revision="stable")

    weights = "model.safetensors"
    assert same_bytes(resolve_model("alice/rev", endpoint=hub_server.url) / weights, v2 / weights)
    assert same_bytes(resolve_model(f"alice/rev@{first}", endpoint=hub_server.url) / weights, v1 / weights)
    assert same_bytes(resolve_model("alice/rev@stable", endpoint=hub_server.url) / weights, v1 / weights)
    assert same_bytes(
        resolve_model("alice/rev", revision="stable", endpoint=hub_server.url) / weights, v1 / weights
    )
    with pytest.raises(HubError, match=r"no revision 'nope' in model repo alice/rev"):
        resolve_model("alice/rev@nope", endpoint=hub_server.url)


def test_bad_token_is_one_clear_line(hub_server: HubServer, model_dir: Path) -> None:
    with pytest.raises(HubError, match=r"token rejected by the Hub \(401 .*\): pass token=") as err:
        push(model_dir, "alice/x", token="hf_expired", endpoint=hub_server.url)
    assert "\n" not in str(err.value)
    push(model_dir, "alice/x", token=TOKEN, endpoint=hub_server.url)
    with pytest.raises(HubError, match="token rejected by the Hub"):
        resolve_model("alice/x", token="hf_expired", endpoint=hub_server.url)
    with pytest.raises(
        HubError, match=r"token rejected by the Hub \(403"
    ):  # bob cannot write to alice's repo
        push(model_dir, "alice/x", token=OTHER_TOKEN, endpoint=hub_server.url)


def test_xet_upload_to_a_hub_without_xet_says_how_to_switch(
    hub_server: HubServer, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hf_xet")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    with pytest.raises(
        HubError, match=r"the Xet upload failed \(.*\); for a Hub without Xet set HF_HUB_DISABLE_XET=1"
    ):
        push(model_dir, "alice/xet", token=TOKEN, endpoint=hub_server.url)
    assert ("GET", "/api/models/alice/xet/xet-write-token/main") in hub_server.requests


def test_missing_repo_is_named(hub_server: HubServer) -> None:
    with pytest.raises(HubError, match=r"no such model repo alice/nope \(or it is private: pass a token\)$"):
        resolve_model("alice/nope", endpoint=hub_server.url)


def test_private_repo_needs_the_owner_token(hub_server: HubServer, model_dir: Path) -> None:
    push(model_dir, "alice/secret", private=True, token=TOKEN, endpoint=hub_server.url)
    assert hub_server.repos["alice/secret"].private
    for token in (None, OTHER_TOKEN):
        with pytest.raises(HubError, match="no such model repo alice/secret"):
            resolve_model("alice/secret", token=token, endpoint=hub_server.url)
    assert (resolve_model("alice/secret", token=TOKEN, endpoint=hub_server.url) / "config.json").is_file()


def test_offline_uses_the_cache_or_says_why(
    hub_server: HubServer, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(model_dir, "alice/cached", token=TOKEN, endpoint=hub_server.url)
    online = resolve_model("alice/cached", endpoint=hub_server.url)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as a user would, after huggingface_hub was imported
    n_requests = len(hub_server.requests)
    assert resolve_model("alice/cached", endpoint=hub_server.url) == online
    with pytest.raises(
        HubError,
        match=r"cannot reach the Hub \(offline mode: HF_HUB_OFFLINE=1\) and alice/other "
        r"is not in the local cache; connect, or pass a local model directory",
    ):
        resolve_model("alice/other", endpoint=hub_server.url)
    assert len(hub_server.requests) == n_requests  # offline means no request at all

    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub_server.stop()  # unreachable Hub: cached ids still work, others say so
    assert same_bytes(
        resolve_model("alice/cached", endpoint=hub_server.url) / "model.safetensors",
        model_dir / "model.safetensors",
    )
    with pytest.raises(
        HubError, match=r"cannot reach the Hub \(.+\) and alice/other is not in the local cache"
    ):
        resolve_model("alice/other", endpoint=hub_server.url)


def test_local_refs_and_folder_checks(tmp_path: Path, model_dir: Path) -> None:
    assert resolve_model(model_dir) == model_dir
    assert resolve_model(str(model_dir)) == model_dir
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubError, match="missing config.json"):
        resolve_model(tmp_path / "empty")
    with pytest.raises(HubError, match="is a file"):
        resolve_model(model_dir / "config.json")
    with pytest.raises(HubError, match="not a Hub id"):
        resolve_model("./models/missing")
    with pytest.raises(HubError, match="no such model directory"):  # a Path is never taken for a Hub id
        resolve_model(Path("models/missing"))
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(HubError, match="missing model.safetensors"):
        push(model_dir, "alice/x", token=TOKEN, endpoint="http://127.0.0.1:9")  # fails before any request
    with pytest.raises(HubError, match="not a Hub repo id"):
        push(make_model_dir(tmp_path / "ok"), "just-a-name", token=TOKEN, endpoint="http://127.0.0.1:9")
    assert parse_hub_ref("user/name@v1.0") == ("user/name", "v1.0")
    assert parse_hub_ref("user/name") == ("user/name", None)
    assert parse_hub_ref("/abs/path") is None and parse_hub_ref("a/b/c") is None


def run_push(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_job(
        "jobs.push", *args, timeout=60,
        env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", **(env or {})},
    )


def test_push_cli(hub_server: HubServer, model_dir: Path) -> None:
    ok = run_push(
        "--model",
        str(model_dir),
        "--repo",
        "alice/cli",
        "--endpoint",
        hub_server.url,
        "--message",
        "from the CLI",
        env={"HF_TOKEN": TOKEN},
    )  # token from the environment
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(f"{hub_server.url}/alice/cli/commit/")
    assert "model.safetensors" in hub_server.repos["alice/cli"].resolve("main").files
    assert hub_server.repos["alice/cli"].resolve("main").summary == "from the CLI"

    bad = run_push(
        "--model", str(model_dir), "--repo", "alice/cli", "--endpoint", hub_server.url, "--token", "nope"
    )
    assert bad.returncode == 1 and bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "token rejected by the Hub" in lines[0] and "Traceback" not in bad.stderr


# --- one way to load a model folder
# -------------------------------------------------------------------------------


def test_one_resolver_checks_a_local_folders_config(tmp_path: Path, model_dir: Path) -> None:
    import learner.folder
    from learner.folder import CARD, CONFIG, METRICS, WEIGHTS, ModelDirError
    from learner.hub import SERVING_FILES, resolve

    assert resolve_model is resolve and not hasattr(learner.folder, "resolve")
    assert {CONFIG, WEIGHTS, CARD, METRICS} <= set(SERVING_FILES)
    (model_dir / CONFIG).write_text('{"arch": "xresnet18"}')  # a config.json that is not an earshot model's
    with pytest.raises(ModelDirError, match="missing 'classes'"):
        resolve(model_dir)


def test_network_from_dir_loads_strictly(tmp_path: Path) -> None:
    import json

    import torch

    from learner.config import AudioConfig
    from learner.folder import ModelDirError, save_model_dir
    from learner.model import create_model
    from learner.model.loading import network_from_dir

    cfg = AudioConfig(sample_rate=16000, duration=1.0, n_mels=32)
    net = create_model("mfcc_cnn1d", 3, cfg)
    config = {"arch": "mfcc_cnn1d", "classes": ["a", "b", "c"], "audio": cfg.to_dict()}
    folder = save_model_dir(tmp_path / "m", net.state_dict(), config)
    again = network_from_dir(folder)
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
    )
    (folder / "config.json").write_text(json.dumps({**config, "classes": ["a", "b"]}))
    with pytest.raises(ModelDirError, match="does not fit a mfcc_cnn1d with 2 classes"):
        network_from_dir(folder)


def test_one_softmax() -> None:
    import numpy as np

    import learner.serve.export as export
    import learner.serve.predictor as predictor
    from learner.serve.backends import scores_from_logits, softmax

    # every backend's scores go through the one scores_from_logits (softmax, or sigmoids for multi-label)
    assert not hasattr(export, "_softmax") and not hasattr(predictor, "softmax")
    assert (
        predictor.scores_from_logits is scores_from_logits and export.scores_from_logits is scores_from_logits
    )
    logits = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])
    np.testing.assert_allclose(softmax(logits), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_array_equal(scores_from_logits(logits, "single"), softmax(logits))
