"""The one key of a decoded signal, for both signal caches (in memory with its optional `.npy` files,
`learner.data.signals`, and the on-disk shards, `learner.data.store`): what changes the decoded samples
(`settings_key`) and the file's identity (`file_key`). Embeddings cached beside them use the same keys."""

from __future__ import annotations

import hashlib
import json
import os

from learner.config import AudioConfig

STORE_FORMAT = 1  # bump when the layout or the decoding steps change: old shards are then ignored


def settings_key(cfg: AudioConfig) -> str:
    """What changes the decoded samples: the rate and the trimming (crop, features and augmentation do
    not)."""
    raw = json.dumps(
        {
            "format": STORE_FORMAT,
            "sample_rate": cfg.sample_rate,
            "trim_db": cfg.trim_db,
            "trim_mode": cfg.trim_mode,
        },
        sort_keys=True,
    )
    return f"sr{cfg.sample_rate}-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def file_key(path: str) -> str:
    """The file's identity: absolute path, size and modification time (an edited file is decoded again)."""
    st = os.stat(path)
    return hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
