"""Transform contracts: each one changes type or shape as promised (a no-op would pass silently otherwise)."""

import numpy as np
import pytest
import torch

from learner.config import AudioConfig
from learner.model.frontend import FrontEnd, LogMel, Normalize
from learner.train.transforms import (
    AudioSpectrogram,
    AudioTensor,
    AudioToFeatures,
    CropPad,
    LoadAudio,
    SpecAugment,
    TrimSilence,
    WaveAugment,
)

CFG = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512)


def _tone(seconds=0.5, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return np.sin(2 * np.pi * 440 * t).astype(np.float32)


def test_audio_tensor_create_from_array_path_and_bytes(tmp_path):
    import soundfile as sf

    a = AudioTensor.create((16000, _tone()))
    assert isinstance(a, AudioTensor) and a.shape == (1, 8000) and a.sr == 16000
    sf.write(tmp_path / "t.wav", np.stack([_tone(), _tone()], 1), 8000)  # stereo, 8 kHz
    b = AudioTensor.create(tmp_path / "t.wav", sr=16000)
    assert b.shape == (1, 16000) and b.sr == 16000
    c = AudioTensor.create((tmp_path / "t.wav").read_bytes(), sr=16000)
    assert torch.equal(b, c)
    assert a.duration == pytest.approx(0.5)


def test_load_audio_uses_the_cache_before_decoding(tmp_path):
    cached = {"/not/a/file.wav": np.ones(100, dtype=np.float32)}
    x = LoadAudio(CFG, cached)("/not/a/file.wav")
    assert isinstance(x, AudioTensor) and x.shape == (1, 100) and x.sr == 16000


def test_trim_silence_transform_shortens_audio():
    x = np.concatenate([np.zeros(16000, dtype=np.float32), _tone(), np.zeros(16000, dtype=np.float32)])
    y = TrimSilence(60.0)(AudioTensor.create((16000, x)))
    assert isinstance(y, AudioTensor) and y.shape[-1] < 8000 + 4096 and y.sr == 16000


def test_crop_pad_is_random_when_training_and_centred_otherwise():
    x = AudioTensor.create((16000, np.arange(48000, dtype=np.float32)))
    tfm = CropPad(1.0, seed=0)
    train = {int(tfm(x, split_idx=0)[0, 0]) for _ in range(10)}
    valid = {int(tfm(x, split_idx=1)[0, 0]) for _ in range(3)}
    assert len(train) > 3 and valid == {16000}
    short = tfm(AudioTensor.create((16000, _tone(0.3))), split_idx=1)
    assert isinstance(short, AudioTensor) and short.shape == (1, 16000)


def test_wave_augment_acts_in_training_only():
    x = AudioTensor.create((16000, _tone(1.0)))
    tfm = WaveAugment(pitch=2, stretch=0.2, noise_snr=(10, 20), gain_db=6, p=1.0, seed=0)
    y = tfm(x, split_idx=0)
    assert isinstance(y, AudioTensor) and y.shape == x.shape and not torch.allclose(y, x)
    assert torch.equal(tfm(x, split_idx=1), x)


def test_hum_is_mains_hum_at_the_drawn_snr_and_on_with_its_flag():
    from learner.train.augment import Hum

    x = torch.from_numpy(_tone(1.0)).reshape(1, -1)
    for seed in range(4):
        hum = (Hum((10.0, 10.0))(x, 16000, np.random.default_rng(seed)) - x).reshape(-1).numpy()
        assert 10 * np.log10(float(torch.mean(x**2)) / np.mean(hum**2)) == pytest.approx(10.0, abs=0.01)
        spectrum = np.abs(np.fft.rfft(hum * np.hanning(hum.size)))  # 1 s: bin k is k Hz
        f0 = int(np.argmax(spectrum[40:70])) + 40
        assert (
            any(abs(f0 - mains) <= 1 for mains in (50, 60)) and spectrum[600:].max() < 1e-3 * spectrum.max()
        )
    cfg = AudioConfig(sample_rate=16000, duration=1.0, aug_hum_snr=(0, 20))
    assert cfg.aug_hum_snr == (0.0, 20.0)
    assert [type(s).__name__ for s in WaveAugment.from_config(cfg).steps] == ["Hum"]


def test_features_batch_transform_changes_type_and_shape():
    batch = AudioTensor(torch.randn(3, 1, CFG.n_samples))
    spec = AudioToFeatures(FrontEnd(CFG, "spectrogram"))(batch)
    assert isinstance(spec, AudioSpectrogram) and spec.shape == (3, 1, 64, CFG.n_frames)
    mfcc = AudioToFeatures(FrontEnd(CFG, "mfcc"))(batch)
    assert mfcc.shape == (3, 1, CFG.n_mfcc, CFG.n_frames)


def test_logmel_matches_per_clip_and_in_a_batch():
    waves = torch.randn(4, 1, CFG.n_samples) * torch.tensor([0.01, 0.1, 1.0, 3.0]).view(4, 1, 1)
    lm = LogMel(CFG)
    batch = lm(waves)
    each = torch.stack([lm(w) for w in waves])
    assert torch.allclose(batch, each, atol=1e-4)  # top_db clamps per clip, never across the batch


def test_normalisation_modes():
    x = torch.randn(2, 1, 8, 8) * 5 + 3
    assert torch.allclose(Normalize("dataset", (3.0, 5.0))(x), (x - 3) / 5)
    c = Normalize("clip")(x)
    assert torch.allclose(c.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.equal(Normalize("none")(x), x)
    with pytest.raises(ValueError):
        Normalize("batchnorm")


def test_spec_augment_masks_in_training_only():
    x = AudioSpectrogram(torch.ones(4, 1, 64, 63))
    tfm = SpecAugment(freq_mask=20, time_mask=20, n_masks=2)
    masked = [tfm(x, split_idx=0) for _ in range(5)]
    assert any((m == 0).any() for m in masked)
    assert isinstance(masked[0], AudioSpectrogram)
    assert torch.equal(tfm(x, split_idx=1), x)


def test_audio_block_summary_walks_one_item(four_class_dir, capsys):
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import RandomSplitter, get_files, parent_label

    from learner.train.transforms import AudioBlock

    fe = FrontEnd(CFG, "spectrogram")
    db = DataBlock(
        blocks=(AudioBlock(CFG, fe), CategoryBlock),
        get_items=lambda p: get_files(p, extensions=[".wav"]),
        get_y=parent_label,
        splitter=RandomSplitter(seed=0),
    )
    db.summary(four_class_dir, bs=4)
    out = capsys.readouterr().out
    assert "AudioToFeatures" in out and "Applying batch_tfms" in out
    xb, yb = db.dataloaders(four_class_dir, bs=4, num_workers=0).one_batch()
    assert isinstance(xb, AudioSpectrogram) and xb.shape == (4, 1, 64, CFG.n_frames)
