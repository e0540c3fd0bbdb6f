"""Issue 12, part C: what a new user meets first in the jobs (items 7, 12, 13, 14, 15, 18)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_dataset, make_sound

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
JOBS = ("train", "evaluate", "predict", "score", "embed", "search", "push", "export", "compare", "datasets")
HEAVY = ("torch", "torchaudio", "fastai", "timm", "gradio", "pandas", "pyarrow", "onnxruntime")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    return env


# --- item 7: offline, the default (ImageNet) training fails at once, in one whole line
# ----------------------------


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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused


def test_offline_imagenet_training_fails_in_seconds_with_one_whole_line(tmp_path):
    data = make_dataset(tmp_path / "data", n_per_class=3)
    env = _env(
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--data", str(data), "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.perf_counter() - t0
    assert out.returncode == 1, out.stderr
    assert elapsed <= 3.0, f"took {elapsed:.1f} s"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Retry" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    line = lines[0]
    assert line.startswith("earshot: ImageNet weights for xresnet18 (timm/resnet18d.ra2_in1k")
    assert line.endswith(
        "use --pretrained PATH (a downloaded weights file or an earshot model) or --pretrained none"
    )
    assert "cannot be reached" in line and not (tmp_path / "m" / "config.json").exists()


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


def test_library_checks_the_weights_before_decoding_and_names_the_field(monkeypatch, tmp_path):
    import learner.train
    import learner.train.fit
    from learner.config import AudioConfig
    from learner.model.pretrained import PretrainedError

    def no_decoding(*a, **k):
        raise AssertionError("decoded audio before checking the starting weights")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(learner.train.fit, "load_signals", no_decoding)
    data = make_dataset(tmp_path / "data", n_per_class=2)
    args = learner.train.TrainArgs(data=str(data), out=str(tmp_path / "m"), progress=False)
    with pytest.raises(PretrainedError) as e:
        learner.train.train(args, AudioConfig(sample_rate=SR, duration=1.0))
    assert e.value.field == "pretrained" and "--" not in str(e.value)
    assert str(e.value).endswith("set pretrained to a weights file, an earlier earshot model or 'none'")


# --- item 18: excluded files are listed once
# -------------------------------------------------------------------------


def test_training_log_lists_each_excluded_file_once(tmp_path):
    data = make_dataset(tmp_path / "data", n_per_class=6)
    (data / "tone" / "broken_one.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    cmd = [
        sys.executable,
        "-m",
        "jobs.train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "m"),
        "--arch",
        "mfcc_cnn1d",
        "--pretrained",
        "none",
        "--epochs",
        "1",
        "--bs",
        "8",
        "--no-pickle",
        "--quiet",
        "--workers",
        "1",
        "--sample-rate",
        "16000",
        "--duration",
        "1",
        "--n-fft",
        "512",
        "--hop",
        "256",
        "--n-mels",
        "64",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert log.count("broken_one.wav") == 1, log
    assert "1 file(s) could not be read and are excluded from training" in out.stderr


# --- item 13: one vocabulary, defaults in --help, --help at once
# ----------------------------------------------------


def _help(module: list[str]) -> tuple[str, list[str], float]:
    code = (
        "import runpy, sys, time\n"
        f"sys.argv = [{module[-1]!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_{'path' if module[0] == 'path' else 'module'}({module[-1]!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env()
    )
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    text, heavy = out.stdout.rsplit("HEAVY ", 1)
    return text, eval(heavy), elapsed


@pytest.mark.parametrize("job", [*JOBS, "app.py"])
def test_help_is_fast_shows_defaults_and_imports_nothing_heavy(job):
    target = ["path", "app.py"] if job == "app.py" else ["module", f"jobs.{job}"]
    text, heavy, elapsed = _help(target)
    assert heavy == [], heavy
    assert elapsed < 1.0 or min(_help(target)[2] for _ in range(2)) < 1.0
    assert "usage:" in text
    if job != "datasets":  # its options live on the subcommands
        assert "(default: " in text, text


def test_one_vocabulary_across_jobs():
    import argparse
    import importlib

    from jobs._cli import TOP_K, archs, backends
    from learner.model import list_archs
    from learner.serve.predictor import BACKENDS

    assert list(archs()) == list_archs() and archs()["xresnet18"] == "timm/resnet18d.ra2_in1k"
    assert backends() == ["auto", *(b for b in BACKENDS if b != "pickle")]  # pickle: opt-in from Python only
    parsers = {
        j: importlib.import_module(f"jobs.{j}").parser()
        for j in ("train", "evaluate", "predict", "score", "push", "export", "compare")
    }
    for name, p in parsers.items():
        opts = {s: a for a in p._actions for s in a.option_strings}
        assert "--quiet" in opts, name
        if name in ("train", "evaluate", "score", "export", "compare"):
            assert {"--out", "--output"} <= set(opts) and opts["--out"] is opts["--output"], name
        if "--backend" in opts:
            assert list(opts["--backend"].choices) == backends(), name
        if "--top-k" in opts:
            assert opts["--top-k"].default == TOP_K, name
        if name in ("train", "compare"):
            assert isinstance(opts["--pickle"], argparse.BooleanOptionalAction) and "--no-pickle" in opts
    assert {"--backend"} <= set(parsers["evaluate"]._option_string_actions) & set(
        parsers["score"]._option_string_actions
    )
    # the same input spelling in predict and score: positional, or --input
    for name in ("predict", "score"):
        a = parsers[name].parse_args(
            ["x.wav", "--input", "y/", "--model", "m", "--backend", "onnx"]
            + (["--out", "o"] if name == "score" else [])
        )
        assert [*a.inputs, *a.more_inputs] == ["x.wav", "y/"]
    with pytest.raises(SystemExit):  # a typo in --backend is caught where it is typed, in every job
        parsers["score"].parse_args(["x", "--model", "m", "--out", "o", "--backend", "onxx"])
    with pytest.raises(SystemExit):
        parsers["evaluate"].parse_args(["--model", "m", "--data", "d", "--backend", "onxx"])
    old = parsers["score"].parse_args(["--model", "m", "--input", "a", "b", "--output", "o.parquet"])
    assert old.out == "o.parquet" and old.more_inputs == ["a", "b"]
    assert parsers["train"].parse_args(["--data", "d", "--out", "o", "--no-pickle"]).pickle is False
    assert parsers["compare"].parse_args(["--data", "d", "--out", "o"]).pickle is False


# --- item 14: jobs.predict takes folders; JSON lines for failures too; parquet's keys
# --------------------------------


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("friction_clips")
    rng = np.random.default_rng(7)
    (d / "sub").mkdir()
    sf.write(d / "a_tone.wav", make_sound("tone", SR, 1.0, rng), SR)
    sf.write(d / "sub" / "b_clicks.flac", make_sound("clicks", SR, 1.0, rng), SR)
    (d / "c_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (d / "readme.txt").write_text("not audio")
    return d


def test_predict_reads_folders_and_writes_a_json_line_for_every_file(trained_model, clip_dir, capsys):
    from jobs.predict import main
    from learner.score.rows import FILE_SCHEMA

    assert main([str(clip_dir), "--model", str(trained_model.model_dir), "--json", "--top-k", "2"]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a_tone.wav", "c_broken.wav", "b_clicks.flac"]
    assert all(set(r) <= set(FILE_SCHEMA.names) for r in rows) and all("file" not in r for r in rows)
    ok = [r for r in rows if r["error"] is None]
    assert [r["label"] for r in ok] == ["tone", "clicks"] and all(
        len(r["top_k"]) == 2 and r["n_windows"] == 1 for r in ok
    )
    bad = rows[1]
    assert bad["label"] is None and bad["error"] and bad["top_k"] == []
    assert (
        f"{clip_dir / 'c_broken.wav'}: " in err and err.splitlines()[-1] == "earshot: 1 of 3 file(s) failed"
    )


def test_predict_folder_without_audio_is_reported(trained_model, tmp_path, capsys):
    from jobs.predict import main

    (tmp_path / "notes.txt").write_text("no audio here")
    assert main([str(tmp_path), "--model", str(trained_model.model_dir)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"earshot: {tmp_path}: no audio files in this folder"


# --- item 15: --resume refuses another backend or model; rows say how they were made; --threshold needs
# --windows ---


def test_resume_refuses_other_backend_or_weights_and_rows_record_them(trained_model, clip_dir, tmp_path):
    from learner import __version__
    from learner.score.local import ScoreOptions, score
    from learner.score.store import read_results
    from learner.serve.predictor import Predictor

    model = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, model, ignore=shutil.ignore_patterns("model.pkl"))
    out = str(tmp_path / "scores.parquet")
    score(
        [clip_dir], Predictor.from_dir(model, backend="torch"), ScoreOptions(out, workers=1, progress=False)
    )
    rows = read_results(out).to_pylist()
    assert len(rows) == 3 and {(r["backend"], r["earshot_version"]) for r in rows} == {("torch", __version__)}

    class Fake:  # same model folder, another backend (the ONNX one needs an export; the check is by name)
        name = "onnx"

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, waves):
            return self.inner(waves)

    other = Predictor.from_dir(model, backend="torch")
    other.backend = Fake(other.backend)
    with pytest.raises(ValueError, match=r"other backend \(backend='torch', this run has 'onnx'\)"):
        score([clip_dir], other, ScoreOptions(out, workers=1, progress=False, resume=True))
    # the same folder after retraining: other weights under the same model id
    from safetensors.numpy import load_file, save_file

    sd = load_file(str(model / "model.safetensors"))
    save_file(
        {k: (v * 1.01 if v.dtype.kind == "f" else v) for k, v in sd.items()}, str(model / "model.safetensors")
    )
    with pytest.raises(ValueError, match="other model weights"):
        score(
            [clip_dir],
            Predictor.from_dir(model, backend="torch"),
            ScoreOptions(out, workers=1, progress=False, resume=True),
        )
    assert len(read_results(out)) == 3  # nothing mixed in


def test_threshold_without_windows_is_an_error(trained_model, clip_dir, tmp_path):
    from jobs.score import main

    with pytest.raises(ValueError, match="--threshold needs --windows"):
        main(
            [
                str(clip_dir),
                "--model",
                str(trained_model.model_dir),
                "--out",
                str(tmp_path / "o"),
                "--threshold",
                "0.7",
            ]
        )
    assert not (tmp_path / "o").exists()


# --- item 12: jobs.evaluate does not score the training rows by default
# -------------------------------------------


def test_evaluate_defaults_to_the_held_out_rows_of_the_training_data(trained_model, four_class_dir, capsys):
    from jobs.evaluate import main

    cfg = json.loads((trained_model.model_dir / "config.json").read_text())
    n_train, n_valid = cfg["split"]["n_train"], cfg["split"]["n_valid"]
    assert (
        main(["--model", str(trained_model.model_dir), "--data", str(four_class_dir), "--json", "--quiet"])
        == 0
    )
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "valid" and m["training_data"] is True
    assert (
        m["n_samples"] == n_valid == trained_model.metrics["n_valid"]
        and m["n_rows_in_data"] == n_train + n_valid
    )
    assert m["accuracy"] == pytest.approx(trained_model.metrics["accuracy"], abs=1e-6)
    main(["--model", str(trained_model.model_dir), "--data", str(four_class_dir)])
    assert "evaluating its held-out (validation) rows only" in capsys.readouterr().err
    main(
        [
            "--model",
            str(trained_model.model_dir),
            "--data",
            str(four_class_dir),
            "--subset",
            "all",
            "--json",
            "--quiet",
        ]
    )
    assert json.loads(capsys.readouterr().out)["n_samples"] == n_train + n_valid  # asked for: every row


def test_evaluate_scores_all_rows_of_other_data_and_warns_for_models_without_a_record(
    trained_model, tmp_path, capsys
):
    from jobs.evaluate import main

    other = make_dataset(tmp_path / "other", n_per_class=3, seed=11)
    assert main(["--model", str(trained_model.model_dir), "--data", str(other), "--json", "--quiet"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "all" and m["training_data"] is False and m["n_samples"] == 12
    old = tmp_path / "old_model"
    shutil.copytree(trained_model.model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["split"]
    (old / "config.json").write_text(json.dumps(cfg))
    main(["--model", str(old), "--data", str(other)])
    err = capsys.readouterr().err
    assert "does not record which files it trained on" in err and "--subset valid" in err
