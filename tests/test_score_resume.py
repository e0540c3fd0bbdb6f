"""learner/score resume: a job continues only its own parts (issue 25, items 3, 11 and 22) and refuses
another backend or model (issue 12, part C, item 15). Each test fails on the code before the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.conftest import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def ab_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", (0.1 * rng.standard_normal(2 * SR)).astype("float32"), SR)
    return d


def _user_parts(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    for name in ("part-00000.parquet", "part-00007.parquet"):
        pq.write_table(pa.table({"mine": [1, 2, 3]}), folder / name)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_never_touches_a_users_parts_in_the_windows_folder(ab_model, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    side = tmp_path / "sx.windows.parquet"
    before = _user_parts(side)
    args = [str(clips), "--model", str(ab_model), "--out", str(out), "--windows", "1,1", "--quiet"]
    with pytest.raises(FileExistsError, match="sx.windows.parquet: holds files") as e:
        main([*args, "--resume"])
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in side.iterdir()} == before and not out.exists()


def test_resume_refuses_a_part_its_metadata_does_not_list(ab_model, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    args = [str(clips), "--model", str(ab_model), "--out", str(out), "--windows", "1,1", "--quiet"]
    main(args)
    side = tmp_path / "sx.windows.parquet"
    pq.write_table(pa.table({"mine": [1]}), side / "part-00007.parquet")
    before = {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())}
    with pytest.raises(FileExistsError, match="part-00007.parquet: a part this scoring output did not write"):
        main([*args, "--resume"])
    assert {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())} == before
    (side / "part-00007.parquet").unlink()
    main([*args, "--resume"])  # its own output still resumes


# --- issue 25, item 11: parts are committed on time while a long file streams -------------------------------


def test_parts_are_committed_while_a_long_file_streams_and_survive_a_kill(ab_model, tmp_path):
    import signal

    from learner.score.store import read_results

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a1.wav", "a2.wav"):
        sf.write(src / name, (0.1 * rng.standard_normal(2 * SR)).astype("float32"), SR)
    sf.write(src / "z_long.wav", (0.1 * rng.standard_normal(480 * SR)).astype("float32"), SR, "PCM_16")
    out = tmp_path / "s.parquet"
    args = [str(src), "--model", str(ab_model), "--out", str(out), "--windows", "1,0.5", "--workers", "1"]
    args += ["--part-rows", "2", "--part-seconds", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.score", *args], env=env, cwd=Path(__file__).parents[1]
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "part-00000.parquet").exists() and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the long file was scored before any part was committed"
        assert (out / "part-00000.parquet").exists()
        proc.send_signal(signal.SIGKILL)  # mid-way through the long file
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = sorted(Path(p).name for p in read_results(out)["path"].to_pylist())
    assert committed == ["a1.wav", "a2.wav"]
    from jobs.score import main

    main([*args, "--resume"])
    assert sorted(Path(p).name for p in read_results(out)["path"].to_pylist()) == [
        "a1.wav",
        "a2.wav",
        "z_long.wav",
    ]


@pytest.fixture(scope="module")
def high_low_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


@pytest.fixture(scope="module")
def noise_clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    return d


def _run_job(main, argv: list[str], capsys) -> tuple[int, str]:
    """A job in this process as its command runs it (`jobs._cli.run`): exit code and stderr."""
    from jobs._cli import run

    with pytest.raises(SystemExit) as e:
        run(lambda: main(argv))
    return e.value.code, capsys.readouterr().err


# --- issue 25, item 22 --------------------------------------------------------------------------------------


def test_a_foreign_part_under_resume_is_one_line(high_low_model, noise_clips, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.score import main

    out = tmp_path / "s.parquet"
    base = [str(noise_clips), "--model", str(high_low_model), "--out", str(out), "--workers", "1", "--quiet"]
    assert _run_job(main, base, capsys)[0] == 0
    foreign = out / "part-00001.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    code, err = _run_job(main, [*base, "--resume"], capsys)
    assert code == 1 and err.count("\n") == 1, err
    # one line naming the foreign part (the store refuses parts its record does not list, before reading them)
    assert err.startswith(f"earshot: {foreign}: ") and "nothing was deleted" in err


# --- issue 12 part C, item 15: --resume refuses another backend or model; rows say how they were made;
# --threshold needs --windows


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
