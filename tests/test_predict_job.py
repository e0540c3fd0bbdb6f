"""`python -m jobs.predict`: one line (or JSON object) per file, errors per file on stderr, exit 1 if any
failed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound

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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.predict",
            *map(str, files),
            "--model",
            str(trained_model.model_dir),
            "--top-k",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
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
