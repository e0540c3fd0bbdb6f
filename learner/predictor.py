"""The one inference path: load a model directory once, preprocess exactly as in training, batch, top-k.

The demo, `jobs.evaluate`, `jobs.predict` and `jobs.score` all call this class. Item preprocessing is
NumPy (`audio.decode` → `clip.trim_silence` → `clip.crop_pad`), shared by every backend; the backend
only maps fixed-length waveforms (B, samples) to logits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import AudioDecodeError, Decoded, Source, decode
from learner.clip import crop_pad, trim_silence, windows
from learner.config import AudioConfig
from learner.modeldir import ModelDirError, read_config, resolve


@dataclass
class Prediction:
    """Top-k for one input; `probs` over all classes (mean of window probabilities when windowed)."""

    labels: list[str]
    scores: list[float]
    probs: np.ndarray
    duration_s: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    decoder: str = ""
    window_starts: list[float] = field(default_factory=list)
    window_probs: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def score(self) -> float:
        return self.scores[0]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.scores, strict=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class TorchBackend:
    """AudioClassifier (front end + net) under `torch.inference_mode`; weights loaded strictly."""

    name = "torch"

    def __init__(self, folder: Path, config: dict[str, Any], cfg: AudioConfig, device: str | None = None,
                 threads: int | None = None) -> None:
        try:
            import torch
        except ModuleNotFoundError:  # the lean serving install (requirements-serve.txt) has no torch
            raise ModelDirError(_no_torch(folder)) from None

        from learner.frontend import AudioClassifier, FrontEnd
        from learner.models import get_arch

        if threads:
            torch.set_num_threads(threads)
        net = self.load_net(folder, config, cfg)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AudioClassifier(FrontEnd(cfg, get_arch(config["arch"]).input), net).to(self.device).eval()
        self._torch = torch

    def load_net(self, folder: Path, config: dict[str, Any], cfg: AudioConfig) -> Any:
        """The network from model.safetensors (never unpickles)."""
        from learner.modeldir import load_model_dir
        from learner.models import create_model

        _, sd = load_model_dir(folder)
        net = create_model(config["arch"], len(config["classes"]), cfg)
        net.load_state_dict(sd, strict=True)
        return net

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()


class PickleBackend(TorchBackend):
    """The network from a fastai `model.pkl` export (opt-in only: unpickling runs code from the file)."""

    name = "pickle"

    def load_net(self, folder: Path, config: dict[str, Any], cfg: AudioConfig) -> Any:
        from learner.modeldir import load_pickle

        return load_pickle(folder).model


def _lazy(module: str, cls: str) -> Any:
    """A backend constructor that imports its module on first use (onnxruntime only when asked for)."""

    def make(*args: Any, **kw: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), cls)(*args, **kw)

    return make


BACKENDS: dict[str, Any] = {"torch": TorchBackend, "pickle": PickleBackend,
                            "onnx": _lazy("learner.onnx_backend", "OnnxBackend"),
                            "onnx-int8": _lazy("learner.onnx_backend", "OnnxInt8Backend")}


class Predictor:
    """Load once (`from_dir` / `from_pretrained`), then `predict`, `predict_many` or `predict_waves`."""

    def __init__(self, config: dict[str, Any], backend: Any, model_id: str = "", revision: str = "",
                 batch_size: int = 32) -> None:
        self.config = config
        self.cfg = AudioConfig.from_dict(config["audio"])
        self.classes: list[str] = list(config["classes"])
        self.arch: str = config["arch"]
        self.backend = backend
        self.model_id, self.revision = model_id, revision
        self.batch_size = batch_size
        self.folder: Path | None = None

    @classmethod
    def from_dir(cls, path: str | Path, backend: str = "auto", allow_pickle: bool = False,
                 device: str | None = None, threads: int | None = None, **kw: Any) -> Predictor:
        """A local model directory. `allow_pickle=True` is the only way model.pkl is ever read."""
        folder = Path(path)
        config = read_config(folder)
        cfg = AudioConfig.from_dict(config["audio"])
        name = backend
        if backend == "auto":
            name = "onnx" if "onnx" in BACKENDS and (folder / "model.onnx").is_file() else "torch"
            if name == "torch" and not (folder / "model.safetensors").is_file() and (folder / "model.int8.onnx").is_file():
                name = "onnx-int8"  # a shipped int8-only folder (the demo's default model)
            if not (folder / "model.safetensors").is_file() and (folder / "model.pkl").is_file():
                name = "pickle"
        if name == "pickle" and not allow_pickle:
            raise ModelDirError(f"{folder}: loading model.pkl unpickles code; pass allow_pickle=True if you trust it")
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
        impl = BACKENDS[name](folder, config, cfg, device=device, threads=threads)
        model_id = kw.pop("model_id", str(folder))
        p = cls(config, impl, model_id=model_id, revision=kw.pop("revision", _revision_of(folder)), **kw)
        p.folder = folder
        return p

    @classmethod
    def from_pretrained(cls, ref: str, *, token: str | None = None, endpoint: str | None = None, **kw: Any) -> Predictor:
        """A local directory or a Hub id `user/name[@revision]` (downloaded once into the HF cache)."""
        folder = resolve(ref, include_pickle=bool(kw.get("allow_pickle")), token=token, endpoint=endpoint)
        kw.setdefault("model_id", ref.split("@")[0] if not Path(ref).exists() else str(folder))
        return cls.from_dir(folder, **kw)

    # --- item pipeline (NumPy, shared by every backend) -----------------------------------------------

    def decode(self, src: Source | Decoded | Signal, max_duration_s: float | None = None, max_bytes: int | None = None,
               sample_rate: int | None = None) -> Decoded:
        """Decoded mono float32 at the model's rate; limits (duration, file size) are the caller's choice.

        `src` is a path or bytes (decoded like any file), or a signal already in memory: a NumPy array
        with its `sample_rate`, a `(sample_rate, array)` pair (Gradio's numpy audio) or a dict with
        `array`/`raw` and `sampling_rate` (Hugging Face datasets and pipelines)."""
        if isinstance(src, Decoded):
            return src
        signal, rate = _signal_of(src, sample_rate)
        if signal is not None:
            return decode_array(signal, rate, self.cfg.sample_rate, max_duration_s)
        return decode(src, self.cfg.sample_rate, max_duration_s=max_duration_s, max_bytes=max_bytes)

    def prepare(self, signal: np.ndarray) -> np.ndarray:
        """Decoded signal → one fixed-length clip (trim, centre crop / repeat-pad), as in validation."""
        return crop_pad(trim_silence(signal, self.cfg.trim_db, self.cfg.trim_mode), self.cfg.n_samples,
                        pad=self.cfg.pad_mode)

    def windows(self, signal: np.ndarray, window_s: float | None = None, hop_s: float | None = None):
        """Fixed-length windows over the untrimmed signal (times refer to the file); each one is prepared."""
        n = int(round((window_s or self.cfg.duration) * self.cfg.sample_rate))
        hop = int(round((hop_s or (window_s or self.cfg.duration) / 2) * self.cfg.sample_rate))
        wins, starts = windows(signal, n, hop)
        return np.stack([self.prepare(w) for w in wins]), starts / self.cfg.sample_rate

    # --- model --------------------------------------------------------------------------------------------

    def predict_waves(self, waves: np.ndarray) -> np.ndarray:
        """Fixed-length waveforms (B, n_samples) → class probabilities (B, n_classes), in batches."""
        waves = np.asarray(waves, dtype=np.float32).reshape(len(waves), -1)
        out = [softmax(self.backend(waves[i : i + self.batch_size])) for i in range(0, len(waves), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    def _top(self, probs: np.ndarray, k: int) -> tuple[list[str], list[float]]:
        order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(self.classes)))]
        return [self.classes[i] for i in order], [float(probs[i]) for i in order]

    def predict(self, src: Source | Decoded | Signal, top_k: int = 5, window: str | float | None = "auto",
                hop: float | None = None, max_duration_s: float | None = None, max_bytes: int | None = None,
                sample_rate: int | None = None) -> Prediction:
        """Classify one input (a file, bytes, or a signal with its `sample_rate`: see `decode`).
        `window="auto"` scores inputs longer than twice the clip length in windows (mean of window
        probabilities); a number forces windows of that many seconds; None = one centre crop."""
        d = self.decode(src, max_duration_s, max_bytes, sample_rate)
        n = self.cfg.n_samples
        use_windows = window is not None and (window != "auto" or d.samples.size > 2 * n)
        if use_windows:
            wins, starts = self.windows(d.samples, None if window == "auto" else float(window), hop)
            wp = self.predict_waves(wins)
            probs = wp.mean(axis=0)
        else:
            probs = self.predict_waves(self.prepare(d.samples)[None])[0]
            starts, wp = np.zeros(0), None
        labels, scores = self._top(probs, top_k)
        return Prediction(labels, scores, probs, d.duration_s, d.orig_sample_rate, d.channels, d.decoder,
                          [float(s) for s in starts], wp)

    def __call__(self, inputs: Any, *, top_k: int = 5, sampling_rate: int | None = None,
                 sample_rate: int | None = None) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """`[{"label", "score"}, ...]`, best first, like Hugging Face's audio-classification pipeline.

        `inputs` is one input (path, bytes, NumPy signal with `sampling_rate`, `(rate, array)` or a dict
        with `array`/`raw` and `sampling_rate`) or a list of them (then one list per input)."""
        rate = sampling_rate if sampling_rate is not None else sample_rate
        if isinstance(inputs, list):
            return [self(x, top_k=top_k, sampling_rate=rate) for x in inputs]
        pred = self.predict(inputs, top_k=top_k, sample_rate=rate)
        return [{"label": lab, "score": score} for lab, score in zip(pred.labels, pred.scores, strict=True)]

    def predict_many(self, srcs: list[Source], top_k: int = 5) -> list[Prediction | AudioDecodeError]:
        """Many short inputs (one centre crop each) batched through the model; bad files come back as errors."""
        results: list[Prediction | AudioDecodeError] = []
        for i in range(0, len(srcs), self.batch_size):
            chunk = srcs[i : i + self.batch_size]
            decoded: list[Decoded | AudioDecodeError] = []
            for s in chunk:
                try:
                    decoded.append(self.decode(s))
                except AudioDecodeError as e:
                    decoded.append(e)
            ok = [d for d in decoded if isinstance(d, Decoded)]
            probs = self.predict_waves(np.stack([self.prepare(d.samples) for d in ok])) if ok else []
            it = iter(probs)
            for d in decoded:
                if isinstance(d, AudioDecodeError):
                    results.append(d)
                    continue
                p = next(it)
                labels, scores = self._top(p, top_k)
                results.append(Prediction(labels, scores, p, d.duration_s, d.orig_sample_rate, d.channels, d.decoder))
        return results


Signal = np.ndarray | tuple | dict


def _no_torch(folder: Path) -> str:
    """One line for a model that needs torch where only ONNX Runtime is installed."""
    if (Path(folder) / "model.onnx").is_file():
        return f"{folder}: the torch backend needs torch, which is not installed here; serve model.onnx (backend onnx)"
    return (f"{folder}: no model.onnx, and torch (needed for model.safetensors) is not installed here; run "
            f"`python -m jobs.export --model {folder}` where torch is installed (requirements.txt), then serve it here")


def _signal_of(src: Any, sample_rate: int | None) -> tuple[np.ndarray | None, int | None]:
    """(array, rate) when `src` is a signal in memory (array, (rate, array) or {"array"|"raw", "sampling_rate"}),
    else (None, None) for a path or bytes."""
    if isinstance(src, dict):
        key = "array" if "array" in src else "raw" if "raw" in src else None
        if key is None:
            raise ValueError(f"an audio dict needs 'array' (or 'raw') and 'sampling_rate'; got keys {sorted(src)}")
        return np.asarray(src[key]), src.get("sampling_rate", sample_rate)
    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], (int, np.integer)) and isinstance(src[1], np.ndarray):
        return src[1], int(src[0])
    if isinstance(src, np.ndarray):
        return src, sample_rate
    return None, None


def decode_array(x: np.ndarray, rate: int | None, target_sr: int, max_duration_s: float | None = None) -> Decoded:
    """A signal in memory → `Decoded`, as if read from a file: integer PCM scaled to [-1, 1], channels
    averaged, resampled to `target_sr`. (samples, channels) and (channels, samples) are both taken: the
    shorter axis, when it has at most 8 entries, is the channels."""
    from learner.audio import _clean, resample, to_mono

    label = "<array>"
    if rate is None:
        raise AudioDecodeError(label, "a NumPy signal needs its sample rate (sample_rate=..., or a (rate, array) pair)")
    if int(rate) <= 0:
        raise AudioDecodeError(label, f"sample rate must be positive, got {rate}")
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        x = x.T  # (channels, samples) as torchaudio and librosa hold it
    if x.ndim not in (1, 2) or x.size == 0:
        raise AudioDecodeError(label, f"expected a 1-D signal or (samples, channels), got shape {x.shape}")
    channels = 1 if x.ndim == 1 else x.shape[1]
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        x = _clean(x, offset=half, scale=1.0 / half)
    elif np.issubdtype(x.dtype, np.integer):
        x = _clean(x, scale=1.0 / float(2 ** (8 * x.dtype.itemsize - 1)))
    elif np.issubdtype(x.dtype, np.floating):
        x = _clean(x)
    else:
        raise AudioDecodeError(label, f"cannot read samples of dtype {x.dtype}")
    mono = to_mono(x).astype(np.float32, copy=False)
    seconds = mono.size / int(rate)
    if max_duration_s is not None and seconds > max_duration_s:
        from learner.audio import TooLongError

        raise TooLongError(label, f"{seconds:.1f} s is longer than the {max_duration_s:g} s limit")
    return Decoded(resample(mono, int(rate), target_sr), target_sr, int(rate), channels, seconds, "array")


def _revision_of(folder: Path) -> str:
    """The Hub commit a cached snapshot came from (its folder name), else empty for local models."""
    parts = Path(os.path.realpath(folder)).parts
    return parts[-1] if len(parts) > 2 and parts[-2] == "snapshots" else ""
