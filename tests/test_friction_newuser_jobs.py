"""Issue 25, items 20 and 22: help and text glitches and unclear messages of the jobs (each test fails on the
code before the fix)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.test_hostile import save_untrained

ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def _job(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env_cmd = [sys.executable, "-m", *args]
    return subprocess.run(env_cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    return d


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Two classes of 0.5 s clips at 8 kHz: hop and rate are picked from these when not given."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(1)
    t = np.arange(SR // 2) / SR
    for label in ("tone", "noise"):
        (root / label).mkdir()
        for i in range(8):
            x = (
                np.sin(2 * np.pi * rng.uniform(300, 900) * t)
                if label == "tone"
                else rng.normal(0, 0.3, t.size)
            )
            sf.write(root / label / f"{i}.wav", (0.5 * x).astype(np.float32), SR)
    return root


# --- item 20 -----------------------------------------------------------------------------------------------
def test_train_help_says_rate_hop_and_clip_come_from_the_data():
    from jobs.train import parser

    text = " ".join(parser().format_help().split())
    for flag in ("--sample-rate SAMPLE_RATE", "--hop HOP", "--duration DURATION"):
        after = text.rsplit(flag, 1)[1].split(" --")[0]  # the option's help, not the usage line
        assert "jobs.train" in after and "default: 22050" not in after and "default: 512" not in after


def test_quiet_training_prints_no_python_lists_and_records_processes(tiny_data, tmp_path):
    out = tmp_path / "m"
    argv = ["--data", str(tiny_data), "--out", str(out), "--arch", "conv1d_raw", "--epochs", "2"]
    r = _job("jobs.train", *argv, "--pretrained", "none", "--no-pickle", "-q", "--bs", "4")
    assert r.returncode == 0, r.stderr
    assert "[0, " not in r.stdout + r.stderr and "[1, " not in r.stdout + r.stderr
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["processes"] == 1 and train["effective_bs"] == train["bs"] == 4


def test_compare_reports_the_hop_the_models_used(tiny_data, tmp_path):
    from jobs.compare import main

    out = tmp_path / "cmp"
    argv = ["--data", str(tiny_data), "--archs", "conv1d_raw,mfcc_cnn1d", "--epochs", "1", "--bs", "4"]
    assert main([*argv, "--out", str(out), "--pretrained", "none", "--quiet", "--no-pickle"]) == 0
    used = json.loads((out / "conv1d_raw" / "config.json").read_text())["audio"]
    report = json.loads((out / "report.json").read_text())
    assert used["hop_length"] != 512 and report["audio"]["hop_length"] == used["hop_length"]
    assert report["audio"]["sample_rate"] == used["sample_rate"] == SR
    assert f"hop {used['hop_length']})" in (out / "report.md").read_text()


def _run_job(main, argv: list[str], capsys) -> tuple[int, str]:
    """A job in this process as its command runs it (`jobs._cli.run`): exit code and stderr."""
    from jobs._cli import run

    with pytest.raises(SystemExit) as e:
        run(lambda: main(argv))
    return e.value.code, capsys.readouterr().err


def test_fp16_on_a_cpu_fails_before_decoding_and_makes_no_folder(tiny_data, tmp_path, capsys, monkeypatch):
    import learner.train.fit
    from jobs.train import main

    def never(*a, **k):
        raise AssertionError("decoded before refusing --fp16")

    monkeypatch.setattr(learner.train.fit, "prepare_data", never)
    out = tmp_path / "never"
    code, err = _run_job(
        main, ["--data", str(tiny_data), "--out", str(out), "--fp16", "--pretrained", "none"], capsys
    )
    assert code == 1 and err.count("\n") == 1 and "needs a CUDA GPU" in err
    assert not out.exists()


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(model_dir, tmp_path, monkeypatch):
    from learner.hub import HubError, resolve

    (tmp_path / "models").mkdir()
    shutil.copytree(model_dir, tmp_path / "models" / "my_sounds")
    monkeypatch.chdir(tmp_path)

    def never(*a, **k):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr("huggingface_hub.snapshot_download", never)
    with pytest.raises(HubError) as e:
        resolve("models/my_sonds")
    assert "no such model directory; did you mean models/my_sounds?" in str(e.value)
    assert resolve("models/my_sounds") == Path("models/my_sounds")


def test_build_demo_model_without_the_devset_is_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_demo_model.py"), "--data", str(tmp_path / "none.csv")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and r.stderr.count("\n") <= 1 and "no such manifest" in r.stderr
    assert "Traceback" not in r.stderr


def test_threshold_box_starts_at_two_decimals(model_dir, tmp_path):
    from learner.demo import events as demo_events
    from learner.serve.predictor import Predictor

    folder = tmp_path / "calibrated"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["thresholds"] = {"high": 0.4413515, "low": 0.4413515}
    (folder / "config.json").write_text(json.dumps(cfg))
    assert demo_events.default_threshold(Predictor.from_dir(folder)) == 0.44


# --- item 22 -----------------------------------------------------------------------------------------------
def test_an_unknown_arch_in_config_json_names_the_file(model_dir, tmp_path):
    from learner.folder import ModelDirError
    from learner.serve.predictor import Predictor

    folder = tmp_path / "arch"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["arch"] = "resnet9000"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=rf"^{folder / 'config.json'}: 'arch': unknown arch 'resnet9000'"):
        Predictor.from_dir(folder, backend="torch")


def test_a_pickle_only_folder_says_what_to_do_in_a_job(model_dir, clips, tmp_path):
    folder = tmp_path / "pkl"
    shutil.copytree(model_dir, folder)
    (folder / "model.safetensors").rename(folder / "model.pkl")
    r = _job("jobs.predict", str(clips / "c0.wav"), "--model", str(folder))
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "allow_pickle=True only" not in r.stderr and "no job unpickles" in r.stderr


def test_predict_reads_a_quoted_glob_and_a_txt_list(model_dir, clips, tmp_path, capsys):
    from jobs.predict import main

    listing = tmp_path / "files.txt"
    listing.write_text(f"# two of them\n{clips / 'c0.wav'}\n{clips / 'c2.wav'}\n")
    assert main([str(clips / "c*.wav"), str(listing), "--model", str(model_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["c0.wav", "c1.wav", "c2.wav", "c0.wav", "c2.wav"]
    assert all(r["label"] in ("high", "low") for r in rows)
    with pytest.raises(FileNotFoundError, match="matches nothing"):
        main([str(clips / "x*.wav"), "--model", str(model_dir)])


def test_a_foreign_part_under_resume_is_one_line(model_dir, clips, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.score import main

    out = tmp_path / "s.parquet"
    base = [str(clips), "--model", str(model_dir), "--out", str(out), "--workers", "1", "--quiet"]
    assert _run_job(main, base, capsys)[0] == 0
    foreign = out / "part-00001.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    code, err = _run_job(main, [*base, "--resume"], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"earshot: {foreign}: not a part of these scores")


@pytest.mark.parametrize("job", ["train", "score", "evaluate", "compare"])
def test_out_dash_is_refused(job, tmp_path, capsys, monkeypatch):
    import importlib

    monkeypatch.chdir(tmp_path)
    parser = importlib.import_module(f"jobs.{job}").parser()
    argv = {
        "train": ["--data", "x"],
        "score": ["x", "--model", "m"],
        "evaluate": ["--data", "x", "--model", "m"],
    }
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*argv.get(job, ["--data", "x", "--archs", "xresnet18"]), "--out", "-"])
    assert (
        e.value.code == 2 and "--out -: earshot writes files, not standard output" in capsys.readouterr().err
    )
    assert not (tmp_path / "-").exists()
