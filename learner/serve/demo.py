"""Everything the Gradio demo shows, without Gradio: which model to serve, and what one upload becomes.

`app.py` only lays out widgets. Here: `load_model` (`--model` / `EARSHOT_MODEL`, else the default
spoken-digits model, built once and cached), `classify(path)` → labels + spectrogram + saliency + timeline +
a message, `model_info` for the Model tab and `example_files`. Every upload goes through the Predictor's one
decode path (`learner.audio.decode.decode`), so a microphone recording and an uploaded MP3 are treated alike.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import stat
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import AUDIO_EXTENSIONS, DEMO_MAX_BYTES, DEMO_MAX_S, ClipPipeline, trim_silence
from learner.serve.predictor import Predictor

MODEL_ENV = "EARSHOT_MODEL"
CACHE_ENV = "EARSHOT_CACHE"
EXAMPLES_ENV = "EARSHOT_EXAMPLES"
ROOT = Path(__file__).resolve().parents[2]  # the checkout (examples/ ships with the app, not the package)
EXAMPLES_DIR = ROOT / "examples"
DEFAULT_NAME = "spoken-digits"
SHIPPED_NAME = (
    "speech-words"  # the default: real speakers' command words, prebuilt (scripts/build_demo_model.py)
)
SHIPPED_MODEL = ROOT / "assets" / SHIPPED_NAME
DEFAULT_RECIPE_VERSION = 1  # bump when the fallback recipe below changes: cached fallback models are rebuilt
# The fallback (no shipped folder): spoken digits, 1.0 s clips at 16 kHz, 64 mels, 16 ms hop, small
# SpecAugment.
DEFAULT_AUDIO = dict(
    sample_rate=16000,
    duration=1.0,
    n_fft=512,
    hop_length=256,
    n_mels=64,
    f_max=8000.0,
    mixup=0.0,
    spec_freq_mask=8,
    spec_time_mask=8,
    spec_masks=2,
)
DEFAULT_TRAIN = dict(arch="xresnet18", pretrained="none", epochs=5, bs=32, lr=3e-3, seed=42, pickle=False)

_info = logging.getLogger(
    __name__
).info  # a job or app.py shows these lines; a library user's logging decides
SALIENCY_FLOOR = 0.3  # saliency below this share of its peak is not drawn, so the log-mel stays readable
Log = Callable[[str], Any]


class DemoModelError(RuntimeError):
    """No model to serve; the message says what to do."""


def cache_home() -> Path:
    """`$EARSHOT_CACHE`, default `~/.cache/earshot` (models/ and datasets/ live under it)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "earshot").expanduser()


def default_model_dir() -> Path:
    return cache_home() / "models" / DEFAULT_NAME


def _default_ok(folder: Path) -> bool:
    try:
        marker = json.loads((folder / "earshot-default.json").read_text())
    except (OSError, ValueError):
        return False
    return marker.get("recipe_version") == DEFAULT_RECIPE_VERSION and (folder / "model.safetensors").is_file()


def _synth_matches(folder: Path, want: dict[str, Any]) -> bool:
    """True if `folder` is free, or holds a spoken-digits build with these voices, per_voice and seed."""
    try:
        info = json.loads((folder / "synth.json").read_text())
    except (OSError, ValueError):
        return not (folder / "manifest.csv").exists()
    return all(info.get(k) == v for k, v in want.items())


