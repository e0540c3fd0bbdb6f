"""Which windows to review next: candidates from a scoring run (its windows or events) or a similarity search
(a hits manifest), picked by score, at random, balanced across score bins, or nearest the threshold.

    load_candidates("scores.parquet")              → windows (path, start_s, end_s, label, score)
    load_candidates("scores.parquet", "events")    → events (max_score as the score)
    load_candidates("hits.csv")                    → `earshot search --out` hits (similarity as the score)
    pick(df, "uncertain", 50, threshold=0.5, answered=...) → 50 Candidates, none answered before

`uncertain` is Perch's agile-modelling rule (label next what the model is least sure of: the scores
closest to the threshold); `balanced` is the stratified sample a calibration curve needs (Wood & Kahl
2024: equal numbers from each score bin, so the logistic fit sees low scores too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from learner.data.review import Candidate, window_key

PICKS = ("top", "random", "balanced", "uncertain")
CANDIDATE_COLUMNS = ["path", "start_s", "end_s", "label", "score"]
SOURCES = ("windows", "events")


def load_candidates(source: str | Path, side: str = "windows") -> pd.DataFrame:
    """Rows to pick from, `CANDIDATE_COLUMNS`, with `attrs["source_run"]` naming where they came from.

    `source` is a scoring output (`jobs.score --out`, scored with windows), one of its side folders, a
    parquet or CSV of windows or events, or a search hits manifest (path, label, start_s, end_s,
    similarity)."""
    if side not in SOURCES:
        raise ValueError(f"side {side!r}: choose one of {', '.join(SOURCES)}")
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such scoring output or hits file")
    table = _read(src, side)
    if "score" not in table and "max_score" in table:
        table = table.rename(columns={"max_score": "score"})
    if "score" not in table and "similarity" in table:
        table = table.rename(columns={"similarity": "score"})
    missing = [c for c in CANDIDATE_COLUMNS if c not in table]
    if missing:
        raise ValueError(
            f"{src}: no {', '.join(missing)} column(s); score with windows=, or give search hits"
        )
    out = table[CANDIDATE_COLUMNS].dropna(subset=["start_s", "end_s", "score"]).reset_index(drop=True)
    out["label"] = out["label"].fillna("").astype(str)
    if len(out) and (out["label"] == "").all():
        raise ValueError(f"{src}: no labels to review (search hits: write them with label=NAME)")
    out["score"] = out["score"].astype(float)
    out.attrs["source_run"] = str(source)
    return out


def _read(src: Path, side: str) -> pd.DataFrame:
    from learner.score.store import read_results, side_output

    if src.is_dir():
        beside = side_output(src, side)
        return read_results(beside if beside.is_dir() else src).to_pandas()
    if src.suffix.lower() == ".csv":
        return pd.read_csv(src)
    if src.suffix.lower() == ".parquet":
        return pd.read_parquet(src)
    raise ValueError(f"{src}: not a scoring output, parquet or CSV")


def threshold_of(label: str, threshold: float | Mapping[str, float]) -> float:
    if isinstance(threshold, Mapping):
        return float(threshold.get(label, 0.5))
    return float(threshold)


def pick(
    table: pd.DataFrame,
    how: str,
    n: int,
    *,
    threshold: float | Mapping[str, float] = 0.5,
    answered: Iterable[tuple] = (),
    labels: Iterable[str] | None = None,
    bins: int = 5,
    seed: int = 0,
) -> list[Candidate]:
    """`n` candidates from `table` (`load_candidates`), none of the `answered` keys (path, start_s, end_s,
    label; `read_review` gives them), only `labels` when given. `top`: the highest scores; `random`;
    `balanced`: as many from each of `bins` equal-width score bins as there are (the rest from the
    fullest); `uncertain`: the smallest |score − threshold| (one value, or {label: threshold})."""
    if how not in PICKS:
        raise ValueError(f"pick {how!r}: choose one of {', '.join(PICKS)}")
    if n < 1:
        raise ValueError(f"pick {n} windows? give at least 1")
    done = {window_key(*k) for k in answered}
    df = table
    if labels is not None:
        df = df.loc[df["label"].isin(list(labels))]
    if done:
        keys = [window_key(*k) for k in df[["path", "start_s", "end_s", "label"]].itertuples(index=False)]
        df = df.loc[[k not in done for k in keys]]
    rng = np.random.default_rng(seed)
    order = ORDERS[how](df, n, rng, threshold=threshold, bins=bins)
    source = table.attrs.get("source_run", "")
    rows = df.iloc[order[:n]]
    return [
        Candidate(str(r.path), float(r.start_s), float(r.end_s), str(r.label), float(r.score), how, source)
        for r in rows.itertuples(index=False)
    ]


def _top(df: pd.DataFrame, n: int, rng, **_) -> np.ndarray:
    return np.argsort(-df["score"].to_numpy(), kind="stable")


def _random(df: pd.DataFrame, n: int, rng, **_) -> np.ndarray:
    return rng.permutation(len(df))


def _uncertain(df: pd.DataFrame, n: int, rng, *, threshold, **_) -> np.ndarray:
    t = np.array([threshold_of(label, threshold) for label in df["label"]], dtype=float)
    distance = np.abs(df["score"].to_numpy() - t)
    tie = rng.random(len(df))  # equal distances in random order, not file order
    return np.lexsort((tie, distance))


def _balanced(df: pd.DataFrame, n: int, rng, *, bins: int, **_) -> np.ndarray:
    """Round-robin over equal-width score bins (each shuffled), so every bin gives as many as it holds."""
    s = df["score"].to_numpy()
    if not len(s):
        return np.array([], dtype=int)
    lo, hi = float(s.min()), float(s.max())
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    queues = [list(rng.permutation(np.flatnonzero(which == b))) for b in range(bins)]
    order: list[int] = []
    while len(order) < min(n, len(s)):
        for q in queues:
            if q:
                order.append(int(q.pop()))
    return np.array(order, dtype=int)


ORDERS = {"top": _top, "random": _random, "balanced": _balanced, "uncertain": _uncertain}
