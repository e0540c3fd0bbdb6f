"""spoken-digits-synth: espeak-ng through ctypes, the small build, determinism, and on-demand resolution."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.data import recipes, synth

if not synth.espeak_available():
    pytest.skip(
        "espeak-ng unavailable (pip install espeakng-loader or apt-get install espeak-ng)",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent


def _f0(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch of the loud frames (60-400 Hz)."""
    x = x.astype(np.float64)
    n, out = int(0.04 * sr), []
    for i in range(0, len(x) - n, n // 2):
        fr = x[i : i + n] - x[i : i + n].mean()
        if np.sqrt(np.mean(fr**2)) < 0.03 * np.abs(x).max():
            continue
        ac = np.correlate(fr, fr, "full")[n - 1 :]
        lo, hi = sr // 400, sr // 60
        out.append(sr / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(out))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, float]:
    t = time.monotonic()
    manifest = synth.build_spoken_digits(
        tmp_path_factory.mktemp("synth"), voices=synth.SMALL_VOICES, per_voice=2
    )
    return manifest, time.monotonic() - t


def test_synthesize_returns_speech():
    x, sr = synth.synthesize("seven", "en-us")
    assert x.dtype == np.int16 and sr == 22050
    assert 0.2 < len(x) / sr < 1.5 and np.abs(x).max() > 3000
    slow, _ = synth.synthesize("seven", "en-us", rate=100)
    fast, _ = synth.synthesize("seven", "en-us", rate=300)
    assert len(slow) > 1.8 * len(fast)
    with pytest.raises(ValueError, match="no voice 'xx-nope'"):
        synth.synthesize("one", "xx-nope")


def test_different_voices_differ():
    male, sr = synth.synthesize("nine", "en-us")
    female, _ = synth.synthesize("nine", "en+f3")
    scot, _ = synth.synthesize("nine", "en-gb-scotland+m4")
    assert _f0(female, sr) > 1.5 * _f0(male, sr)  # a female variant is really higher
    assert len(male) != len(scot) or not np.array_equal(male, scot)
    again, _ = synth.synthesize("nine", "en-us")
    assert abs(len(again) - len(male)) < 0.01 * len(male)  # only the carried-over pitch phase differs
    assert abs(_f0(again, sr) - _f0(male, sr)) < 5


def test_engine_is_thread_safe():
    jobs = [("one", "en-us", 150), ("four", "en+f3", 200), ("eight", "en-gb-scotland+m4", 120)] * 3
    expected = [synth.synthesize(t, v, r)[0] for t, v, r in jobs]
    got: list = [None] * len(jobs)

    def work(i: int) -> None:
        got[i] = synth.synthesize(*jobs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for a, b in zip(expected, got, strict=True):  # interleaved callbacks would splice utterances together
        assert abs(len(a) - len(b)) < 0.01 * len(a)
        assert abs(_f0(a, 22050) - _f0(b, 22050)) < 0.05 * _f0(a, 22050)


def test_small_build(small):
    manifest, seconds = small
    assert seconds < 15
    df = pd.read_csv(manifest, dtype=str)
    assert list(df.columns) == ["path", "label", "group"] and len(df) == 60
    assert sorted(df["label"].unique()) == sorted(synth.DIGITS)
    assert (df["label"].value_counts() == 6).all()
    assert set(df["group"]) == set(synth.SMALL_VOICES)
    assert (df.groupby("group")["label"].nunique() == 10).all()  # every voice says every digit
    for rel in df["path"]:
        assert not os.path.isabs(rel)
        x, sr = sf.read(manifest.parent / rel, dtype="float32")
        assert sr == 16000 and x.ndim == 1
        assert 0.2 <= len(x) / sr <= 2.0, (rel, len(x) / sr)
        assert 0.01 < np.abs(x).max() <= 1.0
    a = sf.read(manifest.parent / df["path"][(df.group == "en-us") & (df.label == "three")].iloc[0])[0]
    b = sf.read(manifest.parent / df["path"][(df.group == "en+f3") & (df.label == "three")].iloc[0])[0]
    assert len(a) != len(b) or not np.allclose(a, b)


def _build_in_fresh_process(out: Path, seed: int) -> Path:
    code = (
        "import sys; from learner.data.synth import build_spoken_digits; "
        "build_spoken_digits(sys.argv[1], voices=['en+f3'], per_voice=1, seed=int(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(out), str(seed)], cwd=ROOT, check=True, timeout=60)
    return out / "five" / "en_f3_00.wav"


def test_build_is_reproducible_per_seed(tmp_path):
    a, b, c = (_build_in_fresh_process(tmp_path / d, seed) for d, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert a.read_bytes() == b.read_bytes()  # breathy f3 included: espeak-ng's own noise is seeded too
    assert a.read_bytes() != c.read_bytes()
    with pytest.raises(ValueError, match="per_voice"):
        synth.build_spoken_digits(tmp_path / "d", voices=["en-us"], per_voice=0)


def test_missing_espeak_is_one_clear_line(monkeypatch):
    import ctypes.util

    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(synth.EspeakUnavailableError, match="pip install espeakng-loader") as e:
        synth._load_library()
    assert "apt-get install espeak-ng" in str(e.value) and "\n" not in str(e.value)


def test_resolve_data_builds_synth_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_DATA", str(tmp_path))
    real = recipes.get_recipe("spoken-digits-synth")
    small = dataclasses.replace(real, params=dict(voices=["en-us", "en+f3"], per_voice=1))
    monkeypatch.setattr(recipes, "get_recipe", lambda name, *a: small)
    manifest = recipes.resolve_data("spoken-digits-synth")
    assert manifest == tmp_path / "spoken-digits-synth" / "manifest.csv"
    assert len(pd.read_csv(manifest)) == 20
    stamp = manifest.stat().st_mtime_ns
    assert recipes.resolve_data("spoken-digits-synth") == manifest and manifest.stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".*tmp"))  # the temporary build folder is gone


def test_cli_build_small(tmp_path):
    cmd = [sys.executable, "-m", "jobs.datasets", "build", "synth", "--to", str(tmp_path / "s"), "--small"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "60 clips; 10 classes; 3 groups" in r.stdout
