"""What a training run says while it runs, as notes (`logging`, shown by the jobs, hidden by --quiet)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("learner.train.fit")


def epoch_line(learn: Any, values: list) -> None:
    """One epoch as a note (`epoch 1, train_loss 0.6931, valid_loss 0.6812, accuracy 0.5500, time 00:03`)
    in place of fastai's raw Python list when there is no progress bar."""
    names = list(learn.recorder.metric_names)
    if len(names) != len(values):
        names = [f"value {i}" for i in range(len(values))]
    shown = [f"{n} {v:.4f}" if isinstance(v, float) else f"{n} {v}" for n, v in zip(names, values)]
    log.info("%s", ", ".join(shown))


def warn_not_evaluated(metrics: dict[str, Any], classes: list[str]) -> None:
    """Say loudly when validation held no clip of some classes: the figures leave them out."""
    missing = metrics.get("not_evaluated") or []
    if missing:
        log.warning(
            "no validation clips for %d of %d classes (%s): the figures leave them out; give them more "
            "groups or files, or a split column",
            len(missing),
            len(classes),
            ", ".join(missing),
        )
