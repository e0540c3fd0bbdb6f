"""Teach it your sounds: a few recorded examples per class → a model in seconds, one per browser session.

Each example is embedded when it is added, by two frozen backbones: aisfx (sound effects; `TEACH_VIEWS`
views of it, the first exactly what the Predictor will cut) and, where it loads, Google's speech_embedding
(`learner.demo.teach_speech`). Train only fits a linear head on each (`learner.model.head_fit`, the
frozen-head path of `jobs.train --arch aisfx`, without fastai: the demo never imports training), keeps the
backbone whose head is right more often in cross-validation over the takes (a tie keeps aisfx), and writes a
model folder that serves like any other: backbone + head (or model.onnx), config.json, loaded by `Predictor`.

A `Teacher` holds one session's classes, example embeddings (kilobytes, never the audio), its model and
folder; `Classroom` keeps at most `max_sessions` of them (the least recently used goes, with its folder)
and forgets one untouched for `ttl_s`. Nothing one session adds or trains is reachable from another.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.audio import ClipPipeline
from learner.audio.decode import decode_array
from learner.config import AudioConfig
from learner.demo import teach_speech
from learner.folder import save_model_dir
from learner.folder.schema import class_name_problem
from learner.serve.predictor import Predictor

log = logging.getLogger(__name__)
BACKBONE = "aisfx"
CLIP_S = 0.5  # the taught clip and live window: 1 s windows kept a sound's label 0.75 s after it ended
MIN_CLASSES, MAX_CLASSES = 2, 10
MIN_EXAMPLES = 3  # per class, before Train
MAX_EXAMPLES = 50  # per class: memory stays bounded (views × 1024 floats each)
MAX_EXAMPLE_S = 30.0  # one example's decoded length
TEACH_VIEWS = 4  # embeddings per example: the inference view, then shifted / lightly noisy ones
MAX_SESSIONS = 8
SESSION_TTL_S = 3600.0
SUGGESTED = "background, clap, whistle"
Progress = Callable[[float, str], Any]


class TeachError(ValueError):
    """What the user must change (too few classes or examples, a bad name, an unreadable take)."""


_backbone_lock = threading.Lock()
_backbone: Any = None


def shared_backbone() -> Any:
    """The frozen backbone every session embeds with (read only: its weights never change)."""
    global _backbone
    with _backbone_lock:
        if _backbone is None:
            from learner.model.backbones import load_backbone

            _backbone = load_backbone(BACKBONE)
        return _backbone


def teach_audio_config() -> AudioConfig:
    rate = int(shared_backbone().sample_rate)
    return AudioConfig(sample_rate=rate, duration=CLIP_S, pad_mode="repeat")


def parse_classes(text: str) -> list[str]:
    """ "background, clap, whistle" → the class names: 2–10, distinct, each a valid class name."""
    names = [n.strip() for n in str(text or "").replace("\n", ",").split(",") if n.strip()]
    for n in names:
        if problem := class_name_problem(n):
            raise TeachError(f"class name {n!r} {problem}")
    if len(set(names)) != len(names):
        raise TeachError(f"class names must differ: {', '.join(names)}")
    if not MIN_CLASSES <= len(names) <= MAX_CLASSES:
        raise TeachError(f"name {MIN_CLASSES} to {MAX_CLASSES} classes, comma separated (got {len(names)})")
    return names


def example_views(samples: np.ndarray, pipe: ClipPipeline, rng: np.random.Generator) -> np.ndarray:
    """(TEACH_VIEWS, clip samples): the Predictor's own cut first, then random crops (or circular shifts
    of a short take) with faint noise, so the head learns the sound, not one placement of it."""
    views = [pipe.prepare(samples)]
    trimmed = pipe.trim(samples)
    n = pipe.cfg.n_samples
    for _ in range(TEACH_VIEWS - 1):
        if trimmed.size > n:
            at = int(rng.integers(0, trimmed.size - n + 1))
            x = trimmed[at : at + n]
        else:
            x = np.roll(pipe.prepare(samples), int(rng.integers(0, n)))
        views.append((x + rng.normal(0, 0.002, x.size)).astype(np.float32))
    return np.stack(views)


@dataclass
class TeachResult:
    predictor: Predictor
    folder: Path
    seconds: float
    inner_cv_accuracy: float | None
    backbone: str = BACKBONE
    cross_validation: dict[str, float | None] | None = None  # each backbone's head, right in inner CV


class Teacher:
    """One session's classes, example embeddings and taught model."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / secrets.token_hex(8)  # not the session id: it appears in download paths
        self.classes: list[str] = []
        self.examples: dict[str, list[np.ndarray]] = {}  # aisfx views of each take
        self.speech: dict[str, list[np.ndarray]] = {}  # speech_embedding views of the same takes
        self.predictor: Predictor | None = None
        self.lock = threading.Lock()
        self.used_at = time.monotonic()
        self._rng = np.random.default_rng(secrets.randbits(32))

    def set_classes(self, text: str) -> list[str]:
        """New class names; examples of classes kept by name stay."""
        names = parse_classes(text)
        with self.lock:
            self.classes = names
            self.examples = {c: self.examples.get(c, []) for c in names}
            self.speech = {c: self.speech.get(c, []) for c in names}
        return names

    def counts(self) -> dict[str, int]:
        return {c: len(self.examples.get(c, [])) for c in self.classes}

    def add_example(self, label: str, take: Any) -> int:
        """Embed one take (a path, or Gradio's (rate, array)) as an example of `label`; its new count."""
        if label not in self.classes:
            raise TeachError(f"{label!r} is not one of the classes ({', '.join(self.classes) or 'none yet'})")
        if len(self.examples[label]) >= MAX_EXAMPLES:
            raise TeachError(f"{label}: {MAX_EXAMPLES} examples is this demo's limit per class")
        if take is None:
            raise TeachError("record or upload a take first")
        pipe = ClipPipeline(teach_audio_config())
        d = _decode(take, pipe)
        if d.duration_s < 0.1:
            raise TeachError(
                f"{label}: the take is {d.duration_s:.2f} s; record at least a tenth of a second"
            )
        views = example_views(d.samples, pipe, self._rng)
        import torch

        with torch.inference_mode():
            emb = shared_backbone()(torch.from_numpy(views)).numpy()
        speech = None
        if teach_speech.available() is None:
            words = ClipPipeline(teach_speech.speech_audio_config())
            speech = teach_speech.speech_views(words.prepare(_decode(take, words).samples))
        with self.lock:
            self.examples[label].append(emb.astype(np.float32))
            if speech is not None:
                self.speech[label].append(speech)
            self.used_at = time.monotonic()
            return len(self.examples[label])

    def check_ready(self) -> None:
        if len(self.classes) < MIN_CLASSES:
            raise TeachError(f"name at least {MIN_CLASSES} classes first")
        short = [f"{c} ({n})" for c, n in self.counts().items() if n < MIN_EXAMPLES]
        if short:
            raise TeachError(
                f"record at least {MIN_EXAMPLES} examples of each class; not yet: {', '.join(short)}"
            )

    def train(self, progress: Progress | None = None, backbone: str = "auto") -> TeachResult:
        """Fit a head on every example with each backbone, keep the better one in cross-validation (or
        `backbone`: "aisfx", "speech_embedding"), and write + load the model folder (replacing this
        session's)."""
        from learner.model.head_fit import choose_head

        if backbone not in ("auto", BACKBONE, teach_speech.NAME):
            raise TeachError(f"backbone must be auto, {BACKBONE} or {teach_speech.NAME}, got {backbone!r}")
        say = progress or (lambda f, m: None)
        t0 = time.perf_counter()
        with self.lock:
            self.check_ready()
            classes = list(self.classes)
            views = np.stack([e for c in classes for e in self.examples[c]])  # (n, views, dim)
            y = np.array([i for i, c in enumerate(classes) for _ in self.examples[c]])
            speech = None
            if all(len(self.speech[c]) == len(self.examples[c]) for c in classes):
                speech = np.stack([e for c in classes for e in self.speech[c]])
        if backbone == teach_speech.NAME and speech is None:
            why = teach_speech.available() or "some takes were added before it loaded"
            raise TeachError(f"the {teach_speech.NAME} backbone is not available here ({why})")
        say(0.1, f"fitting heads on {len(y)} examples")
        fits = {}
        if backbone in ("auto", BACKBONE):
            fits[BACKBONE] = choose_head(views, y, np.arange(len(y)))
        if backbone in ("auto", teach_speech.NAME) and speech is not None:
            fits[teach_speech.NAME] = choose_head(speech, y, np.arange(len(y)))
        scores = {name: fit.inner_accuracy for name, fit in fits.items()}
        chosen = max(fits, key=lambda name: (scores[name] or 0.0, name == BACKBONE))  # a tie keeps aisfx
        say(0.6, f"writing the model folder ({chosen})")
        counts = {c: int((y == i).sum()) for i, c in enumerate(classes)}
        folder = self._write(classes, fits[chosen], counts, chosen, scores)
        say(0.8, "loading it")
        served = "torch" if chosen == BACKBONE else "onnx"
        predictor = Predictor.from_dir(folder, backend=served, model_id=f"taught: {', '.join(classes)}")
        with self.lock:
            self.predictor = predictor
            self.used_at = time.monotonic()
        seconds = time.perf_counter() - t0
        say(1.0, f"trained in {seconds:.1f} s")
        return TeachResult(predictor, folder, seconds, scores[chosen], chosen, scores)

    def _write(self, classes: list[str], fit: Any, counts: dict[str, int], backbone: str,
               scores: dict[str, float | None]) -> Path:  # fmt: skip
        from learner import __version__

        folder = self.root / "model"
        if folder.exists():
            shutil.rmtree(folder)
        views = TEACH_VIEWS if backbone == BACKBONE else len(teach_speech.PLACEMENTS_S)
        taught = {"examples": counts, "views": views, "inner_cv_accuracy": fit.inner_accuracy,
                  "backbone_inner_cv_accuracy": scores}  # fmt: skip
        common = {"earshot_version": __version__, "task": "single", "taught": taught}
        if backbone == teach_speech.NAME:
            return teach_speech.write_folder(folder, classes, fit, common)
        return self._write_aisfx(folder, classes, fit, common)

    def _write_aisfx(self, folder: Path, classes: list[str], fit: Any, common: dict[str, Any]) -> Path:
        from learner.model import create_model, n_params
        from learner.model.head_fit import backbone_record, head_state_dict

        cfg = teach_audio_config()
        cfg.extra = {"head": {"hidden": 0, "l2": bool(fit.l2)}}
        net = create_model(BACKBONE, len(classes), cfg)
        net.backbone.load_state_dict(shared_backbone().state_dict())
        net.load_state_dict(head_state_dict(fit), strict=False)
        config = {
            **common,
            "arch": BACKBONE,
            "input": "waveform",
            "classes": classes,
            "audio": cfg.to_dict(),
            "params": n_params(net),
            "pretrained": f"{BACKBONE} (published weights)",
            "backbone": backbone_record(BACKBONE, "frozen", head={"kind": "logistic regression", "C": fit.C}),
        }
        save_model_dir(folder, net.eval().state_dict(), config)
        return folder

    def zip(self) -> Path:
        """The model folder as one zip file (beside it), for download."""
        folder = self.root / "model"
        if self.predictor is None or not (folder / "config.json").is_file():
            raise TeachError("train a model first")
        return Path(shutil.make_archive(str(self.root / "earshot-taught-model"), "zip", folder))

    def push(self, repo_id: str, token: str | None) -> str:
        """Push the model folder to the Hub (`learner.hub.push`); a failure is one line (HubError)."""
        from learner.hub import push

        if self.predictor is None:
            raise TeachError("train a model first")
        return push(self.root / "model", repo_id.strip(), token=(token or "").strip() or None)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _decode(take: Any, pipe: ClipPipeline) -> Any:
    """A path, or Gradio's (rate, array), decoded at the pipeline's rate (one clear error if unreadable)."""
    if isinstance(take, tuple) and len(take) == 2:
        from learner.demo.live import as_float_mono

        return decode_array(as_float_mono(take[1]), int(take[0]), pipe.cfg.sample_rate, MAX_EXAMPLE_S)
    return pipe.decode(take, max_duration_s=MAX_EXAMPLE_S)


