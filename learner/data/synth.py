"""`spoken-digits-synth`: the ten digits spoken by espeak-ng, so training, the demo and the tests have a real
speech task without a download.

espeak-ng comes from the pip package `espeakng-loader` (library + voice data in the wheel) and is driven
through
ctypes; a system `libespeak-ng` (apt `espeak-ng`) is the fallback. Each "speaker" is one voice (an English
dialect plus a voice-quality variant such as `+f3`); every clip draws its own rate, pitch, pitch range,
padding,
gain and background noise, so a classifier must learn the words rather than one rendering of them.
The manifest's `group` column is the voice, which lets a group-aware split hold whole speakers out.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from learner.data.mixtures import colored_noise

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# English dialects × voice-quality variants; each entry is one "speaker" (the manifest's group).
DEFAULT_VOICES = (
    "en-us",
    "en-us+f2",
    "en-us+m3",
    "en-us+f4",
    "en-us+klatt4",
    "en",
    "en+f3",
    "en+m2",
    "en+m7",
    "en+croak",
    "en-gb-x-rp",
    "en-gb-x-rp+f5",
    "en-gb-scotland",
    "en-gb-scotland+f1",
    "en-029",
    "en-029+m4",
    "en-us-nyc+m6",
    "en-gb-x-gbclan+f2",
    "en-gb-x-gbcwmd+m1",
    "en-us+whisperf",
)
SMALL_VOICES = ("en-us", "en+f3", "en-gb-scotland+m4")
SYNTH_VERSION = 1  # bump when the recipe below changes, so cached builds are rebuilt

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_AUTO = 0
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_INSTALL_HINT = "pip install espeakng-loader (or apt-get install espeak-ng)"


class EspeakUnavailableError(RuntimeError):
    """espeak-ng could not be loaded or initialised; the message says how to install it."""


class _Espeak:
    """The process-wide espeak-ng engine: initialised once, used under a lock (its state is global)."""

    def __init__(self) -> None:
        lib, data_path = _load_library()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        # espeak-ng >= 1.51 seeds its noise (breathy variants) from the clock unless told otherwise
        self._seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._seed is not None:
            self._seed.argtypes, self._seed.restype = [ctypes.c_long], None
        path = data_path.encode() if data_path else None
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
        if sr <= 0:
            raise EspeakUnavailableError(
                f"espeak-ng failed to initialise (data: {data_path}); {_INSTALL_HINT}"
            )
        self.lib, self.sample_rate = lib, int(sr)
        self.version = (lib.espeak_Info(None) or b"?").decode(errors="replace")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept on self: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n: int, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep going

    def say(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int = 0
    ) -> np.ndarray:
        with self.lock:
            if self._seed is not None:
                self._seed(seed)
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r} (try 'en', 'en-us', 'en+f3')")
            for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            data = text.encode()
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None)
            chunks, self._chunks = self._chunks, []
        if err != 0:
            raise RuntimeError(f"espeak-ng could not synthesise {text!r} with {voice!r} (error {err})")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def _load_library() -> tuple[ctypes.CDLL, str | None]:
    """The wheel's library and data first, then a system libespeak-ng with its built-in data path."""
    reasons = []
    try:
        import espeakng_loader

        return ctypes.CDLL(espeakng_loader.get_library_path()), espeakng_loader.get_data_path()
    except (ImportError, OSError, RuntimeError) as e:
        reasons.append(f"espeakng-loader: {e}")
    for name in ("espeak-ng", "espeak"):
        found = ctypes.util.find_library(name)
        if found:
            try:
                return ctypes.CDLL(found), None
            except OSError as e:
                reasons.append(f"{found}: {e}")
    reasons.append("no system libespeak-ng")
    raise EspeakUnavailableError(f"espeak-ng is not available ({'; '.join(reasons)}): {_INSTALL_HINT}")


_engine: _Espeak | None = None
_engine_lock = threading.Lock()


def engine() -> _Espeak:
    """The one espeak-ng engine of this process (raises `EspeakUnavailableError` if there is none)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Espeak()
        return _engine


def espeak_available() -> bool:
    """True if espeak-ng loads here; tests skip on False instead of failing."""
    try:
        engine()
    except EspeakUnavailableError:
        return False
    return True


def synthesize(
    text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, *, pitch_range: int = 50, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Speak `text` → (int16 samples, sample rate 22050). `rate` in words/min (80–450), `pitch` 0–99.

    `seed` fixes espeak-ng's own noise (breathy voices). Its wave generator also carries the pitch phase over
    from the previous utterance, so repeating a call can shift the result by a few samples.
    """
    eng = engine()
    return eng.say(text, voice, rate, pitch, pitch_range, seed), eng.sample_rate


