"""ONNX export: the whole inference model (front end + network) as one graph, so serving needs no torch.

The graph maps a batch of fixed-length mono waveforms (B, n_samples) at the model's sample rate to logits,
front end included (log-mel, MFCC or raw waveform, as the registry entry declares). The log-mel inside the
graph is `DftLogMel`: torchaudio's MelSpectrogram + AmplitudeToDB rewritten as a polyphase DFT in GEMMs
(the TorchScript exporter cannot take `torch.stft`'s complex output, and ONNX Runtime runs this ~4× faster
than its own STFT operator). Training and the torch backend keep torchaudio; every export is
checked against the torch model on generated clips and refused when probabilities differ by more than 1e-4.

`--int8` adds `model.int8.onnx`: static QDQ quantization (per-channel int8 weights, uint8 activations
calibrated on generated clips or on your own files) of the network; the front end and the network's first
and last weighted layers stay float32.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learner.config import AudioConfig
from learner.folder import CONFIG, WEIGHTS, ModelDirError, read_config, write_json
from learner.model.frontend import AudioClassifier, FrontEnd
from learner.model.frontend_onnx import onnx_ready
from learner.model.loading import network_from_dir
from learner.model.registry import get_arch
from learner.serve.backends import scores_from_logits
from learner.serve.onnx_backend import INPUT_NAME, INT8_FILE, ONNX_FILE, OUTPUT_NAME, sha256_file

DEFAULT_OPSET = 17
PARITY_ATOL = 1e-4  # max |p_torch - p_onnx| over generated clips, else the export is refused
INT8_METHODS = ("static", "dynamic")


class ExportError(RuntimeError):
    """An export that failed or did not match the torch model; the message is one line."""


def load_torch_model(folder: Path) -> tuple[dict[str, Any], AudioClassifier]:
    """(config, eval-mode AudioClassifier) from a model directory, weights loaded strictly."""
    config = read_config(folder)
    cfg = AudioConfig.from_dict(config["audio"])
    return config, AudioClassifier(
        FrontEnd(cfg, get_arch(config["arch"]).input), network_from_dir(folder, config)
    ).eval()


def generated_clips(cfg: AudioConfig, n: int, seed: int = 0) -> np.ndarray:
    """(n, n_samples) varied synthetic clips — tones, chirps, noise bursts, clicks, AM, silence-ish — at
    random levels: parity probes and the default int8 calibration set when no real audio is given."""
    rng = np.random.default_rng(seed)
    sr, m = cfg.sample_rate, cfg.n_samples
    t = np.arange(m) / sr
    out = np.zeros((n, m), dtype=np.float32)
    for i in range(n):
        kind = i % 6
        if kind == 0:
            f = rng.uniform(80, sr / 4)
            x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
        elif kind == 1:
            f0, f1 = rng.uniform(50, 500), rng.uniform(1000, sr / 2.5)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        elif kind == 2:
            x = rng.normal(0, 1, m) * (np.sin(2 * np.pi * rng.uniform(1, 8) * t) > 0)
        elif kind == 3:
            x = np.zeros(m)
            period = max(2, int(sr / rng.uniform(4, 30)))
            x[int(rng.integers(0, period)) :: period] = 1.0
            x = np.convolve(x, np.hanning(64), mode="same")
        elif kind == 4:
            x = np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * (
                1 + np.sin(2 * np.pi * rng.uniform(2, 20) * t)
            )
        else:
            x = rng.normal(0, 0.01, m)
        x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.05, 0.95)
        out[i] = (x + rng.normal(0, 10 ** rng.uniform(-4, -2), m)).astype(np.float32)
    return out


def calibration_clips(folder: str | Path, calib_dir: str | Path, n: int = 128, seed: int = 0) -> np.ndarray:
    """(≤ n, n_samples) clips from the audio files under `calib_dir`, through the Predictor's item pipeline
    (decode → trim → centre crop), so int8 is calibrated on what it will see. A file that cannot be decoded
    is skipped with a warning naming it (`warnings.warn`); none decodable at all is an error."""
    import warnings

    from learner.audio import AUDIO_EXTENSIONS, AudioDecodeError, ClipPipeline

    root = Path(calib_dir)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"{root}: no audio files to calibrate on")
    if len(files) > n:
        files = [files[i] for i in sorted(np.random.default_rng(seed).choice(len(files), n, replace=False))]
    pipe = ClipPipeline(AudioConfig.from_dict(read_config(Path(folder))["audio"]))
    clips = []
    for f in files:
        try:
            clips.append(pipe.prepare(pipe.decode(f).samples))
        except AudioDecodeError as e:
            warnings.warn(f"calibration: skipped {e.path}: {e.reason}", stacklevel=2)
    if not clips:
        raise FileNotFoundError(
            f"{root}: none of its {len(files)} audio file(s) could be decoded to calibrate on"
        )
    return np.stack(clips).astype(np.float32)


def _session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run(path: Path, waves: np.ndarray, batch: int = 16) -> np.ndarray:
    s = _session(path)
    return np.concatenate(
        [s.run(None, {INPUT_NAME: waves[i : i + batch]})[0] for i in range(0, len(waves), batch)]
    )


FEATURES = "features"  # the internal tensor where the front end hands over to the network


class _Split(nn.Module):
    """The twin returning (logits, features), so the graph names the front end / network boundary."""

    def __init__(self, model: AudioClassifier) -> None:
        super().__init__()
        self.frontend, self.net = model.frontend, model.net

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.frontend(wave.unsqueeze(1))
        if hasattr(self.net, "front_end"):  # a backbone computes its own features inside the network
            features = self.net.front_end(features)
            return self.net.from_features(features), features
        return self.net(features), features


def trace(model: AudioClassifier, cfg: AudioConfig, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Trace the ONNX-ready twin into `path` with two outputs (logits, features) and a dynamic batch axis,
    then let ONNX Runtime apply its portable (basic) graph optimizations in place: constant folding,
    Identity removal. `features` stays a graph output so no optimization can dissolve the boundary."""
    import onnxruntime as ort

    raw = path.with_suffix(".raw.onnx")
    x = torch.from_numpy(generated_clips(cfg, 2, seed=1))
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            _Split(onnx_ready(model)),
            (x,),
            str(raw),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, FEATURES],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}, FEATURES: {0: "batch"}},
        )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(path)
    ort.InferenceSession(str(raw), so, providers=["CPUExecutionProvider"])
    raw.unlink()


