"""The library versions a model folder records (config.json `versions`): what trained it."""

from __future__ import annotations


def versions() -> dict[str, str]:
    import fastai
    import numpy as np
    import torch
    import torchaudio

    from learner import __version__

    return {
        "earshot": __version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "fastai": fastai.__version__,
        "numpy": np.__version__,
    }
