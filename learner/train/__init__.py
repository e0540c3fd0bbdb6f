"""Training: the only package that imports fastai (typed tensors and transforms, the AudioBlock, the fit),
plus what runs training many times (cross-validation, comparing archs) and evaluation of a saved model.

The names below load on first use, so `learner.train.threads` can set the CPU threads before torch loads."""

from typing import Any

__all__ = ["TrainArgs", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from learner.train import fit

        return getattr(fit, name)
    raise AttributeError(f"module 'learner.train' has no attribute {name!r}")
