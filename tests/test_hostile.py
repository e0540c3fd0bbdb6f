"""Hostile input and faults (issue 13): names that are not UTF-8, outputs that are not ours, bad model
folders, lying headers, a full disk. Each test fails on the code before the fix."""

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

SR = 16000


def save_untrained(folder: Path, classes: list[str], arch: str = "xresnet18") -> Path:
    """A real model folder with random weights: enough for paths, rows and validation (no training wait)."""
    import torch

    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model import create_model, get_arch
    from tests.conftest import SMALL_AUDIO

    torch.manual_seed(0)
    cfg = AudioConfig(**SMALL_AUDIO)
    net = create_model(arch, len(classes), cfg).eval()
    return save_model_dir(
        folder,
        net.state_dict(),
        {"arch": arch, "input": get_arch(arch).input, "classes": classes, "audio": cfg.to_dict()},
    )


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


# --- item 3: --overwrite deletes only what the job wrote; --resume only continues an earshot output
# ----------
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


# --- item 6: model folders are validated on load ------------------------------------------------------------
def _with_config(src: Path, dst: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if key.startswith("audio."):
            cfg["audio"][key[6:]] = value
        elif value is ...:
            cfg.pop(key)
        else:
            cfg[key] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


BAD_CONFIGS = {
    "classes-string": ({"classes": "wxyz"}, "'classes' must be a list of class names"),
    "classes-duplicate": ({"classes": ["a", "b", "a", "c"]}, "names 'a' twice"),
    "classes-empty-name": ({"classes": ["a", " ", "b", "c"]}, r"'classes'\[1\] must be a non-empty name"),
    "classes-million": ({"classes": [f"c{i}" for i in range(1_000_000)]}, "1 to 20000 names"),
    "classes-none": ({"classes": []}, "1 to 20000 names"),
    "sample-rate-text": ({"audio.sample_rate": "22050"}, "'audio.sample_rate' must be a whole number"),
    "sample-rate-huge": ({"audio.sample_rate": 10**9}, "'audio.sample_rate'"),
    "duration-1e7": ({"audio.duration": 1e7}, "'audio.duration' must be a number from 0.001 to 600"),
    "duration-nan": ({"audio.duration": float("nan")}, "'audio.duration'"),
    "n-mels-bool": ({"audio.n_mels": True}, "'audio.n_mels' must be a whole number"),
    "norm-unknown": ({"audio.norm": "loud"}, "norm must be"),
    "arch-missing": ({"arch": ...}, "missing 'arch'"),
    "task-unknown": ({"task": "both"}, "'task' must be one of single, multi"),
    "thresholds-range": (
        {"thresholds": {"tone": 1.5}},
        r"'thresholds'\['tone'\] must be a number from 0 to 1",
    ),
    "thresholds-unknown-class": ({"thresholds": {"cat": 0.5}}, "'cat', which is not one of 'classes'"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_model_config_is_one_clear_error(model_dir, tmp_path, case):
    from learner.folder import ModelDirError

    changes, message = BAD_CONFIGS[case]
    folder = _with_config(model_dir, tmp_path / case, **changes)
    with pytest.raises(ModelDirError, match=message) as e:
        Predictor.from_dir(folder)
    assert str(folder / "config.json") in str(e.value) and "\n" not in str(e.value)


def test_config_of_newer_versions_and_multi_label_keys_still_load(model_dir, tmp_path):
    folder = _with_config(
        model_dir,
        tmp_path / "newer",
        task="multi",
        thresholds={"tone": 0.3, "noise": 1},
        some_future_key={"x": 1},
    )
    assert Predictor.from_dir(folder).classes == ["chirp", "clicks", "noise", "tone"]


def test_nan_weights_are_refused(model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from learner.folder import ModelDirError

    folder = tmp_path / "nan"
    shutil.copytree(model_dir, folder)
    sd = load_file(str(folder / "model.safetensors"))
    key = next(k for k, t in sd.items() if t.is_floating_point() and t.numel() > 1)
    sd[key][0] = float("nan")
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelDirError, match=f"1 tensor\\(s\\) hold NaN or infinite values \\({key}\\)"):
        Predictor.from_dir(folder)


# --- item 4: audio lost without a word: a `warning` column, too-short files, chained Ogg
# ----------------------
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


def test_chained_ogg_decodes_every_link_sample_exactly(tmp_path):
    from learner.audio import decode, probe
    from tests.audio_corpus import _chained_ogg, tone

    parts = [tone(SR, 0.5, freq=440.0), tone(SR, 1.5, freq=880.0), tone(SR, 0.25, freq=220.0)]
    path = _chained_ogg(tmp_path / "chain.ogg", parts)
    whole = decode(path)
    assert whole.duration_s == pytest.approx(2.25, abs=1e-4) and whole.warning is None
    mid = decode(path, offset_s=0.5, duration_s=1.5).samples  # exactly the second link: 880 Hz
    spectrum = np.abs(np.fft.rfft(mid))
    assert np.argmax(spectrum) * SR / mid.size == pytest.approx(880, abs=2)
    assert probe(path).duration_s == pytest.approx(2.25, abs=1e-4)


# --- item 7: a saved model is readable like any file the user writes
# -----------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_model_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        folder = save_untrained(tmp_path / "m", ["a", "b"])
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# --- item 5: a full disk is one line; nothing half-written stays; committed parts and resume stay exact
# -------
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


# --- item 10: the demo does not keep every upload forever
# ------------------------------------------------------
def test_demo_deletes_old_uploads(model_dir, monkeypatch):
    import importlib
    import sys

    from learner.demo.models import ServedModel

    monkeypatch.setenv("EARSHOT_MODEL", str(model_dir))
    sys.modules.pop("app", None)
    try:
        app = importlib.import_module("app")
        blocks = app.build_demo(ServedModel(Predictor.from_dir(model_dir), model_dir))
    finally:
        sys.modules.pop("app", None)
    every, older_than = blocks.delete_cache
    assert 0 < every <= 3600 and 0 < older_than <= 3600  # uploads, refused ones included, go within the hour
    assert blocks.upload_file_set in blocks.temp_file_sets  # what Gradio's cache deletion sweeps


# --- item 2: limits count decoded samples (rate × channels × seconds), checked from the header
# -----------------
def test_sample_limit_refuses_high_rate_many_channel_files_from_the_header(tmp_path):
    import time

    from learner.audio import TooLongError, decode

    quiet = tmp_path / "quiet_384k_8ch.flac"
    sf.write(
        quiet, np.zeros((384_000 // 2, 8), np.int16), 384_000, subtype="PCM_16"
    )  # 0.5 s, small as silence
    ok = tmp_path / "ok_48k_stereo.flac"
    sf.write(ok, np.zeros((24_000, 2), np.int16), 48_000, subtype="PCM_16")
    start = time.perf_counter()
    with pytest.raises(
        TooLongError, match=r"0\.5 s at 384000 Hz × 8 channel\(s\): 2 M samples, over the 0 M limit"
    ):
        decode(quiet, 16000, max_duration_s=1.0)  # 1 s of limit = 96 000 samples (48 kHz stereo)
    assert time.perf_counter() - start < 1.0
    assert decode(ok, 16000, max_duration_s=1.0).duration_s == pytest.approx(0.5)
    assert decode(quiet, 16000).duration_s == pytest.approx(0.5)  # no limit asked: decoded