def drop_features(src: Path, dst: Path) -> None:
    """The served graph: `src` without its `features` output (logits only)."""
    import onnx

    graph = onnx.load(str(src))
    graph.graph.output.remove(next(o for o in graph.graph.output if o.name == FEATURES))
    onnx.save(graph, str(dst))


def front_end_nodes(graph: Any) -> list[str]:
    """Names of the nodes computing the front end (ancestors of the `features` tensor); unnamed nodes get
    names."""
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    producer = {out: node for node in graph.node for out in node.output}
    if FEATURES not in producer:
        raise ExportError(f"the graph lost its {FEATURES!r} tensor; cannot keep the front end in float32")
    seen: dict[str, Any] = {}
    todo = [producer[FEATURES]]
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        todo.extend(producer[i] for i in node.input if i in producer)
    return list(seen)


class _quiet:
    """Silence the exporter's deprecation chatter (warnings only; errors still raise)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def quantize_int8(split: Path, out: Path, calib: np.ndarray, method: str = "static") -> None:
    """Quantize the network part of a traced two-output graph. Stays float32: the front end (ancestors of
    `features`; int8 dB values would move the input by whole quantization steps) and the network's first
    and last weighted layers (one input channel / the logits: little speed to gain, measurably less
    agreement on unfamiliar audio when quantized)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in INT8_METHODS:
        raise ValueError(f"unknown int8 method {method!r}; choose one of {', '.join(INT8_METHODS)}")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(split), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        front = front_end_nodes(graph.graph)
        weighted = [
            n.name
            for n in graph.graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul") and n.name not in front
        ]
        keep = front + ([weighted[0], weighted[-1]] if len(weighted) > 2 else [])
        onnx.save(graph, str(pre))
        if method == "dynamic":
            quantize_dynamic(
                str(pre), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep
            )
            return

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.it = iter(calib[i : i + 8] for i in range(0, len(calib), 8))

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self.it, None)
                return None if batch is None else {INPUT_NAME: batch}

        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )


