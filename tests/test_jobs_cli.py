"""The jobs' command lines: fast --help with defaults and no heavy import, one vocabulary (issue 12, part C,
item 13), help and text glitches and unclear messages (issue 25, items 20 and 22)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import LOW_SR

ROOT = Path(__file__).resolve().parent.parent


JOBS = ("train", "evaluate", "predict", "score", "embed", "search", "push", "export", "compare", "datasets")


HEAVY = ("torch", "torchaudio", "fastai", "timm", "gradio", "pandas", "pyarrow", "onnxruntime")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    return env


# --- issue 12 part C, item 13: one vocabulary, defaults in --help, --help at once ---------------------------


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


def _job(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env_cmd = [sys.executable, "-m", *args]
    return subprocess.run(env_cmd, cwd=cwd, capture_output=True, text=True, timeout=300)




# --- issue 25, item 20 --------------------------------------------------------------------------------------


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
    assert report["audio"]["sample_rate"] == used["sample_rate"] == LOW_SR
    assert f"hop {used['hop_length']})" in (out / "report.md").read_text()


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


def test_build_demo_model_splits_keep_valid_out_and_refit_on_every_train_speaker(tmp_path):
    """fit.csv holds out the calibration speakers; all.csv (step 4b) trains on every train speaker, the
    calibration speakers listed again only as its validation split; valid speakers appear in neither."""
    import importlib.util

    script = ROOT / "scripts" / "build_demo_model.py"
    spec = importlib.util.spec_from_file_location("build_demo_model", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    speakers = [f"s{i:02d}" for i in range(40)]
    rows = [
        {"path": f"{g}/{w}.wav", "label": w, "split": "valid" if i >= 32 else "train", "group": g}
        for i, g in enumerate(speakers)
        for w in ("yes", "no", "unknown", "silence")
    ]
    manifest = tmp_path / "manifest-open.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    csvs = build.manifests(manifest, tmp_path / "split")
    fit, every = pd.read_csv(csvs["fit"]), pd.read_csv(csvs["all"])
    calib = set(fit.loc[fit["split"] == "valid", "group"])
    assert calib and calib == {g for g in speakers[:32] if build.is_calibration(g)}
    assert not set(fit.loc[fit["split"] == "train", "group"]) & calib
    assert set(every.loc[every["split"] == "train", "group"]) == set(speakers[:32])
    assert set(every.loc[every["split"] == "valid", "group"]) == calib
    assert not set(every["group"]) & set(speakers[32:])
    assert all(Path(q).is_absolute() for q in every["path"])


# --- issue 25, item 22 --------------------------------------------------------------------------------------


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
