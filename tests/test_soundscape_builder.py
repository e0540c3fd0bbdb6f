"""learner.data.soundscape's builder: given sounds at known times over a bed, with the truth as boxes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from learner.data.annotations import read_boxes
from learner.data.soundscape import (
    background,
    compose_soundscape,
    draw_bed,
    generated_sounds,
    write_soundscapes,
)
from learner.score.event_writers import EVENT_WRITERS, RAVEN_SUFFIX

SR = 16000


def _beds():
    return [background(SR * 8, np.random.default_rng(7), level=0.01)]


def test_sounds_sit_where_the_truth_says_at_the_asked_snr():
    sounds = generated_sounds(n_per_class=3, seed=1)
    x, truth = compose_soundscape(
        sounds, _beds(), 60, n_events=10, overlap_share=0.5, snr_db=(10, 10), seed=2
    )
    assert x.shape == (60 * SR,) and len(truth) == 10
    assert {e.label for e in truth} == set(sounds)
    assert any(b.start_s < a.end_s for a, b in zip(truth, truth[1:], strict=False))  # some overlap
    inside = np.zeros(x.size, dtype=bool)
    for e in truth:
        inside[int(e.start_s * SR) : int(e.end_s * SR)] = True
    bed_rms = np.sqrt(np.mean(x[~inside] ** 2))
    solo = [
        e for e in truth if not any(o is not e and o.start_s < e.end_s and e.start_s < o.end_s for o in truth)
    ]
    for e in solo:
        seg = x[int(e.start_s * SR) : int(e.end_s * SR)]
        snr = 20 * np.log10(np.sqrt(np.mean(seg**2)) / bed_rms)
        assert 9 < snr < 12  # the sound's own 10 dB plus the bed under it


def test_write_soundscapes_writes_recordings_truth_and_raven_tables(tmp_path):
    raven = EVENT_WRITERS["raven"]
    truth = write_soundscapes(
        tmp_path, generated_sounds(n_per_class=2), _beds(), n_recordings=2, duration_s=30, n_events=6,
        table=(RAVEN_SUFFIX, raven.render),
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["rec_00.wav", "rec_01.wav"]
    assert sf.info(tmp_path / "rec_00.wav").duration == 30
    from_tables = read_boxes(tmp_path)
    cols = ["path", "start_s", "end_s", "label"]
    assert from_tables[cols].values.tolist() == truth[cols].values.tolist()
    again = write_soundscapes(tmp_path / "b", generated_sounds(n_per_class=2), _beds(), 2, 30, n_events=6)
    assert again[["start_s", "label"]].values.tolist() == truth[["start_s", "label"]].values.tolist()


def _dominant_hz(x: np.ndarray) -> list[int]:
    """The loudest frequency of each whole second, to the nearest 100 Hz."""
    seconds = range(0, x.size - SR + 1, SR)
    return [round(int(np.abs(np.fft.rfft(x[i : i + SR])).argmax()), -2) for i in seconds]


def test_a_mixed_bed_joins_pieces_of_every_bed_where_a_looped_one_keeps_one():
    t = np.arange(3 * SR) / SR
    tones = [0.05 * np.sin(2 * np.pi * hz * t).astype(np.float32) for hz in (200, 500, 900)]
    looped = draw_bed(tones, 60 * SR, np.random.default_rng(3), SR, "loop")
    mixed = draw_bed(tones, 60 * SR, np.random.default_rng(3), SR, "mix")
    assert looped.shape == mixed.shape == (60 * SR,)
    assert len(set(_dominant_hz(looped))) == 1
    heard = _dominant_hz(mixed)
    assert set(heard) == {200, 500, 900}
    assert sum(a != b for a, b in zip(heard, heard[1:], strict=False)) >= 10  # it keeps changing
    rms = [np.sqrt(np.mean(mixed[i : i + SR // 4] ** 2)) for i in range(0, mixed.size, SR // 4)]
    assert 0.05 / np.sqrt(2) * 10 ** (-3.5 / 20) < np.median(rms) < 0.05 / np.sqrt(2) * 10 ** (3.5 / 20)
    with pytest.raises(ValueError, match="loop, mix"):
        compose_soundscape(generated_sounds(n_per_class=1), tones, 30, n_events=3, bed="site")
