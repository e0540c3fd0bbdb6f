"""Heads on frozen backbone embeddings: embed each training clip once, fit a linear head in seconds, and
decide on the training data alone whether the backbone helps at all.

The head is logistic regression on standardised embeddings (C chosen by inner cross-validation on the
training split, groups kept together), written into the model as `EmbeddingHead` (statistics as buffers,
the weights as `head.fc`), so the folder is backbone + head and serves like any other model. The choice
between a frozen head and training from scratch compares, by the same inner cross-validation, the
backbone's embeddings against plain log-mel statistics: features that separate the training sounds no
better than a spectrum's summary are not worth a frozen head (speech and frog calls: issue 22).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from learner.config import AudioConfig
from learner.model.head_fit import (  # noqa: F401  (the fitting lives below training; these names stay here)
    C_GRID,
    L2_GRID,
    HeadFit,
    backbone_embedder,
    backbone_record,
    choose_head,
    fit_linear,
    head_state_dict,
    inner_cv_accuracy,
    one_blas_thread,
    predict_logits,
)

log = logging.getLogger(__name__)

MARGIN = 0.10  # frozen head only when its inner-CV accuracy beats the log-mel reference by this much


def logmel_summary(signals: Mapping[str, np.ndarray], paths: list[str], cfg: AudioConfig) -> np.ndarray:
    """Plain features to compare against: per-band mean, std and max of earshot's default log-mel (64
    bands, 22.05 kHz-style settings at the clip's rate), over the centre-cropped clip."""
    from learner.audio import crop_pad
    from learner.model.frontend import LogMel

    ref = AudioConfig(sample_rate=cfg.sample_rate, duration=cfg.duration, n_fft=1024, hop_length=512)
    mel = LogMel(ref)
    out = []
    with torch.inference_mode():
        for p in paths:
            x = torch.from_numpy(crop_pad(signals[p], cfg.n_samples, pad=cfg.pad_mode))[None]
            m = mel(x)[0]  # (n_mels, frames), dB
            m = m - m.max()
            out.append(torch.cat([m.mean(1), m.std(1), m.amax(1)]).numpy())
    return np.stack(out)


def decide_start(emb_accuracy: float | None, reference_accuracy: float | None, margin: float = MARGIN) -> str:
    """ "frozen" when the backbone's embeddings beat plain log-mel statistics by `margin` in inner CV on
    the training split, else "scratch" (train a network on this data; the backbone's features do not
    separate these sounds). Too few clips to judge → "frozen" (nothing else learns from one clip a class)."""
    if emb_accuracy is None or reference_accuracy is None:
        return "frozen"
    return "frozen" if emb_accuracy >= reference_accuracy + margin else "scratch"


def embedding_cache_dir(args_cache: str | None, backbone: str) -> Path:
    from learner.model.backbone_weights import cache_root

    return (Path(args_cache) if args_cache else cache_root()) / "embeddings" / backbone


def embed_split(
    backbone, args, cfg: AudioConfig, used, signals: Mapping, n_views: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train views (n, v, dim), valid inference views (n, dim)), from the embedding cache."""
    from learner.data.embeddings import cached_embeddings

    tag = f"{backbone.name}-{(backbone.spec.weights.sha256 or backbone.spec.weights.md5 or '')[:8]}"
    cache = embedding_cache_dir(args.cache_dir, backbone.name)
    embed = backbone_embedder(backbone)
    paths_tr = list(used.loc[~used["is_valid"], "path"])
    paths_va = list(used.loc[used["is_valid"], "path"])
    kw = {"cache_dir": cache, "progress": args.progress}
    e_tr = cached_embeddings(paths_tr, signals, cfg, embed, tag, n_views, **kw)
    e_va = cached_embeddings(paths_va, signals, cfg, embed, tag, 1, **kw)[:, 0]
    return e_tr, e_va
