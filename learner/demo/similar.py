"""The demo's "find similar" tab on a folder that was embedded (`earshot embed`): an uploaded or recorded
clip → the nearest windows of the folder, as a table and as clips to play. Pure functions; app.py only lays
out the widgets (`python app.py --index EMB.parquet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.embed.embedder import Embedder
from learner.embed.index import EmbeddingIndex, Hit
from learner.embed.search import embed_query, embedder_of

COLUMNS = ["rank", "similarity", "file", "start_s", "end_s"]
PLAYERS = 3  # hits offered as audio players under the table


@dataclass
class SimilarIndex:
    """An embedded folder opened once for the demo: the index and the embedder that made it."""

    index: EmbeddingIndex
    embedder: Embedder


def open_similar(parquet: str | Path) -> SimilarIndex:
    return SimilarIndex(EmbeddingIndex.open(parquet), embedder_of(parquet))


def hits_table(hits: list[Hit]) -> list[list[Any]]:
    """One row per hit: rank, similarity (3 decimals), file name, start and end in s."""
    return [
        [i, round(h.similarity, 3), Path(h.path).name, round(h.start_s or 0.0, 2), round(h.end_s or 0.0, 2)]
        for i, h in enumerate(hits, 1)
    ]


def hit_audio(sim: SimilarIndex, hit: Hit) -> tuple[int, np.ndarray]:
    """The hit's window as (sample rate, samples) at the embedder's rate, ready for a Gradio player."""
    x = sim.embedder.pipeline.decode(hit.path).samples
    sr = sim.embedder.sample_rate
    a = int(round((hit.start_s or 0.0) * sr))
    b = x.size if hit.end_s is None else int(round(hit.end_s * sr))
    return sr, x[a:b]


def find_similar(
    sim: SimilarIndex, audio: tuple[int, np.ndarray] | str | None, k: int = 10
) -> tuple[list[list[Any]], list[tuple[int, np.ndarray] | None]]:
    """(hits table, audio of the first `PLAYERS` hits, None for missing ones) for Gradio's (rate, array)
    audio or a file path; ([], Nones) when nothing was given."""
    if audio is None:
        return [], [None] * PLAYERS
    hits = sim.index.hits(embed_query(sim.embedder, audio), k)
    clips: list[tuple[int, np.ndarray] | None] = [hit_audio(sim, h) for h in hits[:PLAYERS]]
    return hits_table(hits), clips + [None] * (PLAYERS - len(clips))


def outputs(sim: SimilarIndex, audio: tuple[int, np.ndarray] | str | None, k: int = 10) -> list[Any]:
    """`find_similar` as the tab's outputs in order: the table, then one clip per player."""
    table, clips = find_similar(sim, audio, k)
    return [table, *clips]