def export_model_dir(
    folder: str | Path,
    *,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    int8_method: str = "static",
    calib: np.ndarray | None = None,
    n_probe: int = 24,
    n_agree: int = 128,
) -> dict[str, Any]:
    """Write model.onnx (and model.int8.onnx) into a model directory and record them in config.json.

    The fp32 graph must reproduce the torch model's probabilities within `PARITY_ATOL` on `n_probe`
    generated clips, or nothing is written. Returns the "onnx" record. A previous int8 file is removed
    when `int8` is False (it would belong to an older export).
    """
    folder = Path(folder)
    config, model = load_torch_model(folder)
    cfg = AudioConfig.from_dict(config["audio"])
    arch, task = config["arch"], config.get("task", "single")
    probe = generated_clips(cfg, n_probe, seed=7)
    with torch.no_grad():
        ref = scores_from_logits(model(torch.from_numpy(probe)).numpy(), task)
    record = _record(folder, config, cfg, opset)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        split, fp32, int8_tmp = Path(tmp) / "split.onnx", Path(tmp) / ONNX_FILE, Path(tmp) / INT8_FILE
        try:
            trace(model, cfg, split, opset)
            drop_features(split, fp32)
        except Exception as e:  # the exporter's own errors run to many lines; keep the first
            raise ExportError(f"{arch}: ONNX export failed: {_first_line(e)}") from None
        diff = float(np.abs(scores_from_logits(_run(fp32, probe), task) - ref).max())
        if not diff <= PARITY_ATOL:
            raise ExportError(
                f"{arch}: exported graph differs from torch (max |Δp| = {diff:.2e} > {PARITY_ATOL:.0e})"
            )
        record["parity"] = {"max_abs_prob_diff": diff, "clips": n_probe}
        if int8:
            record["int8"] = _quantized(split, fp32, int8_tmp, cfg, arch, int8_method, calib, n_agree)
        for f in (fp32, int8_tmp):
            if f.exists():
                os.replace(f, folder / f.name)
                record["files"][f.name] = sha256_file(folder / f.name)
    if not int8 and (folder / INT8_FILE).exists():
        (folder / INT8_FILE).unlink()  # it belonged to an earlier export
    config["onnx"] = record
    write_json(folder / CONFIG, config)
    return record


def _record(folder: Path, config: dict[str, Any], cfg: AudioConfig, opset: int) -> dict[str, Any]:
    """config.json's "onnx" record before the files: exporter, input and output, the weights it came from."""
    return {
        "opset": opset,
        "exporter": f"torch {torch.__version__} TorchScript exporter; log-mel as a polyphase DFT; "
        "ONNX Runtime basic optimizations",
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", cfg.n_samples],
            "dtype": "float32",
            "sample_rate": cfg.sample_rate,
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(config["classes"])],
            "dtype": "float32",
            "kind": "logits",
        },
        "files": {},
        "source": {WEIGHTS: sha256_file(folder / WEIGHTS)},
    }


def _quantized(
    split: Path,
    fp32: Path,
    out: Path,
    cfg: AudioConfig,
    arch: str,
    method: str,
    calib: np.ndarray | None,
    n_agree: int,
) -> dict[str, Any]:
    """Quantize the network into `out` and measure its top-1 agreement with the fp32 graph (= torch within
    1e-4): on the user's clips when given (they are the real thing), else on generated ones."""
    cal = calib if calib is not None else generated_clips(cfg, 96, seed=3)
    try:
        quantize_int8(split, out.with_name("q.onnx"), cal.astype(np.float32), method)
        drop_features(out.with_name("q.onnx"), out)
    except Exception as e:
        raise ExportError(f"{arch}: int8 quantization failed: {_first_line(e)}") from None
    given = calib is not None and len(calib) > 0
    agree_clips = calib.astype(np.float32) if given else generated_clips(cfg, n_agree, seed=9)
    agree = float(np.mean(_run(out, agree_clips).argmax(1) == _run(fp32, agree_clips).argmax(1)))
    return {
        "method": "static QDQ, per-channel int8 weights, uint8 activations"
        if method == "static"
        else "dynamic (int8 weights, activations quantized at run time)",
        "calibration": (
            "none"
            if method == "dynamic"
            else f"{len(cal)} {'given' if calib is not None else 'generated'} clips"
        ),
        "top1_agreement": agree,
        "agreement_clips": len(agree_clips),
        "agreement_on": "given" if given else "generated",
        **({} if given else {"top1_agreement_generated": agree}),
        "float32_parts": "front end, first and last weighted layers",
    }


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_writable(folder: Path) -> None:
    """A clear error before the (slow) export when the folder cannot take new files."""
    if not os.access(folder, os.W_OK):
        raise ModelDirError(f"{folder}: not writable; export into a copy (out=DIR)")
