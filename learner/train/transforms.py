"""fastaudio's ideas rebuilt on fastai 2.8 (fasttransform): typed audio tensors, small Transforms, AudioBlock.

Item transforms (CPU, per clip) wrap the NumPy steps of `learner.audio`; batch transforms wrap the torch
modules in `learner.model.frontend` and run on whatever device the batch is on. Every transform that changes
the kind
of its input says so in its return annotation, so the type tests can catch a silent no-op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fastai.data.block import TransformBlock
from fastai.torch_core import TensorBase
from fastai.vision.augment import RandTransform
from fasttransform import Transform

from learner.audio import ClipPipeline, crop_pad, decode, trim_silence
from learner.config import AudioConfig
from learner.data.box_windows import Window
from learner.data.store import signal_window
from learner.model.frontend import FrontEnd, SpecMasking
from learner.train.augment import AUGMENTATIONS, enabled


class AudioTensor(TensorBase):
    """A mono clip, shape (1, samples); `sr` travels with it."""

    @classmethod
    def create(cls, src: str | Path | bytes | np.ndarray | tuple, sr: int | None = None) -> AudioTensor:
        """From a path or bytes (decoded, resampled to `sr`), an `(sr, array)` pair, or an array at `sr`."""
        if isinstance(src, tuple):
            sr, src = src
        if isinstance(src, (str, Path, bytes)):
            d = decode(src, sr)
            x, sr = d.samples, d.sample_rate
        else:
            x = np.asarray(src, dtype=np.float32)
        t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)).reshape(1, -1)
        return cls(t, sr=sr)

    @property
    def duration(self) -> float:
        return self.shape[-1] / self.sr

    def show(self, ctx=None, title: str | None = None, **kwargs):
        import matplotlib.pyplot as plt

        if ctx is None:
            _, ctx = plt.subplots(figsize=(6, 2))
        y = self.detach().cpu().reshape(-1).numpy()
        ctx.plot(np.arange(y.size) / (getattr(self, "sr", None) or 1), y, lw=0.5)
        ctx.set_xlabel("seconds")
        if title:
            ctx.set_title(title)
        return ctx


class AudioSpectrogram(TensorBase):
    """Features shaped (1, freq, frames) per clip (B, 1, freq, frames) per batch."""

    def show(self, ctx=None, title: str | None = None, **kwargs):
        import matplotlib.pyplot as plt

        if ctx is None:
            _, ctx = plt.subplots(figsize=(6, 3))
        img = self.detach().cpu()
        while img.dim() > 2:
            img = img[0]
        ctx.imshow(img.numpy(), origin="lower", aspect="auto", cmap="magma")
        if title:
            ctx.set_title(title)
        return ctx


class LoadAudio(Transform):
    """Path → decoded, resampled, trimmed AudioTensor; from `signals` (the decoded-signal cache) when
    there."""

    def __init__(self, cfg: AudioConfig, signals: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.cfg, self.signals = cfg, signals if signals is not None else {}
        self.pipeline = ClipPipeline(cfg)

    def encodes(self, path: str | Path) -> AudioTensor:
        x = self.signals.get(str(path))
        if x is None:
            x = self.pipeline.load(path)
        return AudioTensor.create(x, sr=self.cfg.sample_rate)

    def encodes(self, w: Window) -> AudioTensor:  # noqa: F811 (fasttransform dispatches on the type)
        """A window of a long recording, read from the signals by offset and trimmed as scoring trims each
        window (`ClipPipeline.prepare`)."""
        x = signal_window(self.signals, w.path, w.offset, w.size)
        return AudioTensor.create(self.pipeline.trim(x), sr=self.cfg.sample_rate)


class TrimSilence(Transform):
    """Drop what is more than `top_db` below the loudest part (edges, or every silent gap)."""

    order = 1

    def __init__(self, top_db: float | None = 60.0, mode: str = "edges") -> None:
        super().__init__()
        self.top_db, self.mode = top_db, mode

    def encodes(self, x: AudioTensor) -> AudioTensor:
        y = trim_silence(x.reshape(-1).numpy(), self.top_db, self.mode)
        return AudioTensor.create(y, sr=x.sr)


class CropPad(RandTransform):
    """Exactly `duration` seconds: a random crop while training, the centre otherwise; short clips repeat."""

    split_idx, order = None, 2

    def __init__(self, duration: float, seed: int | None = None, pad: str = "repeat") -> None:
        super().__init__()
        self.duration, self.pad = duration, pad
        self.rng = np.random.default_rng(seed)

    def before_call(self, b, split_idx: int | None) -> None:
        self.do, self.random = True, split_idx == 0

    def encodes(self, x: AudioTensor) -> AudioTensor:
        n = int(round(self.duration * x.sr))
        y = crop_pad(x.reshape(-1).numpy(), n, None if self.random else 0.5, self.rng, pad=self.pad)
        return AudioTensor.create(y, sr=x.sr)


class WaveAugment(RandTransform):
    """Waveform augmentation while training: the enabled augmentations of `learner.train.augment`
    (stretch and pitch before the crop to the clip length, noise and gain after), with one generator.

    Each part is off when its setting is 0/None; validation and inference never see this transform.
    """

    split_idx, order = 0, 3

    def __init__(
        self,
        pitch: float = 0.0,
        stretch: float = 0.0,
        noise_snr: tuple[float, float] | None = None,
        gain_db: float = 0.0,
        p: float = 0.5,
        seed: int | None = None,
        pad: str = "repeat",
    ) -> None:
        super().__init__(p=p)
        self.pad = pad
        settings = dict(aug_pitch=pitch, aug_stretch=stretch, aug_noise_snr=noise_snr, aug_gain_db=gain_db)
        self.steps = enabled(settings)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_config(cls, cfg: AudioConfig, seed: int | None = None) -> WaveAugment | None:
        """The config's augmentations, or None when it turns none on."""
        steps = enabled({f: getattr(cfg, f) for f in AUGMENTATIONS})
        if not steps:
            return None
        aug = cls(seed=seed, pad=cfg.pad_mode)
        aug.steps = steps
        return aug

    def encodes(self, x: AudioTensor) -> AudioTensor:
        sr, n = x.sr, x.shape[-1]
        y = torch.as_tensor(x).reshape(1, -1).float()
        for step in (s for s in self.steps if s.before_crop):
            y = step(y, sr, self.rng)
        z = torch.from_numpy(crop_pad(y.reshape(-1).numpy(), n, 0.5, pad=self.pad))
        for step in (s for s in self.steps if not s.before_crop):
            z = step(z, sr, self.rng)
        return AudioTensor.create(z.numpy().astype(np.float32, copy=False), sr=sr)


