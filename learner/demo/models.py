"""Which model the demo serves: `--model` / `$EARSHOT_MODEL`, else the model shipped with the app, else a
fallback the caller hands in (a library user may pass `learner.train.fallback.ensure_default_model`). The
demo serves models; it never trains one (app.py passes no fallback)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learner.serve.predictor import Predictor

MODEL_ENV = "EARSHOT_MODEL"
Log = Callable[[str], Any]
# a job or app.py shows these lines; a library user's logging decides
_info = logging.getLogger(__name__).info


class DemoModelError(RuntimeError):
    """No model to serve; the message says what to do."""


@dataclass
class ServedModel:
    """The Predictor the demo serves and the local folder it came from (metrics.json and plots live there)."""

    predictor: Predictor
    folder: Path


def load_model(
    ref: str | None = None,
    *,
    backend: str = "auto",
    log: Log = _info,
    shipped: Path | None = None,
    fallback: Callable[..., Path] | None = None,
) -> ServedModel:
    """`ref` (a model directory or Hub id `USER/NAME[@rev]`), else `$EARSHOT_MODEL`, else the default model.

    A configured model that cannot be loaded is an error (never silently replaced by the default).
    `backend` goes to the Predictor ("auto" takes model.onnx when present; saliency needs "torch").
    """
    from learner.hub import resolve

    ref = ref or os.environ.get(MODEL_ENV) or None
    if ref:
        log(f"loading {ref}")
        folder = resolve(ref)
        # no server paths
        model_id = Path(folder).name if Path(ref).expanduser().exists() else ref.split("@")[0]
    elif shipped is not None and (shipped / "config.json").is_file():
        folder, model_id = shipped, f"{shipped.name} (shipped with earshot)"
    elif fallback is not None:
        what = f"the shipped default model ({shipped.name}) is missing" if shipped else "no model is shipped"
        log(f"earshot: {what}; building the fallback")
        folder = fallback(log=log)
        model_id = f"{Path(folder).name} (built locally)"
    else:
        raise DemoModelError(
            f"no model to serve: set model= (a model folder or Hub id) or {MODEL_ENV}, or build the "
            "shipped one (scripts/build_demo_model.py) or the offline fallback "
            "(learner.train.fallback.ensure_default_model)"
        )
    return ServedModel(
        Predictor.from_pretrained(str(folder), model_id=model_id, backend=backend), Path(folder)
    )
