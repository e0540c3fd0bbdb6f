"""The demo's fallback model, for a checkout without the shipped one: espeak-ng spoken digits → xresnet18
from scratch, built once into earshot's cache. It lives in the training room because it trains; app.py
hands it to `learner.demo.models.load_model`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learner.config import cache_home

MODEL_ENV = "EARSHOT_MODEL"
DEFAULT_NAME = "spoken-digits"
Log = Callable[[str], Any]
_info = logging.getLogger(__name__).info


class DefaultModelError(RuntimeError):
    """The fallback model cannot be built here; the message says what to do."""


DEFAULT_RECIPE_VERSION = 1  # bump when the fallback recipe below changes: cached fallback models are rebuilt
# The fallback (no shipped folder): spoken digits, 1.0 s clips at 16 kHz, 64 mels, 16 ms hop, small
# SpecAugment.
DEFAULT_AUDIO = dict(
    sample_rate=16000, duration=1.0, n_fft=512, hop_length=256, n_mels=64, f_max=8000.0,  # clip, log-mel
    mixup=0.0, spec_freq_mask=8, spec_time_mask=8, spec_masks=2,  # its augmentation
)
DEFAULT_TRAIN = dict(arch="xresnet18", pretrained="none", epochs=5, bs=32, lr=3e-3, seed=42, pickle=False)


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


def _digits_folder(kw: dict[str, Any]) -> Path:
    """Where the spoken digits go: shared with data=spoken-digits-synth, unless that one was built with
    other voices, per_voice or seed (then a folder named after the size)."""
    data_root = (
        Path(os.environ["EARSHOT_DATA"]).expanduser()
        if os.environ.get("EARSHOT_DATA")
        else cache_home() / "datasets"
    )
    # shared with data=spoken-digits-synth, unless built differently there
    data = data_root / "spoken-digits-synth"
    if not _synth_matches(data, kw):
        data = data_root / f"spoken-digits-synth-{len(kw['voices'])}x{kw['per_voice']}"
    return data


def _synthesise(data: Path, kw: dict[str, Any], out: Path) -> Path:
    """The digits' manifest; without espeak-ng, one message saying how to get it or serve another model."""
    from learner.data.synth import EspeakUnavailableError, ensure_spoken_digits

    try:
        return ensure_spoken_digits(data, **kw)
    except EspeakUnavailableError as e:
        raise DefaultModelError(
            f"no model to serve: none configured, none cached in {out}, and the default one cannot be built "
            f"({e}). Fix: `.venv/bin/pip install espeakng-loader` (or `apt-get install espeak-ng`) and run "
            "again, "
            f"or serve a model you have: model=DIR_OR_USER/NAME (or set {MODEL_ENV}); "
            f"train one with the train job: data=my_sounds out=models/my_sounds pretrained=none"
        ) from None


def _train_into(
    out: Path, manifest: Path, n_epochs: int, progress: bool, threads: int | None, t0: float
) -> dict[str, Any]:
    """Trains in a temporary sibling folder renamed into place (unless another process finished first),
    so an interrupted or concurrent build never leaves half a model → the run's metrics."""
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
    return result.metrics


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
    against other processes made the build 4× slower (16 min vs 3.8 min, load 4–8); None keeps torch's
    default.
    """
    out = Path(folder) if folder is not None else default_model_dir()
    if _default_ok(out):
        return out
    from learner.data.synth import DEFAULT_VOICES

    kw: dict[str, Any] = {"voices": list(voices or DEFAULT_VOICES), "per_voice": per_voice or 8, "seed": 0}
    data = _digits_folder(kw)
    t0 = time.time()
    log(
        f"no model configured ({MODEL_ENV} / model=); building the default spoken-digits model once "
        f"into {out}"
    )
    log(f"[1/2] synthesising spoken digits with espeak-ng into {data} (about 30 s, first time only)")
    manifest = _synthesise(data, kw, out)
    n_epochs = epochs or DEFAULT_TRAIN["epochs"]
    log(
        f"[2/2] training xresnet18 from scratch for {n_epochs} epochs on {manifest} "
        f"(a few minutes on 2 CPU cores; validation = held-out voices)"
    )
    m = _train_into(out, manifest, n_epochs, progress, threads, t0)
    log(
        f"default model ready in {time.time() - t0:.0f} s: accuracy {m['accuracy']:.3f} on "
        f"{m['n_valid']} clips of held-out voices → {out}"
    )
    return out
