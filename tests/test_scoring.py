"""Batch scoring: rows and types, bad files, resume after SIGKILL, windowed event counts, Ray = local."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.score.discover import discover
from learner.score.local import ScoreOptions, score
from learner.score.rows import FILE_SCHEMA, WINDOW_SCHEMA, count_events
from learner.score.store import read_results
from learner.serve.predictor import Predictor
from learner.workers import DecodePool

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


@pytest.fixture(scope="module")
def predictor(trained_model):
    return Predictor.from_dir(trained_model.model_dir, batch_size=16)


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory) -> Path:
    """Good clips in nested folders plus every kind of bad input a field recorder's card can hold."""
    d = tmp_path_factory.mktemp("messy")
    rng = np.random.default_rng(1)
    for i, kind in enumerate(["tone", "chirp", "noise", "clicks"] * 2):
        (d / "site" / kind).mkdir(parents=True, exist_ok=True)
        sf.write(d / "site" / kind / f"{i}.wav", make_sound(kind, SR, 1.0, rng), SR)
    sf.write(d / "tone96k.flac", make_sound("tone", 96000, 1.0, rng), 96000)
    sf.write(d / "eight_channels.wav", np.repeat(make_sound("clicks", SR, 1.0, rng)[:, None], 8, axis=1), SR)
    sf.write(d / "long_tone.wav", make_sound("tone", SR, 5.0, rng), SR)  # > 2 clips: scored in windows
    sf.write(d / "zero_frames.wav", np.zeros(0, np.float32), SR)
    (d / "empty.wav").write_bytes(b"")
    (d / "not_audio.mp3").write_text("this is a text file with an audio name")
    good = (d / "site" / "tone" / "0.wav").read_bytes()
    (d / "corrupt.flac").write_bytes(b"fLaC" + good[4:2000])
    (d / "notes.txt").write_text("ignored: no audio extension")
    (d / ".hidden.wav").write_bytes(good)
    os.symlink("..", d / "site" / "loop")  # a folder link back up: must not loop
    os.symlink("gone.wav", d / "dangling.wav")
    return d


def test_rows_schema_types_and_bad_files(predictor, messy_dir, tmp_path):
    out = tmp_path / "scores.parquet"
    s = score([messy_dir], predictor, ScoreOptions(str(out), workers=2, progress=False, top_k=3))
    table = pq.read_table(out)
    assert table.schema.equals(FILE_SCHEMA)
    assert sorted(p.name for p in out.iterdir()) == ["_earshot_score.json", "part-00000.parquet"]
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows == 16 and ".hidden.wav" not in rows and "notes.txt" not in rows
    assert (s.scored, s.failed, s.skipped) == (11, 5, 0) and s.discovery.links_skipped
    assert any("notes.txt" in x for x in s.discovery.ignored)
    for name in ("zero_frames.wav", "empty.wav", "not_audio.mp3", "corrupt.flac", "dangling.wav"):
        r = rows[name]
        assert r["error"] and r["label"] is None and r["score"] is None and r["top_k"] is None, name
    assert "0 bytes" in rows["empty.wav"]["error"] and "no such file" in rows["dangling.wav"]["error"]
    assert "not an audio file" in rows["not_audio.mp3"]["error"]
    assert rows["eight_channels.wav"]["channels"] == 8 and rows["eight_channels.wav"]["label"] == "clicks"
    assert rows["tone96k.flac"]["sample_rate"] == 96000 and rows["tone96k.flac"]["label"] == "tone"
    assert rows["long_tone.wav"]["n_windows"] == 9 and rows["long_tone.wav"]["duration_s"] == pytest.approx(
        5.0
    )
    # every scored row is exactly what the Predictor says for that file (the one inference path)
    for name, r in rows.items():
        if r["error"] is None:
            ref = predictor.predict(r["path"], top_k=3)
            assert [t["label"] for t in r["top_k"]] == ref.labels, name
            np.testing.assert_allclose([t["score"] for t in r["top_k"]], ref.scores, atol=1e-5)
            assert r["label"] == ref.label and r["n_windows"] == max(1, len(ref.window_starts))
            assert r["error"] is None and r["model_id"] == predictor.model_id and r["scored_at"] is not None
    with pytest.raises(FileExistsError, match="resume=True .* overwrite=True"):
        score([messy_dir], predictor, ScoreOptions(str(out), progress=False))
    with pytest.raises(FileExistsError, match="not an earshot scoring output"):
        score([messy_dir], predictor, ScoreOptions(str(messy_dir), overwrite=True, progress=False))
    assert (messy_dir / "notes.txt").exists()


