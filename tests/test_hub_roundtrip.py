"""Push a trained model to a local Hub, pull it by id through the Predictor, and get identical predictions."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from learner.hub import push
from learner.serve.predictor import Predictor
from tests.conftest import run_job
from tests.hub_server import HubServer, isolate_hf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    isolate_hf(monkeypatch, tmp_path / "hf_home")
    with HubServer({"hf_alice": "alice"}) as server:
        yield server


def test_push_then_pull_gives_identical_predictions(trained_model, four_class_dir, hub, tmp_path):
    local = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, local)
    url = push(local, "alice/earshot-test", token="hf_alice", endpoint=hub.url)
    assert "alice/earshot-test" in url
    assert "library_name: fastai" in (local / "README.md").read_text()

    pulled = Predictor.from_pretrained("alice/earshot-test", backend="torch", endpoint=hub.url)
    assert pulled.model_id == "alice/earshot-test" and len(pulled.revision) == 40
    assert (pulled.folder / "model.safetensors").is_file() and not (pulled.folder / "model.pkl").exists()
    here = Predictor.from_dir(trained_model.model_dir, backend="torch")
    clips = sorted(four_class_dir.rglob("*.wav"))[::10]
    a = np.stack([r.probs for r in here.predict_many(clips)])
    b = np.stack([r.probs for r in pulled.predict_many(clips)])
    assert np.array_equal(a, b)


def test_evaluate_job_takes_a_hub_id(trained_model, four_class_dir, hub, tmp_path, monkeypatch):
    local = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, local)
    push(local, "alice/earshot-eval", token="hf_alice", endpoint=hub.url)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    r = run_job("jobs.evaluate", "--model", "alice/earshot-eval", "--data", str(four_class_dir), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = run_job("jobs.evaluate", "--model", "alice/never-pushed", "--data", str(four_class_dir), "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "alice/never-pushed" in r.stderr
