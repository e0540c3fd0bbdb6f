"""fastai's own export beside the safetensors weights, for fastai users: written on request, read only
when asked for by name (`allow_pickle`): unpickling runs code from the file."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from learner.folder import PICKLE, ModelDirError


def export_pickle(learn, out: Path) -> None:
    """fastai's export for fastai users; the decoded-signal cache is dropped first (it is data, not model)."""
    from fastai.callback.progress import CSVLogger

    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, CSVLogger)])
    load = learn.dls.train_ds.tfms[0].fs[0] if hasattr(learn.dls.train_ds, "tfms") else None
    if load is not None and hasattr(load, "signals"):
        load.signals = {}
    with tempfile.TemporaryDirectory() as tmp:
        learn.export(Path(tmp) / "model.pkl")
        shutil.move(str(Path(tmp) / "model.pkl"), out / "model.pkl")


def load_pickle(folder: Path) -> Any:
    """The fastai Learner exported beside the weights. Unpickling runs code: only for files you trust."""
    path = Path(folder) / PICKLE
    if not path.is_file():
        raise ModelDirError(f"{folder}: no {PICKLE} (training writes it unless told not to)")
    warnings.warn(
        f"unpickling {path}: this runs code from the file; only load models you trust", stacklevel=2
    )
    from fastai.learner import load_learner

    return load_learner(path, cpu=True)
