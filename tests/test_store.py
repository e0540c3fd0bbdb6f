"""The on-disk decoded-signal store: decoded once, reused, rebuilt for edited files and other settings,
safe against interrupted and concurrent writers, and read back as the decoder's samples."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle

import numpy as np
import pytest
import soundfile as sf

import learner.data.store as store_mod
from learner.config import AudioConfig
from learner.data.signals import load_signal
from learner.data.sounds import make_dataset
from learner.data.store import SignalStore, open_store, pick_signals, settings_key, signal_size

CFG = AudioConfig(sample_rate=16000, duration=1.0)
DECODE = store_mod._decode


@pytest.fixture
def clips(tmp_path):
    root = make_dataset(tmp_path / "data", n_per_class=3)
    return sorted(str(p) for p in root.rglob("*.wav"))


def _count_decodes(monkeypatch) -> list[str]:
    seen: list[str] = []

    def counting(args):
        seen.append(args[0])
        return DECODE(args)

    monkeypatch.setattr(store_mod, "_decode", counting)
    return seen


def test_store_holds_the_decoded_signals_and_is_reused(clips, tmp_path, monkeypatch):
    seen = _count_decodes(monkeypatch)
    store, failures = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    assert failures == {} and len(seen) == len(clips) and set(store) == set(clips)
    for p in clips[:4]:
        want = load_signal(p, CFG)
        got = store[p]
        assert got.dtype == np.float32 and got.shape == want.shape and signal_size(store, p) == want.size
        np.testing.assert_allclose(got, want, atol=1e-3)  # float16: ~3 significant digits
    again, _ = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    assert len(seen) == len(clips), "a second run decoded again"
    np.testing.assert_array_equal(again[clips[0]], store[clips[0]])


def test_edited_files_and_other_settings_are_decoded_again(clips, tmp_path, monkeypatch):
    open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    seen = _count_decodes(monkeypatch)
    x, sr = sf.read(clips[0], dtype="float32")
    sf.write(clips[0], x[: sr // 2], sr)
    os.utime(clips[0], ns=(1, 1))  # a different mtime even on a coarse clock
    store, _ = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    assert seen == [clips[0]] and store.size_of(clips[0]) == load_signal(clips[0], CFG).size
    other = CFG.replace(sample_rate=8000)
    assert settings_key(other) != settings_key(CFG) and settings_key(
        CFG.replace(duration=3.0)
    ) == settings_key(CFG)
    store8k, _ = open_store(clips, other, tmp_path / "store", workers=1, progress=False)
    assert len(seen) == 1 + len(clips) and store8k.size_of(clips[1]) == load_signal(clips[1], other).size


def test_unreadable_files_are_named_every_run_without_decoding_them_again(clips, tmp_path, monkeypatch):
    bad = tmp_path / "data" / "tone" / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    missing = str(tmp_path / "gone.wav")
    paths = [*clips, str(bad), missing]
    store, failures = open_store(paths, CFG, tmp_path / "store", workers=1, progress=False)
    assert set(failures) == {str(bad), missing} and str(bad) not in store and len(store) == len(clips)
    assert "cannot read" in failures[missing]
    seen = _count_decodes(monkeypatch)
    _, again = open_store(paths, CFG, tmp_path / "store", workers=1, progress=False)
    assert again == failures and seen == []


class Crash(Exception):
    """The process dies part way (a kill, an out-of-memory error)."""


def test_an_interrupted_build_keeps_finished_shards_and_leaves_no_partial_file(clips, tmp_path, monkeypatch):
    done: list[str] = []

    def dies_after_five(args):
        if len(done) == 5:
            raise Crash
        done.append(args[0])
        return DECODE(args)

    monkeypatch.setattr(store_mod, "_decode", dies_after_five)
    with pytest.raises(Crash):  # a shard holds about two clips: some are finished, one is not
        open_store(clips, CFG, tmp_path / "store", workers=1, progress=False, shard_bytes=40_000)
    folder = tmp_path / "store" / settings_key(CFG)
    assert not list(folder.glob("*.tmp")) and len(list(folder.glob("*.json"))) >= 2
    seen = _count_decodes(monkeypatch)
    store, failures = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    assert failures == {} and len(store) == len(clips) and 0 < len(seen) < len(clips)
    assert set(seen).isdisjoint(done[:4])


def test_a_dead_writers_temporary_file_is_ignored(clips, tmp_path):
    folder = tmp_path / "store" / settings_key(CFG)
    folder.mkdir(parents=True)
    (folder / "shard-dead.f16.tmp").write_bytes(b"\0" * 100)
    (folder / "shard-dead.json.tmp").write_text("{not json")
    store, failures = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    assert failures == {} and len(store) == len(clips)


def _build(args):
    paths, root = args
    store, failures = open_store(paths, CFG, root, workers=1, progress=False)
    return len(store), len(failures)


def test_concurrent_writers_both_end_with_a_complete_store(clips, tmp_path):
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(_build, [(clips, tmp_path / "store"), (clips[::-1], tmp_path / "store")])
    assert results == [(len(clips), 0), (len(clips), 0)]
    store, _ = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    for p in clips[:3]:
        np.testing.assert_allclose(store[p], load_signal(p, CFG), atol=1e-3)


def test_a_store_pickles_as_paths_and_reads_in_another_process(clips, tmp_path):
    store, _ = open_store(clips, CFG, tmp_path / "store", workers=1, progress=False)
    store[clips[0]]  # opens a shard file, whose descriptor must not travel
    blob = pickle.dumps(store)
    assert len(blob) < 10_000
    clone = pickle.loads(blob)
    assert isinstance(clone, SignalStore) and clone._fds == {}
    np.testing.assert_array_equal(clone[clips[2]], store[clips[2]])


def test_auto_picks_memory_while_signals_fit_and_disk_beyond(clips, monkeypatch):
    monkeypatch.setattr(store_mod, "estimate_decoded_bytes", lambda paths, cfg: 1_000_000)
    monkeypatch.setattr(store_mod, "available_memory", lambda: 10_000_000)
    assert pick_signals("auto", clips, CFG) == "memory"
    assert pick_signals("auto", clips, CFG, processes=8) == "disk"
    assert pick_signals("memory", clips, CFG, processes=8) == "memory"
    with pytest.raises(ValueError, match="signals=ram"):
        pick_signals("ram", clips, CFG)


def test_the_estimate_follows_the_files_lengths(clips):
    est = store_mod.estimate_decoded_bytes(clips, CFG)
    true = sum(sf.info(p).frames for p in clips) * 4
    assert 0.7 * true < est < 1.3 * true


def _rss_file_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc")
def test_reading_every_signal_does_not_grow_resident_memory(tmp_path):
    """An epoch touches every signal: none of the store's bytes may stay resident in the reading process
    (memory maps did, ~20 KB per clip even with MADV_DONTNEED, so 50,000 clips took 1.9 GB)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(64):
        p = tmp_path / "data" / f"c{i:03d}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, rng.uniform(-0.5, 0.5, 4 * 16000).astype(np.float32), 16000, subtype="PCM_16")
        paths.append(str(p))
    store, _ = open_store(
        paths,
        AudioConfig(sample_rate=16000, duration=4.0, trim_db=None),
        tmp_path / "store",
        workers=1,
        progress=False,
    )
    store[paths[0]]
    before = _rss_file_kb()
    for _ in range(2):
        for p in paths:
            assert store[p].size == 4 * 16000
    grown_kb = _rss_file_kb() - before
    assert grown_kb < 1024, f"reading 8 MB of signals left {grown_kb} kB resident"