def ensure_default_model(
    folder: str | Path | None = None,
    *,
    log: Log = _info,
    voices: list[str] | None = None,
    per_voice: int | None = None,
    epochs: int | None = None,
    progress: bool = True,
    threads: int | None = 1,
) -> Path:
    """The fallback model's directory, built on first use: espeak-ng spoken digits → xresnet18 from scratch.

    Validation holds whole voices out (the manifest's group column), so metrics.json reports accuracy on
    unseen voices. Built in a temporary sibling folder and renamed into place, so an interrupted or
    concurrent build never leaves half a model. `voices`/`per_voice`/`epochs` shrink it (tests).
    `threads=1` (torch intra-op threads while training): on a shared 2-core machine two threads spinning
    against
    other processes made the build 4× slower (16 min vs 3.8 min, load 4–8); None keeps torch's default.
    """
    out = Path(folder) if folder is not None else default_model_dir()
    if _default_ok(out):
        return out
    from learner.data.synth import DEFAULT_VOICES, EspeakUnavailableError, ensure_spoken_digits

    kw: dict[str, Any] = {"voices": list(voices or DEFAULT_VOICES), "per_voice": per_voice or 8, "seed": 0}
    data_root = (
        Path(os.environ["EARSHOT_DATA"]).expanduser()
        if os.environ.get("EARSHOT_DATA")
        else cache_home() / "datasets"
    )
    data = (
        data_root / "spoken-digits-synth"
    )  # shared with data=spoken-digits-synth, unless built differently there
    if not _synth_matches(data, kw):
        data = data_root / f"spoken-digits-synth-{len(kw['voices'])}x{kw['per_voice']}"
    t0 = time.time()
    log(
        f"no model configured ({MODEL_ENV} / model=); building the default spoken-digits model once "
        f"into {out}"
    )
    log(f"[1/2] synthesising spoken digits with espeak-ng into {data} (about 30 s, first time only)")
    try:
        manifest = ensure_spoken_digits(data, **kw)
    except EspeakUnavailableError as e:
        raise DemoModelError(
            f"no model to serve: none configured, none cached in {out}, and the default one cannot be built "
            f"({e}). Fix: `.venv/bin/pip install espeakng-loader` (or `apt-get install espeak-ng`) and run "
            "again, "
            f"or serve a model you have: model=DIR_OR_USER/NAME (or set {MODEL_ENV}); "
            f"train one with the train job: data=my_sounds out=models/my_sounds pretrained=none"
        ) from None
    n_epochs = epochs or DEFAULT_TRAIN["epochs"]
    log(
        f"[2/2] training xresnet18 from scratch for {n_epochs} epochs on {manifest} "
        f"(a few minutes on 2 CPU cores; validation = held-out voices)"
    )
    import torch

    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = TrainArgs(
        data=str(manifest), out=str(tmp), **{**DEFAULT_TRAIN, "epochs": n_epochs}, progress=progress
    )
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        result = train(args, AudioConfig(**DEFAULT_AUDIO))
        (tmp / "earshot-default.json").write_text(
            json.dumps(
                {
                    "recipe_version": DEFAULT_RECIPE_VERSION,
                    "data": str(manifest),
                    "built_s": round(time.time() - t0, 1),
                }
            )
            + "\n"
        )
        if not _default_ok(out):  # another process may have finished first: keep theirs
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, out)
    finally:
        torch.set_num_threads(before)
        shutil.rmtree(tmp, ignore_errors=True)
    m = result.metrics
    log(
        f"default model ready in {time.time() - t0:.0f} s: accuracy {m['accuracy']:.3f} on "
        f"{m['n_valid']} clips of held-out voices → {out}"
    )
    return out


@dataclass
class ServedModel:
    """The Predictor the demo serves and the local folder it came from (metrics.json and plots live there)."""

    predictor: Predictor
    folder: Path


def load_model(ref: str | None = None, *, backend: str = "auto", log: Log = _info) -> ServedModel:
    """`ref` (a model directory or Hub id `USER/NAME[@rev]`), else `$EARSHOT_MODEL`, else the default model.

    A configured model that cannot be loaded is an error (never silently replaced by the default).
    `backend` goes to the Predictor ("auto" takes model.onnx when present; saliency needs "torch").
    """
    from learner.hub import resolve

    ref = ref or os.environ.get(MODEL_ENV) or None
    if ref:
        log(f"loading {ref}")
        folder = resolve(ref)
        model_id = (
            Path(folder).name if Path(ref).expanduser().exists() else ref.split("@")[0]
        )  # no server paths
    elif (SHIPPED_MODEL / "config.json").is_file():
        folder, model_id = SHIPPED_MODEL, f"{SHIPPED_NAME} (shipped with earshot)"
    else:
        log(f"earshot: the shipped default model ({SHIPPED_MODEL.name}) is missing; building the fallback")
        folder = ensure_default_model(log=log)
        model_id = f"{DEFAULT_NAME} (built locally)"
    return ServedModel(
        Predictor.from_pretrained(str(folder), model_id=model_id, backend=backend), Path(folder)
    )


