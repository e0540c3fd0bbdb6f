"""Teach's speech backbone: Google's pretrained `speech_embedding` (ONNX, no torch), for taught words.

The aisfx backbone was trained on sound-effects libraries: five takes of a word by one voice did not carry to
other voices (48.7 % on speech-dev's held-out speakers, bench/RESULTS.md). `speech_embedding` was trained on
speech, and a head on it carries (93.5 %). Each take is embedded by both; Train keeps the backbone whose head
is right more often in cross-validation over the takes (learner.demo.teach), so claps and whistles keep
aisfx and words get this one.

A taught speech model is a folder like any exported one: model.onnx (the feature graph of
`learner.model.speech_embedding` with the fitted head in it, "waveform" → "logits") and config.json with its
sha256, so the Predictor serves it on ONNX Runtime, and download and the Hub take it as it is.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from learner.config import AudioConfig

log = logging.getLogger(__name__)
NAME = "speech_embedding"
CLIP_S = 1.0  # a spoken word's length; the graph pads it with 0.25 s of silence each side
PLACEMENTS_S = (0.25, 0.15, 0.35)  # views of a take: the served placement first, then ±0.1 s
ONNX_FILE = "model.onnx"

_lock = threading.Lock()
_sessions: list[Any] | None = None
_unavailable: str | None = None  # why it did not load, once: offline, Teach must not retry a fetch per take


def speech_audio_config() -> AudioConfig:
    from learner.model.speech_embedding import SAMPLE_RATE

    return AudioConfig(sample_rate=SAMPLE_RATE, duration=CLIP_S)


def _feature_sessions() -> list[Any]:
    """One ONNX Runtime session per placement, built once (the published files fetched once, checked)."""
    global _sessions
    with _lock:
        if _sessions is None:
            import onnxruntime as ort

            from learner.model import speech_embedding as se

            files = se.published_files()
            n = speech_audio_config().n_samples
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
            _sessions = [
                ort.InferenceSession(
                    se.feature_graph(n, *files, left_s=s).SerializeToString(), opts,
                    providers=["CPUExecutionProvider"],
                )
                for s in PLACEMENTS_S
            ]  # fmt: skip
        return _sessions


def available() -> str | None:
    """None when the speech backbone loads; else why not (one line: offline, no wheel), asked once."""
    global _unavailable
    if _unavailable is None and _sessions is None:
        try:
            _feature_sessions()
        except Exception as e:  # offline, a broken cache: Teach keeps its sound backbone
            _unavailable = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("Teach without the %s backbone: %s", NAME, _unavailable)
    return _unavailable


def speech_views(clip: np.ndarray) -> np.ndarray:
    """(placements, features) of one prepared 1 s clip at 16 kHz."""
    x = np.ascontiguousarray(clip, dtype=np.float32)[None]
    return np.stack([s.run(None, {"waveform": x})[0][0] for s in _feature_sessions()])


def write_folder(folder: Path, classes: list[str], fit: Any, config: dict[str, Any]) -> Path:
    """model.onnx (features + the fitted head) and config.json (its sha256, the backbone record)."""
    import onnx

    from learner.folder import write_json
    from learner.model import speech_embedding as se
    from learner.model.head_fit import backbone_record
    from learner.serve.onnx_backend import sha256_file

    cfg = speech_audio_config()
    features = se.feature_graph(cfg.n_samples, *se.published_files())
    model = se.with_linear_head(features, fit.weight.T, fit.bias, fit.mean, fit.scale, fit.l2)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / ONNX_FILE))
    write_json(folder / "config.json", {
        **config,
        "arch": NAME,
        "input": "waveform",
        "classes": classes,
        "audio": cfg.to_dict(),
        "pretrained": f"{NAME} (published weights)",
        "backbone": backbone_record(NAME, "frozen", head={"kind": "logistic regression", "C": fit.C}),
        "onnx": {
            "files": {ONNX_FILE: sha256_file(folder / ONNX_FILE)},
            "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", cfg.n_samples],
                      "sample_rate": cfg.sample_rate},
            "exporter": "learner.model.speech_embedding (the published ONNX graphs, a fitted linear head)",
        },
    })  # fmt: skip
    return folder
