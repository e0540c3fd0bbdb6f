"""Evaluate a saved model on labelled data through the Predictor (the same path the demo and scorer use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from learner.data.manifest import add_groups, load_manifest, split_indices
from learner.modeldir import write_json
from learner.report.metrics import classification_report
from learner.serve.predictor import Predictor


def select_rows(df, subset: str, train_cfg: dict[str, Any]):
    """`all` rows, or the `valid`/`test` rows of the split the model was trained with."""
    if subset == "all":
        return df
    if subset == "test":
        if "split" not in df or not (df["split"] == "test").any():
            raise ValueError("subset=test needs a split column with test rows")
        return df[df["split"] == "test"]
    if subset == "valid":
        df = add_groups(df, train_cfg.get("group_col"), train_cfg.get("group_regex"))
        _, valid = split_indices(df, valid_pct=train_cfg.get("valid_pct", 0.2), seed=train_cfg.get("seed", 42),
                                 valid_fold=train_cfg.get("valid_fold"))
        return df.iloc[valid]
    raise ValueError(f"unknown subset {subset!r}; use all, valid or test")


def evaluate(model: str | Path, data: str | Path, *, subset: str = "all", out: str | Path | None = None,
             predictor: Predictor | None = None, progress: bool = True) -> dict[str, Any]:
    """Metrics (and plots when `out` is given) for `model` on `data`. Unreadable files are listed, not scored."""
    from tqdm.auto import tqdm

    p = predictor or Predictor.from_pretrained(str(model))
    df = select_rows(load_manifest(data), subset, p.config.get("train", {}))
    unknown = sorted(set(df["label"]) - set(p.classes))
    if unknown:
        raise ValueError(f"{data}: labels the model does not know: {', '.join(unknown)} (model classes: {', '.join(p.classes)})")
    paths, labels = list(df["path"]), list(df["label"])
    probs, targets, failures = [], [], {}
    bar = tqdm(total=len(paths), desc="evaluating", unit="file", disable=not progress)
    for i in range(0, len(paths), p.batch_size):
        for path, label, res in zip(paths[i : i + p.batch_size], labels[i : i + p.batch_size],
                                    p.predict_many(paths[i : i + p.batch_size]), strict=True):
            if isinstance(res, Exception):
                failures[path] = res.reason
            else:
                probs.append(res.probs)
                targets.append(p.classes.index(label))
        bar.update(min(p.batch_size, len(paths) - i))
    bar.close()
    metrics = classification_report(np.stack(probs), np.asarray(targets), p.classes)
    metrics.update(split=subset, data=str(data), model=str(model), excluded_files=failures)
    if out:
        from learner.report.plots import plot_confusion

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", metrics)
        plot_confusion(metrics["confusion"], p.classes, out / "confusion_matrix.png",
                       title=f"{subset} · accuracy {metrics['accuracy']:.3f}")
    return metrics