def test_resume_rescores_changed_files_once_and_formats(predictor, tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        sf.write(src / f"{i}.wav", make_sound("chirp", SR, 0.5, rng), SR)
    (src / "bad.wav").write_bytes(b"junk")
    changed = src / "2.wav"
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        opts = ScoreOptions(str(out), fmt=fmt, workers=1, progress=False, part_rows=3)
        assert score([src], predictor, opts).scored == 6
        sf.write(changed, make_sound("tone", SR, 0.6, rng), SR)  # changed since: new size and mtime
        opts.resume = True
        s = score([src], predictor, opts)
        assert (s.scored, s.failed, s.skipped, s.dropped) == (1, 0, 6, 1), fmt
        opts.retry_errors = True
        s = score([src], predictor, opts)
        assert (s.scored, s.failed, s.skipped, s.dropped) == (0, 1, 6, 1), fmt
        rows = {r["path"]: r for r in read_results(out).to_pylist()}
        assert len(rows) == read_results(out).num_rows == 7, fmt
        assert rows[str(changed)]["label"] == predictor.predict(changed).label, fmt
        assert rows[str(changed)]["file_size"] == changed.stat().st_size, fmt


def _slow_square(x: int, delay_on: int) -> int:
    if x == delay_on:
        time.sleep(60)
    return x * x


def test_decode_pool_time_limit_kills_only_the_stuck_file():
    start = time.monotonic()
    with DecodePool(_slow_square, (3,), workers=2, timeout_s=1.5) as pool:
        got = sorted(map(str, pool.imap_unordered(range(8), on_error=lambda t, why: f"{t}: {why}")))
    assert got == sorted([str(i * i) for i in range(8) if i != 3] + ["3: decode timed out after 1.5 s"])
    assert time.monotonic() - start < 30


def test_event_counts_are_runs_above_threshold():
    top = np.array([0, 0, 1, 1, 0, 2, 2, 2, 0, 0])
    sc = np.array([0.9, 0.8, 0.9, 0.4, 0.9, 0.9, 0.3, 0.9, 0.7, 0.2])
    # class 0: [0,1], [4], [8] → 3; class 1: [2] (3 is below) → 1; class 2: [5], [7] (6 breaks the run) → 2
    assert count_events(top, sc, 3, 0.5).tolist() == [3, 1, 2]
    assert count_events(top, sc, 3, 0.95).tolist() == [0, 0, 0]


def test_windowed_counts_find_planted_events(predictor, tmp_path):
    rng = np.random.default_rng(7)
    bed = np.concatenate([make_sound("clicks", SR, 1.0, rng) for _ in range(30)])  # 30 s of clicks
    for at in (4, 13, 22):  # three 3-second tone calls
        bed[at * SR : (at + 3) * SR] = np.concatenate([make_sound("tone", SR, 1.0, rng) for _ in range(3)])
    sf.write(tmp_path / "field.wav", bed, SR)
    out = tmp_path / "w.parquet"
    opts = ScoreOptions(str(out), window=(1.0, 0.5), threshold=0.5, workers=1, progress=False)
    score([tmp_path / "field.wav"], predictor, opts)
    row = read_results(out).to_pylist()[0]
    wins = pq.read_table(tmp_path / "w.windows.parquet")
    assert wins.schema.equals(WINDOW_SCHEMA) and wins.num_rows == row["n_windows"] == 59
    assert {e["label"]: e["count"] for e in row["events"]}["tone"] == 3
    starts = np.array(wins["start_s"].to_pylist())
    tone = starts[np.array(wins["label"].to_pylist()) == "tone"]
    assert all(any(at - 0.5 <= s <= at + 2.5 for at in (4, 13, 22)) for s in tone)


def test_resume_after_sigkill_gives_one_row_per_file(trained_model, tmp_path):
    src = tmp_path / "many"
    rng = np.random.default_rng(3)
    for i in range(300):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        sf.write(src / f"d{i % 7}" / f"{i:03d}.wav", make_sound(("tone", "noise")[i % 2], SR, 0.3, rng), SR)
    (src / "d0" / "broken.wav").write_bytes(b"RIFF....WAVEfmt")
    out = tmp_path / "o.parquet"
    cmd = [
        sys.executable,
        "-m",
        "jobs.score",
        "--model",
        str(trained_model.model_dir),
        "--input",
        str(src),
        "--output",
        str(out),
        "--windows",
        "1,0.5",
        "--part-rows",
        "10",
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    first = read_results(out)
    assert 0 < first.num_rows < 301, "the kill should land mid-run"
    (out.with_name("o.windows.parquet") / "part-99999.parquet").write_bytes(
        b"orphan of a kill between renames"
    )
    meta = json.loads(
        (out / "_earshot_score.json").read_text()
    )  # a job lists a part's name before writing it
    meta["written"]["windows"].append("part-99999.parquet")
    (out / "_earshot_score.json").write_text(json.dumps(meta))
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"skipped {first.num_rows} " in r.stdout
    t, w = read_results(out), read_results(out, windows=True)
    paths = t["path"].to_pylist()
    assert len(paths) == len(set(paths)) == 301
    assert set(paths) == {f.path for f in discover([src]).files}
    assert sorted(w["path"].to_pylist()) == sorted(
        p for p, e in zip(paths, t["error"].to_pylist()) if e is None
    )
    assert set(first["path"].to_pylist()) <= set(paths) and not list(out.glob(".*tmp"))


@pytest.mark.timeout(240)  # Ray start-up is slow: ~30 s on 2 quiet cores, minutes when loaded
def test_ray_engine_gives_the_local_rows(predictor, trained_model, messy_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from learner.score.ray_engine import RayOptions, score_ray

    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    opts = dict(window=(1.0, 0.5), workers=1, progress=False, top_k=3)
    score([messy_dir], predictor, ScoreOptions(str(local), **opts))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:  # chunk=10: two Ray runs, each committed as its own parts
        s = score_ray(
            [messy_dir], str(trained_model.model_dir), ScoreOptions(str(remote), **opts), RayOptions(chunk=10)
        )
    finally:
        if started:
            ray.shutdown()
    assert (s.scored, s.failed, s.engine) == (11, 5, "ray")
    for windows, events in ((False, False), (True, False), (False, True)):
        a, b = (read_results(o, windows=windows, events=events) for o in (local, remote))
        assert a.schema.equals(b.schema)
        key = ["path", "start_s", "label"] if windows or events else ["path"]
        a, b = (x.sort_by([(k, "ascending") for k in key]).to_pylist() for x in (a, b))
        assert len(a) == len(b) > (0 if events else 10)
        for ra, rb in zip(a, b):
            ra.pop("scored_at", None), rb.pop("scored_at", None)
            assert ra.keys() == rb.keys() and ra["path"] == rb["path"]
            for k in ra:
                if k == "top_k" and ra[k]:
                    assert [x["label"] for x in ra[k]] == [x["label"] for x in rb[k]]
                    np.testing.assert_allclose(
                        [x["score"] for x in ra[k]], [x["score"] for x in rb[k]], atol=1e-5
                    )
                elif isinstance(ra[k], float):
                    assert ra[k] == pytest.approx(rb[k], abs=1e-5), k
                else:
                    assert ra[k] == rb[k], k


# --- one writer table; backend names from BACKENDS
# ------------------------------------------------------------------


def test_formats_come_from_one_writer_table(tmp_path, monkeypatch):
    """Adding a format is one class in `WRITERS`: the store writes, commits, reads and resumes it."""
    import pyarrow as pa

    from jobs.score import parser
    from learner.score.store import PartStore
    from learner.score.writers import FORMATS, WRITERS, JsonlWriter

    assert FORMATS == tuple(WRITERS) == ("parquet", "csv", "jsonl")
    assert (
        parser().parse_args(["--model", "m", "--input", "x", "--output", "o", "--format", "csv"]).fmt
        == "csv"
    )

    class TsvWriter(JsonlWriter):  # the simplest new format: tab-separated path and label
        name = "tsv"

        def write(self, table):
            self._w.write("".join(f"{r['path']}\t{r['label']}\n" for r in table.to_pylist()))

        @staticmethod
        def read(path, columns=None):
            rows = [
                dict(zip(("path", "label"), line.split("\t"), strict=True))
                for line in path.read_text().splitlines()
            ]
            return pa.Table.from_pylist(
                [{**r, "file_size": 1, "file_mtime_ns": 1, "error": None} for r in rows]
            )

    monkeypatch.setitem(WRITERS, "tsv", TsvWriter)
    schema = pa.schema([("path", pa.string()), ("label", pa.string())])
    store = PartStore(tmp_path / "out.tsv", "tsv", schema, None)
    store.open({"format": "tsv"})
    store.add(pa.table({"path": ["a.wav", "b.wav"], "label": ["tone", "noise"]}))
    store.commit()
    assert (tmp_path / "out.tsv" / "part-00000.tsv").read_text() == "a.wav\ttone\nb.wav\tnoise\n"
    done = PartStore(tmp_path / "out.tsv", "tsv", schema, None).open({"format": "tsv"}, resume=True)
    assert set(done) == {"a.wav", "b.wav"}
    assert read_results(tmp_path / "out.tsv")["label"].to_pylist() == ["tone", "noise"]


def test_every_command_line_offers_the_backends_there_are(tmp_path):
    import jobs.evaluate
    import jobs.predict
    import jobs.score
    from learner.serve.backends import BACKEND_CHOICES, BACKENDS

    assert BACKEND_CHOICES == ("auto", *(b for b in BACKENDS if b != "pickle"))
    for parse in (jobs.predict.parser().parse_args, jobs.score.parser().parse_args):
        base = (
            ["f.wav", "--model", "m"]
            if parse.__self__.prog.endswith("predict")
            else ["--model", "m", "--input", "x", "--output", "o"]
        )
        assert parse([*base, "--backend", "onnx-int8"]).backend == "onnx-int8"
        with pytest.raises(SystemExit):
            parse([*base, "--backend", "nope"])
    with pytest.raises(SystemExit):
        jobs.evaluate.main(["--model", "m", "--data", "d", "--backend", "nope"])
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "app.py", "--backend", "nope"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr and "onnx-int8" in out.stderr


def test_decode_time_limit_does_not_count_a_slow_worker_start(tmp_path, monkeypatch):
    """A spawned decoder imports first (seconds on a busy machine); only the file's own time counts."""
    (tmp_path / "slow_start.py").write_text(
        "import time\ntime.sleep(2.5)\n\ndef square(x):\n    return x * x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_start

    with DecodePool(slow_start.square, (), workers=1, timeout_s=1.0) as pool:
        got = sorted(pool.imap_unordered(range(4), on_error=lambda t, why: f"{t}: {why}"))
    assert got == [0, 1, 4, 9]
