"""learner/score outputs under hostile input (issue 13, items 1, 3, 4 and 5): names that are not UTF-8,
outputs that are not ours, truncated and tiny files, a full disk; and a scores table that is easy to analyse
(issue 25, item 21). Each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.score.local import ScoreOptions, score
from learner.score.paths import one_line, original_path
from learner.serve.predictor import Predictor
from tests.conftest import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(
        tmp_path_factory.mktemp("model") / "untrained", ["chirp", "clicks", "noise", "tone"]
    )


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_dir(model_dir, batch_size=16)


@pytest.fixture(scope="module")
def tone_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    sf.write(path, make_sound("tone", SR, 1.0, np.random.default_rng(3)), SR)
    return path.read_bytes()


@pytest.fixture
def odd_names(tmp_path, tone_bytes) -> Path:
    """A folder of the same clip under names a UTF-8 pipeline chokes on (written through bytes paths)."""
    d = tmp_path / "odd"
    d.mkdir()
    for name in (b"good.wav", b"bad_\xff.wav", b"bad_\\xff.wav", b"two\nlines.wav", b"tab\there.wav"):
        with open(os.fsencode(d) + b"/" + name, "wb") as f:
            f.write(tone_bytes)
    return d


def _utf8(text: str) -> str:
    text.encode("utf-8")  # raises on a lone surrogate
    return text


def test_undecodable_name_gets_its_row_and_resume_is_exact(predictor, odd_names, tmp_path):
    out = tmp_path / "scores.parquet"
    s = score([odd_names], predictor, ScoreOptions(str(out), workers=1, progress=False))
    assert (s.scored, s.failed) == (5, 0)
    rows = pq.read_table(out).to_pylist()
    by_raw = {os.fsencode(original_path(r["path"], r["path_hex"])): r for r in rows}
    assert sorted(Path(os.fsdecode(p)).name for p in by_raw) == sorted(os.listdir(odd_names))
    bad = by_raw[os.fsencode(odd_names) + b"/bad_\xff.wav"]
    literal = by_raw[os.fsencode(odd_names) + b"/bad_\\xff.wav"]
    # the same text shown, told apart by path_hex (null for a valid UTF-8 name)
    assert bad["path"] == literal["path"] == str(odd_names / "bad_\\xff.wav")
    assert bytes.fromhex(bad["path_hex"]).endswith(b"bad_\xff.wav") and literal["path_hex"] is None
    assert bad["label"] == literal["label"] == predictor.predict(str(odd_names / "good.wav")).label
    assert bad["error"] is None
    again = score([odd_names], predictor, ScoreOptions(str(out), workers=1, progress=False, resume=True))
    assert (again.scored, again.skipped) == (0, 5)
    bad_path = os.fsdecode(os.fsencode(odd_names) + b"/bad_\xff.wav")
    os.utime(bad_path, ns=(1, 1))  # changed: its one row is replaced, the others stay
    third = score([odd_names], predictor, ScoreOptions(str(out), workers=1, progress=False, resume=True))
    assert (third.scored, third.skipped, third.dropped) == (1, 4, 1)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 5 and sum(r["path_hex"] is not None for r in rows) == 1
    for line in third.lines():
        _utf8(line)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_undecodable_name_in_text_formats(predictor, odd_names, tmp_path, fmt):
    from learner.score.store import read_results

    out = tmp_path / f"scores.{fmt}"
    s = score([odd_names], predictor, ScoreOptions(str(out), fmt=fmt, workers=1, progress=False))
    assert (s.scored, s.failed) == (5, 0)
    t = read_results(out)
    assert sorted(t["path_hex"].to_pylist(), key=str).count(None) == 4
    again = score(
        [odd_names], predictor, ScoreOptions(str(out), fmt=fmt, workers=1, progress=False, resume=True)
    )
    assert again.skipped == 5


def test_predict_json_and_text_lines_survive_odd_names(model_dir, odd_names, capsys):
    from jobs.predict import main

    files = sorted(str(p) for p in odd_names.iterdir())
    files.append(os.fsdecode(os.fsencode(odd_names) + b"/missing_\xfe.wav"))
    assert main([*files, "--model", str(model_dir), "--json"]) == 1
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert len(rows) == 6
    for r in rows:
        _utf8(json.dumps(r, ensure_ascii=False))
    assert [original_path(r["path"], r.get("path_hex")) for r in rows] == files
    assert rows[-1]["error"] and rows[-1]["path_hex"]
    assert main([*files[:-1], "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5  # a newline in a name does not split its line
    assert [ln.split("\t")[0] for ln in lines] == [one_line(f) for f in files[:-1]]
    assert any(ln.startswith(str(odd_names / "two\\nlines.wav")) for ln in lines)
    assert len(set(ln.split("\t")[0] for ln in lines)) == 5  # bad_\xff and the literal bad_\\xff differ


# --- issue 13, item 3: --overwrite deletes only what the job wrote; --resume only continues an earshot output


def _store(out: Path, windows: bool = False):
    from learner.score.rows import FILE_SCHEMA, WINDOW_SCHEMA
    from learner.score.store import PartStore

    return PartStore(out, "parquet", FILE_SCHEMA, WINDOW_SCHEMA if windows else None, part_rows=2)


def _rows(names: list[str]):
    import pyarrow as pa

    from learner.score.rows import FILE_SCHEMA, WINDOW_SCHEMA

    files = pa.Table.from_pylist(
        [{"path": n, "file_size": 1, "file_mtime_ns": 1, "label": "x"} for n in names], schema=FILE_SCHEMA
    )
    wins = pa.Table.from_pylist(
        [{"path": n, "start_s": 0.0, "end_s": 1.0} for n in names], schema=WINDOW_SCHEMA
    )
    return files, wins


META = {"format": "parquet", "model_id": "m"}


def _write_output(out: Path, windows: bool = True, n: int = 5) -> None:
    s = _store(out, windows)
    s.open(META)
    for i in range(n):
        s.add(*_rows([f"/a/{i}.wav"]))
    s.commit()


def test_overwrite_replaces_its_own_output_even_after_a_kill(tmp_path):
    from learner.score.store import read_results, windows_output

    out = tmp_path / "scores.parquet"
    _write_output(out)
    assert len(list(out.glob("part-*.parquet"))) == 3 and read_results(out, windows=True).num_rows == 5
    (out / ".part-00009.parquet.tmp").write_bytes(
        b"half"
    )  # named like ours, but the metadata never listed it
    (out / "._earshot_score.json.abc123.tmp").write_text("{")  # a full disk mid-write of the metadata
    with pytest.raises(FileExistsError, match="part-00009"):  # not listed: not provably ours
        _store(out, True).open(META, overwrite=True)
    (out / ".part-00009.parquet.tmp").unlink()
    s = _store(out, True)
    assert s.open(META, resume=True).keys() == {f"/a/{i}.wav" for i in range(5)}
    s.add(*_rows(["/a/x.wav"]))  # a kill mid-part: the temp part was listed before it was created
    assert (out / ".part-00003.parquet.tmp").is_file()
    _store(out, True).open(META, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["_earshot_score.json"]
    assert list(windows_output(out).iterdir()) == []


def test_overwrite_refuses_what_is_not_its_own(tmp_path):
    from learner.score.ownership import NotOurOutputError
    from learner.score.store import windows_output

    notes = tmp_path / "notes.csv"
    notes.write_text("my notes")
    with pytest.raises(NotOurOutputError, match="notes.csv: is a file"):
        _store(notes).open(META, overwrite=True)
    assert notes.read_text() == "my notes"
    out = tmp_path / "scores.parquet"
    _write_output(out)
    (out / "part-00000.parquet").unlink()
    (out / "part-00000.parquet").mkdir()  # a folder named like a part, with the user's files in it
    (out / "part-00000.parquet" / "mine.wav").write_bytes(b"user data")
    with pytest.raises(NotOurOutputError, match="part-00000.parquet"):
        _store(out, True).open(META, overwrite=True)
    assert (out / "part-00000.parquet" / "mine.wav").read_bytes() == b"user data"
    assert (out / "part-00001.parquet").is_file()  # nothing deleted before refusing
    other = tmp_path / "b.parquet"
    _write_output(other, windows=False)
    windows_output(other).write_text("a user file where the windows folder would go")
    with pytest.raises(NotOurOutputError, match="b.windows.parquet: is a file"):
        _store(other, True).open(META, overwrite=True)
    assert windows_output(other).is_file() and (other / "part-00000.parquet").is_file()
    plain = tmp_path / "folder"
    plain.mkdir()
    (plain / "keep.txt").write_text("x")
    for kw in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(NotOurOutputError, match="not an earshot scoring output"):
            _store(plain).open(META, **kw)
    assert sorted(p.name for p in plain.iterdir()) == ["keep.txt"]


def test_overwrite_of_a_symlink_is_one_line(model_dir, tmp_path):
    from jobs.score import main

    real = tmp_path / "real"
    _write_output(real)
    link = tmp_path / "link.parquet"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(FileExistsError, match="symbolic link") as e:
        main([str(tmp_path), "--model", str(model_dir), "--out", str(link), "--overwrite", "--quiet"])
    assert "\n" not in str(e.value) and link.is_symlink() and (real / "part-00000.parquet").is_file()


# --- issue 13, item 4: audio lost without a word: a `warning` column, too-short files, chained Ogg ----------


def test_truncated_and_tiny_files_are_told_not_scored_confidently(predictor, tmp_path):
    import struct

    from tests.audio_corpus import _chained_ogg, tone

    d = tmp_path / "in"
    d.mkdir()
    full = tmp_path / "full.wav"
    sf.write(full, tone(SR, 3.0), SR, subtype="PCM_16")
    data = full.read_bytes()
    (d / "truncated_1ms.wav").write_bytes(data[: 44 + 32])  # header says 3 s, 16 samples left
    (d / "truncated_half.wav").write_bytes(data[: 44 + SR])  # 0.5 s left: scored, with a warning
    inflated = bytearray(data[: 44 + 2 * SR])
    struct.pack_into("<I", inflated, 40, 2**31)  # the header claims 2^31 bytes of frames over 1 s
    (d / "inflated.wav").write_bytes(bytes(inflated))
    sf.write(d / "one_sample.wav", np.full(1, 0.5, np.float32), SR)
    sf.write(d / "fine.wav", tone(SR, 1.0), SR)
    _chained_ogg(d / "chained.ogg", [tone(SR, 0.5), tone(SR, 2.0), tone(SR, 0.5)])
    out = tmp_path / "scores.parquet"
    s = score([d], predictor, ScoreOptions(str(out), workers=1, progress=False, min_duration_s=0.05))
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    assert (s.scored, s.failed) == (4, 2)
    r = rows["truncated_1ms.wav"]
    assert r["warning"] == "truncated: header says 3 s, file holds 0.001 s"
    assert (
        r["error"] == "too short to classify: 0.001 s of audio, the minimum is 0.05 s" and r["label"] is None
    )
    assert rows["one_sample.wav"]["error"].startswith("too short to classify: 6.25e-05 s")
    assert rows["truncated_half.wav"]["warning"] == "truncated: header says 3 s, file holds 0.5 s"
    assert rows["truncated_half.wav"]["label"] is not None and rows["truncated_half.wav"]["error"] is None
    assert rows["inflated.wav"]["warning"].startswith("truncated: header says 6.711e+04 s, file holds 1 s")
    assert rows["fine.wav"]["warning"] is None
    assert (
        rows["chained.ogg"]["duration_s"] == pytest.approx(3.0, abs=1e-3)
        and rows["chained.ogg"]["error"] is None
    )


# --- issue 13, item 5: a full disk is one line; nothing half-written stays; committed parts and resume stay
# exact


def test_disk_full_mid_run_and_at_the_start(predictor, tone_bytes, tmp_path, monkeypatch):
    import errno

    import learner.folder.files
    from learner.score import store as store_mod
    from learner.score.store import read_results

    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"{i:02d}.wav").write_bytes(tone_bytes)
    out = tmp_path / "scores.parquet"
    real_write, calls = store_mod._PartWriter.write, []

    def write_until_full(self, table):
        calls.append(1)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_write(self, table)

    monkeypatch.setattr(store_mod._PartWriter, "write", write_until_full)
    opts = dict(workers=1, progress=False, batch_size=2, part_rows=4)
    with pytest.raises(
        RuntimeError, match="no space left on the device writing .*; the parts already committed"
    ):
        score([src], predictor, ScoreOptions(str(out), **opts))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    kept = read_results(out)
    assert 0 < kept.num_rows < 12
    monkeypatch.setattr(store_mod._PartWriter, "write", real_write)
    s = score([src], predictor, ScoreOptions(str(out), resume=True, **opts))
    assert s.skipped == kept.num_rows and s.scored == 12 - kept.num_rows
    assert sorted(read_results(out)["path"].to_pylist()) == sorted(str(p) for p in src.iterdir())

    def dump_nothing(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(learner.folder.files.json, "dump", dump_nothing)  # full at the start: the metadata
    with pytest.raises(RuntimeError, match="no space left on the device"):
        score([src], predictor, ScoreOptions(str(out), overwrite=True, **opts))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    score([src], predictor, ScoreOptions(str(out), overwrite=True, **opts))  # nothing left behind refuses it
    assert read_results(out).num_rows == 12


# --- issue 25, item 21: a scores table that is easy to analyse ----------------------------------------------


def test_scores_have_per_class_columns_detected_and_integer_columns(high_low_model, fragment, tmp_path):
    import pandas as pd

    from learner.score.local import ScoreOptions, score

    d = tmp_path / "in"
    d.mkdir()
    for i in range(2):
        sf.write(d / f"{i}.wav", make_sound("tone", SR, 1.0, np.random.default_rng(i)), SR)
    (d / "notes.wav").write_text("not audio")  # an error row: nulls in the integer columns
    p = Predictor.from_dir(high_low_model)
    out = tmp_path / "s.parquet"
    score([d], p, ScoreOptions(str(out), workers=1, progress=False, wide=True))
    df = pd.read_parquet(out).sort_values("path").reset_index(drop=True)
    assert str(df["sample_rate"].dtype) == "Int32" and str(df["file_size"].dtype) == "Int64"
    ok = df[df["error"].isna()]
    assert len(ok) == 2 and np.allclose(ok["score_high"] + ok["score_low"], 1.0, atol=1e-5)
    assert all(list(v) == [lab] for v, lab in zip(ok["detected"], ok["label"]))  # no thresholds: the top
    assert df.loc[df["error"].notna(), "detected"].isna().all()
    narrow = tmp_path / "n.csv"
    score([d], p, ScoreOptions(str(narrow), fmt="csv", workers=1, progress=False))
    csv = pd.read_csv(next(narrow.glob("part-*.csv")))
    assert "score_high" not in csv and json.loads(csv["detected"].dropna().iloc[0]) in (["high"], ["low"])
    with pytest.raises(ValueError, match="wide=False, this run has wide=True"):
        score([d], p, ScoreOptions(str(narrow), fmt="csv", workers=1, progress=False, resume=True, wide=True))
