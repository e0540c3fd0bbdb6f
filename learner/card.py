"""The model card (README.md in a model folder and on the Hub): Hub metadata the Hub indexes, then the
card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from learner.folder import check_model_dir, read_json, strip_local_paths

CARD_MARK = "<!-- earshot model card: written by learner/hub.py, refreshed on every push -->"


def is_earshot_card(text: str) -> bool:
    """A README.md earshot wrote (refreshed on push), not one the user wrote (pushed as it is)."""
    return CARD_MARK in text or "An earshot audio classifier (`" in text


# metrics.json key → (model-index metric type, display name, card `metrics:` id)
_CARD_METRICS = [
    ("accuracy", "accuracy", "Accuracy", "accuracy"),
    ("top3_accuracy", "top_3_accuracy", "Top-3 accuracy", None),
    ("map3", "map_at_3", "MAP@3", None),
    ("macro_precision", "precision", "Macro precision", "precision"),
    ("macro_recall", "recall", "Macro recall", "recall"),
    ("macro_f1", "f1", "Macro F1", "f1"),
    ("macro_map", "mean_average_precision", "Macro mAP", None),  # multi-label models
    ("macro_auroc", "roc_auc", "Macro AUROC", None),
    ("micro_f1", "f1", "Micro F1", None),
]


def write_model_card(model_dir: str | Path, *, repo_id: str | None = None, overwrite: bool = False) -> Path:
    """Write README.md (Hub metadata + human card) from config.json and metrics.json; keep an existing one."""
    path = Path(model_dir).expanduser()
    readme = path / "README.md"
    if readme.exists() and not overwrite:
        return readme
    readme.write_text(model_card(path, repo_id=repo_id), encoding="utf-8")
    return readme


def model_card(model_dir: str | Path, *, repo_id: str | None = None) -> str:
    """The card text: YAML front matter the Hub indexes (library, task, tags, model-index), then the card."""
    path = check_model_dir(model_dir, required=("config.json",))
    cfg, metrics = read_json(path / "config.json"), read_json(path / "metrics.json")
    return (
        f"---\n{_card_metadata(path, cfg, metrics, repo_id)}---\n\n{_card_body(path, cfg, metrics, repo_id)}"
    )


def _dataset_name(cfg: dict[str, Any]) -> str | None:
    data = cfg.get("train", {}).get("data")
    return cfg.get("dataset") or (Path(str(data)).name if data else None)


def _card_metadata(path: Path, cfg: dict[str, Any], metrics: dict[str, Any], repo_id: str | None) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    arch, dataset = cfg.get("arch", "unknown"), _dataset_name(cfg)
    present = [m for m in _CARD_METRICS if isinstance(metrics.get(m[0]), (int, float))]
    split = cfg.get("train", {}).get("split")
    results = [
        EvalResult(
            task_type="audio-classification",
            task_name="Audio classification",
            dataset_type=dataset or "custom",
            dataset_name=dataset or "custom audio dataset",
            dataset_split=str(split) if split else None,
            metric_type=mtype,
            metric_name=name,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, mtype, name, _ in present
    ]
    data = ModelCardData(
        library_name="fastai",
        pipeline_tag="audio-classification",
        tags=["earshot", "audio", "audio-classification", "fastai", arch],
        datasets=[cfg["dataset"]] if cfg.get("dataset") else None,
        metrics=[m[3] for m in present if m[3]] or None,
        model_name=(repo_id or path.name).split("/")[-1] if results else None,
        eval_results=results or None,
    )
    return data.to_yaml() + "\n"


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    text = value if isinstance(value, str) else f"`{json.dumps(value)}`"
    return text.replace("|", "\\|")


def _thresholds_section(cfg: dict[str, Any], classes: list[str]) -> list[str]:
    """The per-class decision thresholds config.json records (none for models trained before them)."""
    thresholds = cfg.get("thresholds") or {}
    if not thresholds:
        return []
    what = (
        "a class is present when its score reaches its threshold"
        if cfg.get("task") == "multi"
        else 'below its class\'s threshold the top prediction means "none of the known classes"'
    )
    rule = cfg.get("thresholds_rule", "calibrated on the validation split")
    rows = [(f"`{c}`", f"{thresholds[c]:.3f}") for c in classes if c in thresholds]
    return ["## Thresholds", "", f"Chosen by {rule}; {what}.", "", _table(rows, ("Class", "Threshold")), ""]


def _card_body(path: Path, cfg: dict[str, Any], metrics: dict[str, Any], repo_id: str | None) -> str:
    name, ref = (repo_id or path.name).split("/")[-1], repo_id or "USER/NAME"
    classes, audio = list(cfg.get("classes", [])), cfg.get("audio", {})
    multi = cfg.get("task") == "multi"
    out = _intro(name, cfg, classes, multi)
    out += _evaluation(metrics, multi)
    out += _thresholds_section(cfg, classes)
    out += _images(path)
    out += _usage(path, ref, audio)
    out += _backbone_section(cfg.get("backbone"))
    out += _training(cfg)
    out += _limitations(cfg, classes, multi)
    return "\n".join(out)


def _backbone_section(backbone: dict[str, Any] | None) -> list[str]:
    """Attribution the backbone's licence asks for: whose weights, under which licence, what to cite."""
    if not backbone:
        return []
    weights = backbone.get("weights") or {}
    where = weights.get("package") or weights.get("url") or ""
    return [
        "## Pretrained backbone",
        "",
        f"Built on `{backbone.get('name')}` ({backbone.get('use', 'fine-tuned')}), weights from {where}"
        + (f" (sha256 `{weights['sha256']}`)" if weights.get("sha256") else "")
        + ".",
        "",
        f"- Licence: {backbone.get('licence', 'see the backbone')}",
        f"- Please cite: {backbone.get('citation', '')}",
        "",
    ]


