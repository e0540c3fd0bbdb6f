"""`python -m jobs.predict`: one line (or JSON object) per file, errors per file on stderr, exit 1 if any
failed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("predict_clips")
    rng = np.random.default_rng(4)
    sf.write(d / "tone.wav", make_sound("tone", 16000, 1.0, rng), 16000)
    sf.write(d / "clicks.flac", make_sound("clicks", 16000, 1.0, rng), 16000)
    sf.write(d / "noise_44k.wav", make_sound("noise", 44100, 1.2, rng), 44100)  # resampled on the way in
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    return {p.stem: p for p in d.iterdir()}


def test_one_line_per_file_errors_on_stderr_exit_1(trained_model, clips):
    files = [clips["tone"], clips["broken"], clips["clicks"], clips["tone"].with_name("missing.wav")]
    out = run_job(
        "jobs.predict", *map(str, files), "--model", str(trained_model.model_dir), "--top-k", "2",
        timeout=300,
    )
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [str(clips["tone"]), str(clips["clicks"])]
    assert lines[0].split("\t")[1].split()[0] == "tone" and lines[1].split("\t")[1].split()[0] == "clicks"
    assert len(lines[0].split("\t")[1].split()) == 4  # two labels, two scores
    err = out.stderr.splitlines()
    assert len(err) == 3 and "Traceback" not in out.stderr
    assert err[0].startswith(f"earshot: {clips['broken']}: ") and err[1].startswith(f"earshot: {files[3]}: ")
    assert err[2] == "earshot: 2 of 4 file(s) failed"


def test_json_and_model_from_environment(trained_model, clips, monkeypatch, capsys):
    from jobs.predict import main

    monkeypatch.setenv("EARSHOT_MODEL", str(trained_model.model_dir))
    files = [str(clips["tone"]), str(clips["noise_44k"])]
    assert main([*files, "--json", "--top-k", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == files
    assert [r["label"] for r in rows] == ["tone", "noise"]
    for r in rows:
        assert len(r["top_k"]) == 3 and r["top_k"][0] == {"label": r["label"], "score": r["score"]}
        assert r["top_k"][0]["score"] >= r["top_k"][1]["score"] >= r["top_k"][2]["score"]
    assert rows[1]["duration_s"] == pytest.approx(1.2, abs=1e-3)


def test_no_model_is_a_clear_error(monkeypatch, clips):
    from jobs.predict import main

    monkeypatch.delenv("EARSHOT_MODEL", raising=False)
    with pytest.raises(
        ValueError, match=re.escape("no model: pass --model DIR|USER/NAME or set EARSHOT_MODEL")
    ):
        main([str(clips["tone"])])


SR = 16000


# --- issue 12 part C, item 14: jobs.predict takes folders; JSON lines for failures too; parquet's keys ------


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


# --- issue 25, item 12: one too-short rule for score, predict and the demo ----------------------------------


def test_predict_job_refuses_fragments_and_json_has_the_warning_key(
    high_low_model, fragment, tmp_path, capsys
):
    from jobs.predict import main

    good = tmp_path / "good.wav"
    sf.write(good, make_sound("tone", SR, 1.0, np.random.default_rng(2)), SR)
    assert main([str(fragment), str(good), "--model", str(high_low_model), "--json"]) == 1
    out, err = capsys.readouterr()
    bad, fine = (json.loads(line) for line in out.splitlines())
    assert bad["label"] is None and bad["error"].startswith("too short to classify")
    assert "warning" in bad and fine["warning"] is None and fine["label"] in ("high", "low")
    assert "too short to classify" in err


def _job(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env_cmd = [sys.executable, "-m", *args]
    return subprocess.run(env_cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def noise_clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    return d


# --- issue 25, item 22 --------------------------------------------------------------------------------------


def test_a_pickle_only_folder_says_what_to_do_in_a_job(high_low_model, noise_clips, tmp_path):
    folder = tmp_path / "pkl"
    shutil.copytree(high_low_model, folder)
    (folder / "model.safetensors").rename(folder / "model.pkl")
    r = _job("jobs.predict", str(noise_clips / "c0.wav"), "--model", str(folder))
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "allow_pickle=True only" not in r.stderr and "no job unpickles" in r.stderr


def test_predict_reads_a_quoted_glob_and_a_txt_list(high_low_model, noise_clips, tmp_path, capsys):
    from jobs.predict import main

    listing = tmp_path / "files.txt"
    listing.write_text(f"# two of them\n{noise_clips / 'c0.wav'}\n{noise_clips / 'c2.wav'}\n")
    assert main([str(noise_clips / "c*.wav"), str(listing), "--model", str(high_low_model), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["c0.wav", "c1.wav", "c2.wav", "c0.wav", "c2.wav"]
    assert all(r["label"] in ("high", "low") for r in rows)
    with pytest.raises(FileNotFoundError, match="matches nothing"):
        main([str(noise_clips / "x*.wav"), "--model", str(high_low_model)])