class Classroom:
    """Every session's Teacher, keyed by Gradio's session hash, at most `max_sessions` (LRU) and each for
    `ttl_s` after its last use; a dropped Teacher's folder is deleted with it."""

    def __init__(self, root: Path, max_sessions: int = MAX_SESSIONS, ttl_s: float = SESSION_TTL_S) -> None:
        self.root, self.max_sessions, self.ttl_s = Path(root), max_sessions, ttl_s
        self._teachers: OrderedDict[str, Teacher] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: str) -> Teacher:
        with self._lock:
            self._expire()
            t = self._teachers.pop(session, None) or Teacher(self.root)
            self._teachers[session] = t
            t.used_at = time.monotonic()
            while len(self._teachers) > self.max_sessions:
                _, old = self._teachers.popitem(last=False)
                old.discard()
            return t

    def peek(self, session: str) -> Teacher | None:
        with self._lock:
            return self._teachers.get(session)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._teachers.items() if now - t.used_at > self.ttl_s]:
            self._teachers.pop(key).discard()

    def __len__(self) -> int:
        return len(self._teachers)


def open_classroom(root: Path) -> Classroom | None:
    """The demo's Classroom, or None (with one log line) when the backbone's weights cannot be loaded."""
    try:
        shared_backbone()
    except Exception as e:  # no weights offline, a broken cache: the rest of the demo still serves
        log.warning("no Teach tab: the %s backbone did not load (%s)", BACKBONE, e)
        return None
    # the speech backbone's files may need one fetch (a Space's first start): not in the first take's request
    threading.Thread(target=teach_speech.available, name="teach-speech-warm", daemon=True).start()
    return Classroom(root)