def _intro(name: str, cfg: dict[str, Any], classes: list[str], multi: bool) -> list[str]:
    """Title, what the model labels and how it was made, and its classes."""
    arch, audio, dataset = cfg.get("arch", "unknown"), cfg.get("audio", {}), _dataset_name(cfg)
    sr, dur = audio.get("sample_rate", "?"), audio.get("duration", "?")
    start = str(strip_local_paths(cfg["pretrained"])) if cfg.get("pretrained") else None
    how = (
        "trained with fastai"
        if start is None
        else "trained from scratch with fastai"
        if start.startswith("none")
        else f"fine-tuned with fastai from {start}"
    )
    backbone = cfg.get("backbone") or {}
    if backbone.get("use") == "frozen":
        how = f"a linear head on the frozen pretrained `{backbone.get('name')}` audio backbone"
    labels = (
        f"with any of {len(classes)} classes (multi-label)" if multi else f"as one of {len(classes)} classes"
    )
    return [
        f"# {name}",
        "",
        CARD_MARK,
        "",
        f"An earshot audio classifier (`{arch}`, {how}) that labels "
        f"{dur}-second clips (resampled to {sr} Hz, mono) "
        + labels
        + (f", trained on `{dataset}`." if dataset else "."),
        "",
        "## Classes",
        "",
        ", ".join(f"`{c}`" for c in classes) or "(none listed in config.json)",
        "",
    ]


def _evaluation(metrics: dict[str, Any], multi: bool) -> list[str]:
    """The held-out figures of metrics.json, and a per-class table folded away."""
    if not metrics:
        return []
    n = metrics.get("n_samples")
    figures = [
        (label, f"{metrics[key]:.4f}")
        for key, _, label, _ in _CARD_METRICS
        if isinstance(metrics.get(key), (int, float))
    ]
    out = [
        "## Evaluation",
        "",
        f"On the held-out split{f' ({n} clips)' if n else ''}:",
        "",
        _table(figures, ("Metric", "Value")),
        "",
    ]
    per_class = metrics.get("per_class") or []
    if not per_class:
        return out
    cols = (
        ("support", "ap", "auroc", "threshold", "precision", "recall", "f1")
        if multi
        else ("support", "top1", "precision", "recall", "f1")
    )
    rows = [
        (r.get("label"), *(r.get(c, "") if not isinstance(r.get(c), float) else f"{r[c]:.3f}" for c in cols))
        for r in per_class
    ]
    return out + [
        "<details><summary>Per class</summary>",
        "",
        _table(rows, ("Class", *cols)),
        "",
        "</details>",
        "",
    ]


