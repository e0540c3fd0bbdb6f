"""Evaluate a saved model on labelled data through the Predictor (the same path the demo and scorer use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from learner.data.labels import label_sets, multi_hot
from learner.data.manifest import add_groups, files_digest, load_manifest, split_indices
from learner.folder import write_json
from learner.report.metrics import classification_report
from learner.report.multilabel import multilabel_report
from learner.serve.predictor import Predictor

SUBSETS = ("auto", "all", "valid", "test")


def _split(df, train_cfg: dict[str, Any]):
    df = add_groups(df, train_cfg.get("group_col"), train_cfg.get("group_regex"))
    train, valid = split_indices(
        df,
        valid_pct=train_cfg.get("valid_pct", 0.2),
        seed=train_cfg.get("seed", 42),
        valid_fold=train_cfg.get("valid_fold"),
    )
    return df, train, valid


def is_training_data(df, config: dict[str, Any]) -> bool | None:
    """True when `df` holds exactly the files the model trained on (config.json's "split" record, checked by
    redoing the model's split), False when not, None when the model does not record them (older models)."""
    record = config.get("split") or {}
    if not record.get("train_files_sha256"):
        return None
    try:
        _, train, _ = _split(df, config.get("train", {}))
    except ValueError:  # this data cannot even be split the same way: not the training data
        return False
    return files_digest(df.iloc[train]) == record["train_files_sha256"]


def select_rows(df, subset: str, train_cfg: dict[str, Any], config: dict[str, Any] | None = None):
    """`all` rows, or the `valid`/`test` rows of the split the model was trained with. `auto`: the held-out
    (valid) rows when `df` is the model's training data (see `is_training_data`), else all rows."""
    if subset == "auto":
        subset = "valid" if is_training_data(df, config or {"train": train_cfg}) else "all"
    if subset == "all":
        return df
    if subset == "test":
        if "split" not in df or not (df["split"] == "test").any():
            raise ValueError("subset=test needs a split column with test rows")
        return df[df["split"] == "test"]
    if subset == "valid":
        df, _, valid = _split(df, train_cfg)
        return df.iloc[valid]
    raise ValueError(f"unknown subset {subset!r}; use one of {', '.join(SUBSETS)}")


def _known_label_sets(df, p: Predictor, data: str | Path) -> list[list[str]]:
    """Each row's labels, refused up front when the model does not know one (it could never be right)."""
    sets = label_sets(df) if p.task == "multi" else [[lab] for lab in df["label"]]
    unknown = sorted({lab for s in sets for lab in s} - set(p.classes))
    if unknown:
        raise ValueError(
            f"{data}: labels the model does not know: {', '.join(unknown)} (model classes: "
            f"{', '.join(p.classes)})"
        )
    return sets


def _score(
    p: Predictor, paths: list[str], labels: list[list[str]], progress: bool
) -> tuple[list[np.ndarray], list[Any], dict[str, str]]:
    """(probabilities, targets) of the files that decode, batch by batch; the others land in `failures`
    with their reason, so nothing is silently skipped."""
    from tqdm.auto import tqdm

    multi = p.task == "multi"
    probs, targets, failures = [], [], {}
    bar = tqdm(total=len(paths), desc="evaluating", unit="file", disable=not progress)
    for i in range(0, len(paths), p.batch_size):
        for path, label, res in zip(
            paths[i : i + p.batch_size],
            labels[i : i + p.batch_size],
            p.predict_many(paths[i : i + p.batch_size]),
            strict=True,
        ):
            if isinstance(res, Exception):
                failures[path] = res.reason
            else:
                probs.append(res.probs)
                targets.append(multi_hot([label], p.classes)[0] if multi else p.classes.index(label[0]))
        bar.update(min(p.batch_size, len(paths) - i))
    bar.close()
    return probs, targets, failures


def _thresholds(p: Predictor) -> dict[str, float]:
    """Class → the model's decision threshold, the form the multi-label report and pictures take."""
    return dict(zip(p.classes, p.thresholds.tolist(), strict=True))


def _write_outputs(
    out: str | Path, metrics: dict[str, Any], p: Predictor, probs: list, targets: list, chosen: str
) -> None:
    """metrics.json, and the pictures: a confusion matrix, or the multi-label curves and tables."""
    from learner.report.plots import plot_confusion

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    if p.task == "multi":
        from learner.report.validation import write_multilabel_outputs

        write_multilabel_outputs(out, metrics, np.stack(probs), np.stack(targets), p.classes, _thresholds(p))
        return
    plot_confusion(
        metrics["confusion"],
        p.classes,
        out / "confusion_matrix.png",
        title=f"{chosen} · accuracy {metrics['accuracy']:.3f}",
    )


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    subset: str = "auto",
    out: str | Path | None = None,
    predictor: Predictor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics (and plots when `out` is given) for `model` on `data`. Unreadable files are listed, not scored.

    `subset="auto"` never scores a model on the clips it trained on without saying so: on the training data
    it takes the held-out rows; `metrics["training_data"]` says whether `data` was recognised as such
    (None: the model does not record its training files)."""
    p = predictor or Predictor.from_pretrained(str(model))
    full = load_manifest(data)
    seen = is_training_data(full, p.config)
    chosen = ("valid" if seen else "all") if subset == "auto" else subset
    df = select_rows(full, chosen, p.config.get("train", {}))
    sets = _known_label_sets(df, p, data)
    probs, targets, failures = _score(p, list(df["path"]), sets, progress)
    if p.task == "multi":
        metrics = multilabel_report(np.stack(probs), np.stack(targets), p.classes, _thresholds(p))
    else:
        metrics = classification_report(np.stack(probs), np.asarray(targets), p.classes)
    metrics.update(
        split=chosen,
        data=str(data),
        model=str(model),
        excluded_files=failures,
        training_data=seen,
        n_rows_in_data=len(full),
    )
    if out:
        _write_outputs(out, metrics, p, probs, targets, chosen)
    return metrics