@dataclass
class DemoOutput:
    """What `classify` returns; `figures` are matplotlib figures (None = nothing to draw)."""

    labels: dict[str, float]
    spectrogram: Any
    saliency: Any
    timeline: Any
    message: str

    def as_tuple(self) -> tuple:
        return self.labels, self.spectrogram, self.saliency, self.timeline, self.message


_PLOT_LOCK = threading.Lock()  # pyplot's figure manager is global state; requests run concurrently
_EXPLAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer_for(predictor: Predictor):
    """One saliency `Explainer` per Predictor (None when the backend has no torch model, e.g. ONNX)."""
    model = getattr(predictor.backend, "model", None)
    if model is None:
        return None
    with _EXPLAINERS_LOCK:
        if predictor not in _EXPLAINERS:
            from learner.model.saliency import Explainer

            _EXPLAINERS[predictor] = Explainer(model, predictor.cfg)
        return _EXPLAINERS[predictor]


def _display_logmel(predictor: Predictor, clip: np.ndarray) -> np.ndarray:
    """The log-mel the model saw, in NumPy (`learner.melspec`, equal to the torch front end): drawn with any
    backend."""
    from learner.serve.melspec import logmel

    return logmel(clip, predictor.cfg)


def _padded_after(signal: np.ndarray, cfg: Any) -> float | None:
    """Where padding (silence or a repeat, `pad_mode`) starts in the prepared clip (seconds), or None when the
    sound fills it."""
    kept = trim_silence(signal, cfg.trim_db, cfg.trim_mode).size
    return kept / cfg.sample_rate if 0 < kept < cfg.n_samples else None


def _close(fig: Any) -> Any:
    import matplotlib.pyplot as plt

    plt.close(
        fig
    )  # drop pyplot's reference (a server would leak one figure per request); the figure still draws
    return fig


