"""Training: the only package that imports fastai (typed tensors and transforms, the AudioBlock, the fit),
plus what runs training many times (cross-validation, comparing archs) and evaluation of a saved model."""

from learner.train.fit import TrainArgs, TrainResult, train

__all__ = ["TrainArgs", "TrainResult", "train"]
