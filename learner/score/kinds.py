"""What a scoring run writes: its output kind. Both engines run the same discovery, decoding workers,
streaming of long files and parts; the kind says which tables (schemas), what is recorded for `--resume`
(meta), how a batch of decoded items becomes rows, and how a model is loaded by reference (Ray actors).

- "scores": class scores per file (+ windows and events with `window`), from a `Predictor`;
- "embeddings": one vector per file, or per window with `window`, from an `Embedder`
  (`learner.embed.embedder`; rows in `learner.score.embedded`).

Adding a kind is adding one entry to `KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from learner import __version__
from learner.score.rows import EVENT_SCHEMA, WINDOW_SCHEMA, Item, backend_name, file_schema, score_items

Tables = tuple[pa.Table, pa.Table | None, pa.Table | None]  # file rows, window rows, event rows


@dataclass(frozen=True)
class OutputKind:
    name: str
    schemas: Callable[[Any, Any], tuple[pa.Schema, pa.Schema | None, pa.Schema | None]]
    meta: Callable[[Any, Any], dict[str, Any]]
    rows: Callable[[Any, list[Item], Any], Tables]
    check: Callable[[Any, Any], None]  # fails before any work (an unknown class in a threshold, say)
    load: Callable[..., Any]  # (ref, opts, backend=, device=, threads=, batch_size=, **kw) → the model


def _score_schemas(predictor: Any, opts: Any) -> tuple[pa.Schema, pa.Schema | None, pa.Schema | None]:
    files = file_schema(predictor.classes if opts.wide else None)
    if not opts.window:
        return files, None, None
    if getattr(opts, "times", None) is None:
        return files, WINDOW_SCHEMA, EVENT_SCHEMA
    from learner.score.field_outputs import start_utc_field

    return files, WINDOW_SCHEMA.append(start_utc_field()), EVENT_SCHEMA.append(start_utc_field())


def _score_rows(predictor: Any, batch: list[Item], opts: Any) -> Tables:
    files, wins, events = score_items(
        predictor,
        batch,
        window=opts.window,
        top_k=opts.top_k,
        threshold=opts.threshold,
        events=opts.event_rule(),
        chunk=opts.stream.chunk,
        wide=opts.wide,
    )
    if not opts.window:
        return files, None, None
    if getattr(opts, "times", None) is not None:
        from learner.score.field_outputs import with_start_utc

        wins, events = with_start_utc(wins, opts.times), with_start_utc(events, opts.times)
    return files, wins, events


def _score_check(predictor: Any, opts: Any) -> None:
    from learner.serve.events import class_thresholds

    class_thresholds(predictor.classes, predictor.config, opts.threshold)
    if opts.window:
        if opts.window[0] is None:  # `--windows clip,HOP`: the model's own clip length
            opts.window = (predictor.cfg.duration, opts.window[1])
        predictor.pipeline.window_plan(*opts.window)  # windows shorter than the clip: refused here, once


# the file each backend computes with: its sha256 tells whether --resume would mix two models
BACKEND_FILES = {
    "torch": "model.safetensors",
    "pickle": "model.pkl",
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
}


def weights_sha256(predictor: Any) -> str | None:
    """sha256 of the weights file the predictor's backend runs (None when it has no folder or file)."""
    name = BACKEND_FILES.get(backend_name(predictor) or "")
    path = predictor.folder / name if predictor.folder is not None and name else None
    if path is None or not path.is_file():
        return None
    from learner.serve.onnx_backend import sha256_file

    return sha256_file(path)


def run_meta(predictor: Any, opts: Any) -> dict[str, Any]:
    """What made the rows; `--resume` refuses to add rows made differently (`PartStore._recover`)."""
    return {
        "format": opts.fmt,
        "model_id": predictor.model_id,
        "model_revision": predictor.revision or None,
        "windows": list(opts.window) if opts.window else None,
        "threshold": opts.threshold if opts.window else None,
        "events": {"gap_s": opts.event_gap_s, "min_length_s": opts.event_min_s} if opts.window else None,
        "top_k": opts.top_k,
        "wide": opts.wide,
        "start_times": opts.times.description if getattr(opts, "times", None) else None,
        "classes": predictor.classes,
        "backend": backend_name(predictor),
        "weights_sha256": weights_sha256(predictor),
        "earshot_version": __version__,
    }


def _load_predictor(ref: str, opts: Any, **kw: Any) -> Any:
    from learner.serve.predictor import Predictor

    if "model_id" in kw:
        return Predictor.from_dir(ref, **kw)
    return Predictor.from_pretrained(ref, **kw)


def _embed_schemas(embedder: Any, opts: Any) -> tuple[pa.Schema, None, None]:
    from learner.score.embedded import embed_schema

    return embed_schema(embedder.dim), None, None


def _embed_rows(embedder: Any, batch: list[Item], opts: Any) -> Tables:
    from learner.score.embedded import embed_items

    return embed_items(embedder, batch, window=opts.window, chunk=opts.stream.chunk), None, None


def _embed_meta(embedder: Any, opts: Any) -> dict[str, Any]:
    return {
        "kind": "embeddings",
        "format": opts.fmt,
        "model_id": embedder.name,
        "model_revision": None,
        "windows": list(opts.window) if opts.window else None,
        "threshold": None,
        "top_k": None,
        **embedder.meta(),
        "earshot_version": __version__,
    }


def _load_embedder(ref: str, opts: Any, *, backend: str = "torch", **kw: Any) -> Any:
    from learner.embed.load import load_embedder

    name = kw.pop("model_id", None)  # a Ray actor loads from the resolved folder: keep the driver's name
    kw.pop("revision", None)
    embedder = load_embedder(ref, clip_s=opts.window[0] if opts.window else None, **kw)
    if name:
        embedder.name = name
    return embedder


KINDS: dict[str, OutputKind] = {
    "scores": OutputKind("scores", _score_schemas, run_meta, _score_rows, _score_check, _load_predictor),
    "embeddings": OutputKind(
        "embeddings", _embed_schemas, _embed_meta, _embed_rows, lambda _m, _o: None, _load_embedder
    ),
}


def kind_of(name: str) -> OutputKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown output kind {name!r}; choose one of {', '.join(KINDS)}") from None
