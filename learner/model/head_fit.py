"""Linear heads on frozen backbone embeddings, fitted without fastai: logistic regression on standardised
embeddings (C chosen by inner cross-validation over groups), and its tensors for `EmbeddingHead`
(`learner.model.backbone_arch`). Training (`learner.train.heads`, `learner.train.frozen`) and the demo's
Teach tab (`learner.demo.teach`, which never imports training) fit heads through this one module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
L2_GRID = (False, True)  # L2-normalised embeddings or not: also chosen by inner CV


@dataclass
class HeadFit:
    """A fitted linear head in the frame of the raw embeddings (standardisation kept apart)."""

    weight: np.ndarray  # (n_classes, dim)
    bias: np.ndarray  # (n_classes,)
    mean: np.ndarray
    scale: np.ndarray
    C: float
    l2: bool
    inner_accuracy: float | None = None
    scores: dict[str, float] = field(default_factory=dict)


def backbone_embedder(backbone: torch.nn.Module, batch: int = 8) -> Callable[[np.ndarray], np.ndarray]:
    """(k, samples) clips → (k, dim) embeddings, in eval mode, `batch` clips at a time."""
    backbone.eval()

    def embed(clips: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(clips), batch):
                out.append(backbone(torch.from_numpy(np.ascontiguousarray(clips[i : i + batch]))).numpy())
        return np.concatenate(out)

    return embed


def _prepare(x: np.ndarray, l2: bool) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12) if l2 else x


def fit_linear(x: np.ndarray, y: np.ndarray, C: float, l2: bool = False, seed: int = 0) -> HeadFit:
    """Logistic regression on standardised (optionally L2-normalised) embeddings (n, dim)."""
    from sklearn.linear_model import LogisticRegression

    z = _prepare(x, l2)
    mean, scale = z.mean(axis=0), z.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=3000, random_state=seed)
    clf.fit((z - mean) / scale, y)
    w, b = clf.coef_, clf.intercept_
    if w.shape[0] == 1:  # two classes: sklearn's one row is class 1 against class 0
        w, b = np.concatenate([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
    return HeadFit(w.astype(np.float32), b.astype(np.float32), mean, scale, C, l2)


def predict_logits(fit: HeadFit, x: np.ndarray) -> np.ndarray:
    return ((_prepare(x, fit.l2) - fit.mean) / fit.scale) @ fit.weight.T + fit.bias


def _folds(y: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    k = int(min(5, np.bincount(y).min(), len(set(groups))))
    if k < 2:
        return []
    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


def inner_cv_accuracy(
    views: np.ndarray, y: np.ndarray, groups: np.ndarray, C: float, l2: bool = False, seed: int = 0
) -> float | None:
    """Accuracy of the head over group folds of the training split: fitted on every view of the other
    folds, judged on the inference view (view 0) of the held-out one. None when a class has one clip."""
    folds = _folds(y, groups, seed)
    if not folds:
        return None
    hits = 0
    for tr, te in folds:
        v = views.shape[1]
        fit = fit_linear(views[tr].reshape(len(tr) * v, -1), np.repeat(y[tr], v), C, l2, seed)
        hits += int((predict_logits(fit, views[te, 0]).argmax(1) == y[te]).sum())
    return hits / len(y)


def one_blas_thread(fn: Callable) -> Callable:
    """Run `fn` with one BLAS/OpenMP thread: hundreds of small regressions spend their time in thread
    hand-offs otherwise (10 classes × 10 clips: 51 s of CPU with torch's threads spinning beside
    OpenBLAS's, 1.3 s with one)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return fn(*args, **kwargs)

    return run


@one_blas_thread
def choose_head(
    views: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: bool | None = None, seed: int = 0
) -> HeadFit:
    """C (and L2 normalisation, unless given) by inner cross-validation on the training split, two
    shuffles of the folds averaged (ties → stronger regularisation, no L2), then fitted on every clip."""
    grid = [(n, C) for n in ((l2,) if l2 is not None else L2_GRID) for C in C_GRID]
    scores: dict[tuple[bool, float], float | None] = {}
    for n, C in grid:
        runs = [inner_cv_accuracy(views, y, groups, C, n, seed + r) for r in range(2)]
        scores[(n, C)] = None if None in runs else float(np.mean(runs))
    if any(s is None for s in scores.values()):
        best = (bool(l2), 0.1)
    else:
        best = max(grid, key=lambda k: (round(scores[k], 6), -k[1], not k[0]))
    v = views.shape[1]
    fit = fit_linear(views.reshape(len(y) * v, -1), np.repeat(y, v), best[1], best[0], seed)
    fit.inner_accuracy = scores[best]
    fit.scores = {f"l2={n} C={C}": s for (n, C), s in scores.items() if s is not None}
    return fit


def head_state_dict(fit: HeadFit, prefix: str = "head.") -> dict[str, torch.Tensor]:
    """The fitted head as `EmbeddingHead` tensors (no hidden layer)."""
    return {
        f"{prefix}mean": torch.from_numpy(fit.mean.astype(np.float32)),
        f"{prefix}scale": torch.from_numpy(fit.scale.astype(np.float32)),
        f"{prefix}fc.weight": torch.from_numpy(fit.weight),
        f"{prefix}fc.bias": torch.from_numpy(fit.bias),
    }


def backbone_record(name: str, use: str, **extra) -> dict:
    """What config.json (and so the model card) says about the backbone: name, licence, citation, weights."""
    from learner.model.backbones import get_backbone

    spec = get_backbone(name)
    w = spec.weights
    return {
        "name": name,
        "use": use,
        "licence": spec.licence,
        "citation": spec.citation,
        "weights": {"file": w.file, "sha256": w.sha256, "md5": w.md5, "package": w.package, "url": w.url},
        **extra,
    }