def timeline_figure(
    starts: list[float], window_probs: np.ndarray, classes: list[str], window_s: float, k: int = 3
):
    """Probability of the top `k` classes (by mean over windows) at each window's centre."""
    import matplotlib.pyplot as plt

    mean = window_probs.mean(axis=0)
    top = ClipPipeline.top_k(mean, k)
    centres = np.asarray(starts) + window_s / 2
    fig, ax = plt.subplots(figsize=(9, 2.6))
    fig.subplots_adjust(
        left=0.07, right=0.8, bottom=0.19, top=0.88
    )  # fixed: tight_layout costs ~0.15 s a figure
    for i in top:
        ax.plot(centres, window_probs[:, i], marker="o", ms=3, label=f"{classes[i]} (mean {mean[i]:.2f})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds (window centre)")
    ax.set_ylabel("probability")
    ax.set_title(f"per-window probabilities ({len(starts)} windows of {window_s:g} s)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def classify(
    predictor: Predictor,
    path: str | Path | None,
    *,
    top_k: int = 5,
    max_duration_s: float = DEMO_MAX_S,
    saliency: bool = True,
) -> DemoOutput:
    """One upload (any format `learner.audio.decode.decode` reads) → top-k labels, the log-mel the model saw,
    a
    saliency overlay on it, a per-window timeline for long inputs, and a one-paragraph message.

    Raises `AudioDecodeError` (naming the file) for empty, corrupt, non-audio or too long uploads, and
    `ValueError` when there is no upload at all.
    """
    from learner.report.plots import spectrogram_figure

    if path is None or not str(path):
        raise ValueError("no audio: upload a file or record with the microphone first")
    cfg = predictor.cfg
    name = Path(path).name
    d = predictor.pipeline.decode(path, max_duration_s=max_duration_s, max_bytes=DEMO_MAX_BYTES, name=name)
    pred = predictor.predict(d, top_k=top_k, window="auto")
    top = predictor.classes.index(pred.label)
    clip = pred.clip  # what the model saw: the clip, or the window where the top label scored highest
    if pred.windowed:
        s = pred.window_starts[int(pred.window_probs[:, top].argmax())]
        where = f"window {s:.2f}–{s + pred.window_s:.2f} s (the most '{pred.label}' one)"
        raw = None
        scored = (
            f"scored in {len(pred.window_starts)} windows of {pred.window_s:g} s (hop {pred.hop_s:g} s); "
            f"labels = mean of window probabilities"
        )
    else:
        where = f"the {cfg.duration:g} s clip the model saw"
        raw = d.samples
        scored = f"scored as one {cfg.duration:g} s clip (silence trimmed, centre crop / repeat-pad)"
    kept = (
        _padded_after(raw, cfg) if raw is not None else None
    )  # a short sound: repeated, or centred in silence
    padded = kept if cfg.pad_mode == "repeat" else None
    explainer = explainer_for(predictor) if saliency else None
    sal = explainer(clip, target=top) if explainer is not None else None
    if saliency and sal is None:  # no torch model to differentiate (ONNX): ask the model with occluded copies
        from learner.serve.melspec import occlusion

        sal = occlusion(predictor.predict_waves, clip, cfg, top)
    axes = dict(f_min=cfg.f_min, f_max=cfg.f_max, padded_after_s=padded)
    with _PLOT_LOCK:
        logmel = sal.logmel if sal is not None else _display_logmel(predictor, clip)
        spec_fig = _close(
            spectrogram_figure(
                logmel, cfg.sample_rate, cfg.hop_length, title=f"what the model heard: {where}", **axes
            )
        )
        sal_fig = None
        if sal is not None:
            what = {
                "gradcam": "Grad-CAM",
                "gradient": "input gradient",
                "occlusion": "occlusion: bands muted in turn",
            }
            shown = np.where(sal.heat >= SALIENCY_FLOOR, sal.heat, np.nan)  # NaN cells stay transparent
            sal_fig = _close(
                spectrogram_figure(
                    sal.logmel,
                    cfg.sample_rate,
                    cfg.hop_length,
                    overlay=shown,
                    **axes,
                    title=f"where the model listened for '{pred.label}' ({what.get(sal.method, sal.method)})",
                )
            )
        tl_fig = None
        if pred.window_probs is not None:
            tl_fig = _close(
                timeline_figure(pred.window_starts, pred.window_probs, predictor.classes, pred.window_s)
            )
    ch = {1: "mono", 2: "stereo"}.get(d.channels, f"{d.channels} channels")
    msg = (
        f"**{pred.label}** ({pred.score:.0%}) · `{name}`: {d.duration_s:.2f} s, {d.orig_sample_rate} Hz {ch} "
        f"({d.decoder}) → mono {cfg.sample_rate} Hz · {scored}."
    )
    if padded is not None:
        msg += (
            f" The sound lasts {padded:.2f} s; the rest of the {cfg.duration:g} s clip repeats it "
            "(shaded in the plots)."
        )
    elif kept is not None:
        msg += f" The sound lasts {kept:.2f} s, centred in silence in the {cfg.duration:g} s clip."
    return DemoOutput(pred.as_dict(), spec_fig, sal_fig, tl_fig, msg)


# --- the Model tab and the examples
# ------------------------------------------------------------------------------


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads(read_regular(folder / name) or b"")
    except ValueError:
        return {}


MAX_SHOWN_BYTES = 8 * 1024 * 1024  # a confusion matrix or metrics.json bigger than this is not shown