class AudioToFeatures(Transform):
    """Batch transform: waveforms → the model's input view (log-mel, MFCC or raw), on the batch's device."""

    order = 10

    def __init__(self, frontend: FrontEnd) -> None:
        super().__init__()
        self.frontend = frontend

    def encodes(self, x: AudioTensor) -> AudioSpectrogram:
        fe = self.frontend.to(x.device)
        with torch.no_grad():
            return fe(torch.as_tensor(x))


class SpecAugment(RandTransform):
    """Frequency and time masking on feature batches, training only, a different mask per example."""

    split_idx, order = 0, 20

    def __init__(self, freq_mask: int = 24, time_mask: int = 40, n_masks: int = 2) -> None:
        super().__init__()
        self.module = SpecMasking(freq_mask, time_mask, n_masks)

    def encodes(self, x: AudioSpectrogram) -> AudioSpectrogram:
        return self.module(torch.as_tensor(x))


def AudioBlock(
    cfg: AudioConfig,
    frontend: FrontEnd,
    signals: dict[str, np.ndarray] | None = None,
    seed: int | None = None,
) -> TransformBlock:
    """fastai block: path → AudioTensor → fixed-length (random crop when training) → features (+
    SpecAugment)."""
    item_tfms = [CropPad(cfg.duration, seed=seed, pad=cfg.pad_mode)]
    wave_aug = WaveAugment.from_config(cfg, seed=seed)
    if wave_aug is not None:
        item_tfms.append(wave_aug)
    batch_tfms = [AudioToFeatures(frontend)]
    if frontend.view != "waveform" and (cfg.spec_freq_mask or cfg.spec_time_mask):
        # masks never wider than a fifth of the clip, so short clips (spoken words) keep most of their content
        time_mask = min(cfg.spec_time_mask, max(1, cfg.n_frames // 5))
        freq_mask = min(
            cfg.spec_freq_mask, max(1, (cfg.n_mfcc if frontend.view == "mfcc" else cfg.n_mels) // 5)
        )
        batch_tfms.append(SpecAugment(freq_mask, time_mask, cfg.spec_masks))
    return TransformBlock(type_tfms=[LoadAudio(cfg, signals)], item_tfms=item_tfms, batch_tfms=batch_tfms)
