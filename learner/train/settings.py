"""Training settings that follow the data (sample rate, hop, batch size and epochs of small sets) and the
front end a transfer keeps: decided before decoding or before the fit, logged, saved in config.json."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from learner.config import AudioConfig

if TYPE_CHECKING:
    from learner.train.args import TrainArgs


def pick_sample_rate(paths: list[str], cap: int = 22050, max_files: int = 200) -> int:
    """The training files' own rate (the most common one among up to `max_files`), never above `cap`.

    Resampling above a recording's rate adds no content, only empty high mel bands and compute; going
    below `cap` for 44.1/48 kHz material keeps what classifiers use and halves the cost.
    """
    from collections import Counter

    from learner.audio import AudioDecodeError, probe

    pick = np.random.default_rng(0).permutation(len(paths))[:max_files]
    rates: Counter[int] = Counter()
    for i in pick:
        try:
            rates[probe(paths[i]).sample_rate] += 1
        except (AudioDecodeError, OSError):
            continue  # reported by name when the signals are decoded
    return min(cap, rates.most_common(1)[0][0]) if rates else cap


def pick_duration(lengths_s: list[float], quantile: float = 0.9, lo: float = 0.5, hi: float = 10.0) -> float:
    """A clip length that holds most trimmed training sounds whole: the 90th percentile, rounded up to
    0.5 s, within [0.5, 10] s. Short words then are not repeated five times; 5 s clips stay 5 s."""
    q = float(np.quantile(np.asarray(lengths_s), quantile)) if lengths_s else hi
    return float(min(hi, max(lo, np.ceil(q * 2) / 2)))


def pick_hop(cfg: AudioConfig, frames: int = 100, min_hop_s: float = 0.010, max_hop: int = 512) -> int:
    """A hop that gives a clip about `frames` spectrogram frames: 10 ms for a 1 s word (101 frames)
    instead of 63 or 44, while 5 s clips keep the cheaper `max_hop`."""
    return int(min(max_hop, max(round(min_hop_s * cfg.sample_rate), cfg.n_samples // frames)))


FRONT_END_FIELDS = (
    "sample_rate",
    "n_fft",
    "hop_length",
    "n_mels",
    "f_min",
    "f_max",
    "top_db",
    "n_mfcc",
    "norm",
    "norm_stats",
    "trim_db",
    "trim_mode",
    "pad_mode",
)


def transfers_from_earshot(source: str) -> bool:
    """`--pretrained` names an earlier earshot model (a folder or a Hub id), not ImageNet, none or a file."""
    return source not in ("none", "imagenet") and not Path(source).is_file()


def adopt_front_end(args: TrainArgs, cfg: AudioConfig) -> tuple[TrainArgs, AudioConfig]:
    """Transfer only pays when the body sees the features it learned on: take the source model's front end
    (rate, STFT, mels, normalisation and its statistics); the clip length still follows the new data.
    A pretrained audio backbone brings its own front end: only its sample rate is the config's business."""
    from learner.model import get_arch

    backbone = get_arch(args.arch).backbone
    if backbone and not transfers_from_earshot(args.pretrained):
        from learner.model.backbones import get_backbone

        rate = get_backbone(backbone).front.sample_rate
        return replace(args, auto_sample_rate=False, auto_hop=False), cfg.replace(sample_rate=rate)
    if not transfers_from_earshot(args.pretrained):
        return args, cfg
    from learner.folder import read_config
    from learner.hub import resolve
    from learner.model.pretrained import PretrainedError

    try:
        src = read_config(resolve(args.pretrained))["audio"]
    except Exception as e:
        raise PretrainedError(f"pretrained={args.pretrained}: {e}") from None
    cfg = cfg.replace(**{k: src[k] for k in FRONT_END_FIELDS if k in src})
    return replace(args, auto_sample_rate=False, auto_hop=False), cfg


def batch_size(bs: int, n_train: int) -> int:
    """`bs`, but at most an eighth of a small training set (≥ 8), so that an epoch is several steps."""
    return max(1, min(bs, n_train, max(8, n_train // 8)))


def epochs_for(epochs: int, n_train: int, bs: int, min_steps: int) -> int:
    """`epochs`, or more when the training set is so small that they would be fewer than `min_steps` steps."""
    steps = max(1, n_train // batch_size(bs, n_train))
    return max(epochs, -(-min_steps // steps))
