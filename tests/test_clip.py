import numpy as np
import pytest

from learner.audio.signal import crop_pad, frame_db, trim_silence, windows


def _tone_in_silence(sr=16000):
    x = np.zeros(sr * 2, dtype=np.float32)
    t = np.arange(sr // 2) / sr
    x[sr // 2 : sr] = np.sin(2 * np.pi * 440 * t)
    return x


def test_trim_edges_keeps_the_sound_and_drops_the_silence():
    x = _tone_in_silence()
    y = trim_silence(x, 60.0, "edges")
    assert 8000 <= y.size <= 8000 + 2048  # the 0.5 s tone plus at most a frame either side
    assert np.abs(y).max() == pytest.approx(1.0, abs=1e-3)


def test_trim_all_removes_gaps_between_sounds():
    x = _tone_in_silence()
    x[24000:32000] = x[8000:16000]  # a second tone after a 0.5 s gap
    edges, gaps = trim_silence(x, 60.0, "edges"), trim_silence(x, 60.0, "all")
    assert edges.size > 24000
    assert gaps.size < 16000 + 4 * 1024


def test_trim_leaves_pure_silence_and_none_alone():
    z = np.zeros(1000, dtype=np.float32)
    assert trim_silence(z, 60.0).size == 1000
    x = _tone_in_silence()
    assert trim_silence(x, None) is x
    assert np.isneginf(frame_db(z)).all()


def test_crop_pad_lengths_and_positions():
    x = np.arange(100, dtype=np.float32)
    assert crop_pad(x, 40, 0.5)[0] == 30  # centred
    assert crop_pad(x, 40, 0.0)[0] == 0
    rng = np.random.default_rng(0)
    starts = {crop_pad(x, 40, None, rng)[0] for _ in range(30)}
    assert len(starts) > 5  # random while training
    short = crop_pad(np.array([1, 2, 3], dtype=np.float32), 8, 0.5)
    assert short.tolist() == [1, 2, 3, 1, 2, 3, 1, 2]  # repeat-pad
    assert crop_pad(np.zeros(0, dtype=np.float32), 5).shape == (5,)


def test_windows_cover_the_whole_signal():
    x = np.arange(1000, dtype=np.float32)
    w, starts = windows(x, 300, 150)
    assert w.shape[1] == 300
    assert starts[0] == 0 and starts[-1] + 300 == 1000
    assert np.array_equal(w[1], x[150:450])
    one, s = windows(x[:100], 300, 150)
    assert one.shape == (1, 300) and s.tolist() == [0]
    with pytest.raises(ValueError):
        windows(x, 0, 10)


def test_zero_padding_places_a_short_clip_in_silence():
    x = np.ones(100, dtype=np.float32)
    centred = crop_pad(x, 400, 0.5, pad="zeros")
    assert centred.shape == (400,) and centred.sum() == 100
    assert np.flatnonzero(centred)[0] == 150  # centred: 150 zeros either side
    rng = np.random.default_rng(0)
    starts = {int(np.flatnonzero(crop_pad(x, 400, None, rng, pad="zeros"))[0]) for _ in range(20)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 300  # a random shift while training
    repeated = crop_pad(x, 400, 0.5, pad="repeat")
    assert repeated.sum() == 400


def test_model_folders_from_before_pad_mode_keep_repeat_padding():
    from learner.config import AudioConfig

    assert AudioConfig().pad_mode == "zeros"
    assert AudioConfig.from_dict({"sample_rate": 16000}).pad_mode == "repeat"
    assert AudioConfig.from_dict(AudioConfig().to_dict()).pad_mode == "zeros"
    with pytest.raises(ValueError, match="pad_mode"):
        AudioConfig(pad_mode="mirror")
