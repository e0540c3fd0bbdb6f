"""The Model tab: what a visitor should know about the served model, from its folder (config.json,
metrics.json, the confusion matrix), with no server paths shown."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learner.folder import METRICS, ModelDirError, read_json, read_regular
from learner.serve.predictor import Predictor


def _metrics(folder: Path) -> dict[str, Any]:
    try:
        return read_json(folder / METRICS)
    except ModelDirError:
        return {}  # a broken metrics.json hides the metrics, not the model


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
    from learner.folder import strip_local_paths
    from learner.report.metrics import summary_line

    folder = Path(folder) if folder is not None else None
    cfg = strip_local_paths(predictor.config)  # a public page shows no server paths
    metrics = _metrics(folder) if folder else {}
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
    if line := open_set_line(predictor, metrics.get("open_set")):
        parts.append(line)
    audio = "#### AudioConfig\n\n" + _table(cfg.get("audio", {}))
    training = "#### Training arguments\n\n" + _table(cfg.get("train", {})) if cfg.get("train") else ""
    if cfg.get("versions"):
        training += "\n\n#### Versions\n\n" + _table(cfg["versions"], ("library", "version"))
    png = read_regular(folder / "confusion_matrix.png") if folder else None
    return ModelInfo("\n\n".join(parts), audio, training, png)


def open_set_line(predictor: Predictor, figures: dict[str, Any] | None) -> str:
    """What the model answers when it hears none of its words (learner.serve.reject), and how often it is
    right to (metrics.json's "open_set", measured with its thresholds on the held-out speakers)."""
    rule = predictor.rejection
    if not rule.classes and not predictor.config.get("thresholds"):
        return ""
    answers = dict.fromkeys([*rule.classes, rule.answer])  # each answer once, in order
    said = " or ".join(f"**{rule.text(a)}**" for a in answers)
    when = f"when `{'`, `'.join(rule.classes)}` is on top or " if rule.classes else ""
    text = f"**None of its words:** it answers {said} {when}when its top word is below its threshold."
    if figures:
        f = figures
        text += (
            f" On the held-out speakers: **{f['words_right']:.1%}** of {f['n_words']} words right "
            f"({f['words_rejected']:.1%} rejected), **{f['unknown_rejected']:.1%}** of {f['n_unknown']} "
            f"other words and **{f['silence_rejected']:.1%}** of {f['n_silence']} background-noise clips "
            "rejected."
        )
    return text


def confusion_html(png: bytes) -> str:
    """The confusion matrix inline (a data: URL): no file route, no server path in the page's config."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="Confusion matrix (validation)" '
        'style="max-width: 100%; height: auto;">'
    )