def render_clip(
    digit: str,
    voice: str,
    rng: np.random.Generator,
    *,
    noise_snr_db: tuple[float, float] = (10, 40),
    gain_db: tuple[float, float] = (-12, 0),
    sample_rate: int = 16000,
) -> np.ndarray:
    """One float32 clip: random rate/pitch/range, padding, gain and background noise (white/pink/brown)."""
    from learner.audio.signal import resample

    rate, pitch, prange = int(rng.integers(120, 241)), int(rng.integers(25, 76)), int(rng.integers(20, 81))
    raw, sr = synthesize(digit, voice, rate, pitch, pitch_range=prange, seed=int(rng.integers(2**31)))
    speech = resample(raw.astype(np.float32) / 32768.0, sr, sample_rate)
    speech *= 0.9 / (np.abs(speech).max() + 1e-9) * 10 ** (rng.uniform(*gain_db) / 20)
    pad = rng.uniform(0.05, 0.3, size=2)
    x = np.concatenate([np.zeros(int(pad[0] * sample_rate)), speech, np.zeros(int(pad[1] * sample_rate))])
    power = np.mean(speech**2)
    snr = rng.uniform(*noise_snr_db)
    x += colored_noise(rng, x.size, float(rng.choice([0.0, 1.0, 2.0]))) * np.sqrt(power / 10 ** (snr / 10))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _slug(voice: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", voice)


def build_spoken_digits(
    out_dir: str | Path,
    *,
    voices: Sequence[str] | None = None,
    per_voice: int = 8,
    seed: int = 0,
    noise_snr_db: tuple[float, float] = (10, 40),
    gain_db: tuple[float, float] = (-12, 0),
    sample_rate: int = 16000,
) -> Path:
    """Write `out_dir/{digit}/{voice}_{k}.wav` (voices × 10 digits × `per_voice`) and `manifest.csv`.

    The manifest (path,label,group; group = voice) is written last, so its presence means a complete build.
    Each clip's choices are seeded from (seed, voice, digit, k); a build in a fresh process is byte-for-byte
    reproducible (a later build in the same process may differ by a few samples: see `synthesize`).
    Defaults: 20 voices × 10 × 8 = 1600 clips; `voices=SMALL_VOICES, per_voice=2` gives 60 for tests.
    """
    voices = tuple(voices) if voices is not None else DEFAULT_VOICES
    if not voices or per_voice < 1:
        raise ValueError(
            f"need at least one voice and per_voice >= 1 (got {len(voices)} voices, {per_voice})"
        )
    if len({_slug(v) for v in voices}) != len(voices):
        raise ValueError(f"voices must be distinct: {voices}")
    import soundfile as sf

    out = Path(out_dir)
    eng = engine()
    rows = []
    for vi, voice in enumerate(voices):
        for di, digit in enumerate(DIGITS):
            (out / digit).mkdir(parents=True, exist_ok=True)
            for k in range(per_voice):
                rng = np.random.default_rng([seed, vi, di, k])
                clip = render_clip(
                    digit, voice, rng, noise_snr_db=noise_snr_db, gain_db=gain_db, sample_rate=sample_rate
                )
                rel = f"{digit}/{_slug(voice)}_{k:02d}.wav"
                sf.write(out / rel, clip, sample_rate, subtype="PCM_16")
                rows.append((rel, digit, voice))
    info = dict(
        dataset="spoken-digits-synth",
        version=SYNTH_VERSION,
        espeak_ng=eng.version,
        voices=list(voices),
        per_voice=per_voice,
        seed=seed,
        noise_snr_db=list(noise_snr_db),
        gain_db=list(gain_db),
        sample_rate=sample_rate,
        clips=len(rows),
    )
    (out / "synth.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    tmp = out / f".manifest.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        w.writerows(rows)
    os.replace(tmp, out / "manifest.csv")
    return out / "manifest.csv"


def _build_ok(out: Path) -> bool:
    try:
        info = json.loads((out / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    return (out / "manifest.csv").exists() and info.get("version") == SYNTH_VERSION


def ensure_spoken_digits(out_dir: str | Path, **kwargs: Any) -> Path:
    """`out_dir/manifest.csv`, building it first if absent or from an older SYNTH_VERSION.

    Built in a temporary sibling folder renamed into place, so concurrent processes never see half a set.
    """
    from learner.data.builds import build_once

    return build_once(
        Path(out_dir),
        _build_ok,
        lambda tmp: build_spoken_digits(tmp, **kwargs),
        "synth.json",
        "spoken-digits-synth",
    )