def read_regular(path: Path, limit: int = MAX_SHOWN_BYTES) -> bytes | None:
    """The bytes of `path` if it is a regular file (never through a link) of at most `limit` bytes, else None:
    the demo shows only what lies in the model folder itself."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return f.read(limit)


def _table(rows: dict[str, Any], header: tuple[str, str] = ("setting", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in rows.items()]
    return "\n".join(lines)


@dataclass
class ModelInfo:
    """The Model tab in three Markdown columns, plus the confusion-matrix PNG's bytes (None if the model has
    none): bytes, not a path, so the page is built from them and /config names no file on the server."""

    summary: str
    audio: str
    training: str
    confusion_png: bytes | None


def model_info(predictor: Predictor, folder: str | Path | None) -> ModelInfo:
    """Classes, validation metrics (metrics.json), AudioConfig, training args and versions (config.json)."""
    from learner.modeldir import strip_local_paths
    from learner.report.metrics import summary_line

    folder = Path(folder) if folder is not None else None
    cfg = strip_local_paths(predictor.config)  # a public page shows no server paths
    metrics = _read_json(folder, "metrics.json") if folder else {}
    name = strip_local_paths(predictor.model_id) or "model"
    parts = [
        f"### {name}" + (f" @ `{predictor.revision}`" if predictor.revision else ""),
        f"**{predictor.arch}** on `{cfg.get('input', '?')}` input · {cfg.get('params', 0) / 1e6:.1f} M "
        "parameters · "
        f"backend `{getattr(predictor.backend, 'name', '?')}` · pretrained: `{cfg.get('pretrained', '?')}`",
        f"**{len(predictor.classes)} classes:** " + ", ".join(predictor.classes),
    ]
    if metrics:
        parts.append(f"**Metrics ({metrics.get('split', 'valid')}):** " + summary_line(metrics))
        rows = metrics.get("per_class", [])
        if 0 < len(rows) <= 50:
            parts.append(
                "\n".join(
                    ["| class | n | recall | precision | F1 |", "|---|---|---|---|---|"]
                    + [
                        f"| {r['label']} | {r['support']} | {r['recall']:.3f} | {r['precision']:.3f} | "
                        f"{r['f1']:.3f} |"
                        for r in rows
                    ]
                )
            )
    else:
        parts.append("**Metrics:** this model directory has no metrics.json.")
    audio = "#### AudioConfig\n\n" + _table(cfg.get("audio", {}))
    training = "#### Training arguments\n\n" + _table(cfg.get("train", {})) if cfg.get("train") else ""
    if cfg.get("versions"):
        training += "\n\n#### Versions\n\n" + _table(cfg["versions"], ("library", "version"))
    png = read_regular(folder / "confusion_matrix.png") if folder else None
    return ModelInfo("\n\n".join(parts), audio, training, png)


def confusion_html(png: bytes) -> str:
    """The confusion matrix inline (a data: URL): no file route, no server path in the page's config."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="Confusion matrix (validation)" '
        'style="max-width: 100%; height: auto;">'
    )


def example_files(classes: list[str]) -> list[str]:
    """Clips for the Examples widget: `$EARSHOT_EXAMPLES` if set, else the shipped folder whose words are
    classes."""
    env = os.environ.get(EXAMPLES_ENV)
    folder = Path(env).expanduser() if env else None
    if folder is None:
        for cand in (EXAMPLES_DIR / SHIPPED_NAME, EXAMPLES_DIR / DEFAULT_NAME):
            words = {
                p.stem for p in cand.glob("*.*") if p.suffix.lower() in AUDIO_EXTENSIONS and "-" not in p.stem
            }
            if words and words <= set(classes):
                folder = cand
                break
    if folder is None or not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_EXTENSIONS]


def make_examples(out_dir: str | Path) -> list[Path]:
    """Write the shipped example clips: digits in voices the default model never trains on, and one long
    sequence of digits (to show windowed scoring). Regenerate with `python -c "from learner.serve.demo import
    make_examples; make_examples('examples/spoken-digits')"`."""
    import soundfile as sf

    from learner.audio import resample
    from learner.data.synth import render_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sr = 16000
    written = []
    voices = (
        ("three", "en-us+m1", 16000, 1),
        ("seven", "en+f4", 44100, 2),
        ("nine", "en-gb-x-rp+m5", 16000, 3),
    )
    for digit, voice, rate, seed in voices:
        x = render_clip(digit, voice, np.random.default_rng(seed), noise_snr_db=(30, 30), sample_rate=sr)
        path = out / f"{digit}.wav"
        sf.write(path, resample(x, sr, rate), rate, subtype="PCM_16")
        written.append(path)
    rng = np.random.default_rng(4)
    parts = []
    for digit in ("four", "one", "eight", "two", "six"):
        parts += [
            render_clip(digit, "en-us+f1", rng, noise_snr_db=(35, 35), sample_rate=sr),
            np.zeros(int(0.5 * sr), np.float32),
        ]
    path = out / "counting-4-1-8-2-6.flac"
    sf.write(path, np.concatenate(parts), sr, subtype="PCM_16")
    return [*written, path]
