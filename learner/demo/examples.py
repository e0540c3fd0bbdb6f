"""The demo's example clips: found beside the app, or written from synthetic spoken digits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from learner.audio import AUDIO_EXTENSIONS

EXAMPLES_ENV = "EARSHOT_EXAMPLES"


def example_files(classes: list[str], examples_dir: Path | None = None) -> list[str]:
    """Clips for the Examples widget: `$EARSHOT_EXAMPLES` if set, else the shipped folder whose words are
    classes."""
    env = os.environ.get(EXAMPLES_ENV)
    folder = Path(env).expanduser() if env else None
    if folder is None and examples_dir is not None and Path(examples_dir).is_dir():  # none beside an install
        for cand in sorted(p for p in Path(examples_dir).iterdir() if p.is_dir()):
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
    sequence of digits (to show windowed scoring). Regenerate with
    `python -c "from learner.demo.examples import make_examples; make_examples('examples/spoken-digits')"`."""
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