def _images(path: Path) -> list[str]:
    out = []
    for image, title in (
        ("confusion_matrix.png", "Confusion matrix"),
        ("pr_curves.png", "Precision-recall curves"),
        ("curves.png", "Training curves"),
    ):
        if (path / image).is_file():
            out += [f"![{title}]({image})", ""]
    return out


def _usage(path: Path, ref: str, audio: dict[str, Any]) -> list[str]:
    """How to load and run it, and the preprocessing it carries."""
    pickle_note = (
        " `model.pkl` is a fastai export: unpickling runs code, so it is downloaded and loaded only on "
        "explicit request (`allow_pickle=True`)."
        if (path / "model.pkl").is_file()
        else ""
    )
    return [
        "## How to use",
        "",
        "With earshot installed (`pip install -r requirements.txt` in a clone):",
        "",
        "```python",
        "from learner.serve.predictor import Predictor",
        "",
        f'predictor = Predictor.from_pretrained("{ref}")  # downloads once, then uses the local cache',
        "```",
        "",
        "```bash",
        f"python -m jobs.predict clip.wav --model {ref}",
        f"HF_HUB_OFFLINE=1 python -m jobs.predict clip.wav --model {ref}  # from the cache, no network",
        "```",
        "",
        "`model.safetensors` holds the weights and `config.json` the classes and the preprocessing, so the "
        "demo, the scorer and this card rebuild exactly the training pipeline." + pickle_note,
        "",
        "## Preprocessing (AudioConfig)",
        "",
        _table([(f"`{k}`", _fmt(v)) for k, v in audio.items() if k != "extra" or v], ("Field", "Value")),
        "",
    ]


def _training(cfg: dict[str, Any]) -> list[str]:
    """The training arguments (no local paths) and the library versions."""
    out = []
    train = cfg.get("train", {})
    if train:
        rows = [(f"`{k}`", _fmt(strip_local_paths(v))) for k, v in train.items()]
        out += ["## Training", "", _table(rows, ("Argument", "Value")), ""]
    versions = {"earshot": cfg.get("earshot_version"), **cfg.get("versions", {})}
    return out + ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), ""]


def _limitations(cfg: dict[str, Any], classes: list[str], multi: bool) -> list[str]:
    dur, dataset = cfg.get("audio", {}).get("duration", "?"), _dataset_name(cfg)
    use = (
        f"- Meant for tagging short recordings with any of the {len(classes)} classes above (each class "
        "scored on its own, a sigmoid per class), e.g. for sorting or search. A class is reported when its "
        "score reaches its threshold above; sounds outside the list are not modelled."
        if multi
        else f"- Meant for tagging short recordings with one of the {len(classes)} classes above, "
        "e.g. for sorting, search or a demo. Every input gets one of these labels: sounds outside the list "
        "are still forced into one, so threshold the probability or add an `other` class if that matters."
    )
    return [
        "## Intended use and limitations",
        "",
        use,
        f"- Each clip is cut or padded to {dur} s after trimming silence; longer recordings should be scored "
        "in windows. Quality depends on how close the microphone, room and noise are to the training data"
        + (f" (`{dataset}`)" if dataset else "")
        + ".",
        "- The reported numbers come from one held-out split and carry its biases; measure on your own data "
        "before relying on the model. Not for safety-critical or surveillance use.",
        "",
    ]
