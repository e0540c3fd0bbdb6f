"""`mixtures-synth`: an offline multi-label set. Each clip mixes 1–3 different synthetic sound sources
(out of six classes) at random offsets, lengths and SNRs over a background noise, so the labels, and when
each source sounds, are known exactly.

The manifest is `path,labels,group` (`labels` `;`-separated; `group` = the recording "site", whose background
noise colour and level every clip of it shares, so the default group split holds whole sites out), and
`events.csv` lists every source as `path,label,start_s,end_s`.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from learner.data.sounds import raw_sound

MIXTURES_VERSION = 2  # bump when the recipe below changes, so cached builds are rebuilt
BUILD_INFO = "mixtures.json"


SOURCES = ("chirp", "clicks", "hiss", "knock", "siren", "tone")  # from the one table, learner.data.sounds


def source(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of one source class at unit RMS, with 10 ms fades."""
    x = raw_sound(kind, n, sr, rng)
    fade = min(n // 2, int(0.01 * sr))
    if fade:
        ramp = np.linspace(0, 1, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def mixture(
    rng: np.random.Generator, r: MixtureRecipe, noise: tuple[float, float]
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """One clip of recipe `r`: background noise (`noise`: its colour exponent and dBFS RMS) plus 1–3
    distinct sources, each at a random SNR (its RMS over its own span against the background's), length
    and offset. Returns (samples, events)."""
    noise_exponent, noise_db = noise
    duration, sr, snr_db, source_s = r.duration, r.sample_rate, r.snr_db, r.source_s
    n = int(round(duration * sr))
    x = colored_noise(rng, n, noise_exponent) * 10 ** (noise_db / 20)
    noise_rms = 10 ** (noise_db / 20)
    k = int(rng.integers(r.n_sources[0], r.n_sources[1] + 1))
    events = []
    for kind in rng.choice(r.classes, size=k, replace=False):
        length = int(round(min(duration, rng.uniform(*source_s)) * sr))
        start = int(rng.integers(0, n - length + 1))
        gain = noise_rms * 10 ** (rng.uniform(*snr_db) / 20)
        x[start : start + length] += gain * source(str(kind), length, sr, rng)
        events.append((str(kind), start / sr, (start + length) / sr))
    peak = np.abs(x).max()
    if peak > 0.95:
        x *= 0.95 / peak
    return x.astype(np.float32), sorted(events, key=lambda e: e[1])


def _checked_classes(classes: tuple[str, ...] | None, n_sources: tuple[int, int]) -> tuple[str, ...]:
    """The classes to mix (all by default), refused before any file is written if a clip cannot be built."""
    classes = tuple(classes or SOURCES)
    unknown = sorted(set(classes) - set(SOURCES))
    if unknown or len(classes) < 2:
        raise ValueError(f"classes: need at least 2 of {', '.join(SOURCES)}; got {list(classes)}")
    lo, hi = n_sources
    if not 0 <= lo <= hi <= len(classes):
        raise ValueError(f"n_sources=({lo}, {hi}): need 0 ≤ low ≤ high ≤ {len(classes)} classes")
    return classes


def _sites(seed: int, n_sites: int) -> list[tuple[float, float]]:
    """(noise exponent, noise dBFS) per site, from their own stream: the clips' draws never shift them."""
    site_rng = np.random.default_rng([seed, 0])
    return [
        (float(site_rng.choice([0.0, 1.0, 2.0])), float(site_rng.uniform(-50, -35))) for _ in range(n_sites)
    ]


@dataclass(frozen=True)
class MixtureRecipe:
    """The parameters of one build, declared once: `build_mixtures` takes them as keywords (these defaults)
    and records them in mixtures.json, which `ensure_mixtures` compares before reusing a build."""

    n_clips: int = 720
    n_sites: int = 24
    duration: float = 2.0
    sample_rate: int = 16000
    n_sources: tuple[int, int] = (1, 3)
    snr_db: tuple[float, float] = (0, 20)
    source_s: tuple[float, float] = (0.4, 1.5)
    classes: tuple[str, ...] | None = None
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """The recipe as mixtures.json stores it (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_mixtures(out_dir: str | Path, **params: Any) -> Path:
    """Write `out_dir/clips/{site}_{i}.wav`, `events.csv` and (last, so its presence means a complete build)
    `manifest.csv` → its path. Deterministic for a given seed and parameters."""
    import soundfile as sf

    r = MixtureRecipe(**params)
    r = replace(r, classes=_checked_classes(r.classes, r.n_sources), n_sources=tuple(r.n_sources))
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    sites = _sites(r.seed, r.n_sites)
    rows, events = [], []
    for i in range(r.n_clips):
        site = i % r.n_sites
        rng = np.random.default_rng([r.seed, 1, i])
        x, ev = mixture(rng, r, sites[site])
        rel = f"clips/site{site:02d}_{i:04d}.wav"
        sf.write(out / rel, x, r.sample_rate, subtype="PCM_16")
        rows.append((rel, ";".join(sorted({e[0] for e in ev})), f"site{site:02d}"))
        events += [(rel, lab, round(a, 4), round(b, 4)) for lab, a, b in ev]
    info = {"dataset": "mixtures-synth", "version": MIXTURES_VERSION, **r.record()}
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    _write_csv(out / "events.csv", ["path", "label", "start_s", "end_s"], events)
    _write_csv(out / "manifest.csv", ["path", "labels", "group"], rows)
    return out / "manifest.csv"


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def _build_ok(out: Path, params: dict[str, Any]) -> bool:
    try:
        info = json.loads((out / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return False
    same = all(info.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in params.items())
    return (out / "manifest.csv").exists() and info.get("version") == MIXTURES_VERSION and same


def ensure_mixtures(out_dir: str | Path, **params: Any) -> Path:
    """`out_dir/manifest.csv`, building it first if absent, older or made with other parameters. Built in a
    temporary sibling folder renamed into place, so concurrent processes never see half a set."""
    from learner.data.builds import build_once

    return build_once(
        Path(out_dir),
        lambda out: _build_ok(out, params),
        lambda tmp: build_mixtures(tmp, **params),
        BUILD_INFO,
        "mixtures-synth",
    )
