"""Multi-label manifests: a `labels` column (`;`-separated, empty = background) or one 0/1 column per class,
the task they imply, and a validation split that keeps every label's share on both sides.

A multi-label manifest keeps the single-label shape: `labels` holds the sorted, `;`-joined label set of each
row and `label` the same string, so digests, folds and file listings need no second code path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class ManifestError(ValueError):
    """The data a user pointed at cannot be read as a labelled dataset; the message says where and why."""


SEP = ";"
TASKS = ("auto", "single", "multi")
KNOWN_COLUMNS = ("path", "label", "labels", "fold", "split", "group")


def split_labels(text: object) -> list[str]:
    """`"bark; rain"` → ["bark", "rain"] (sorted, no duplicates); empty or NaN → [] (background)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    return sorted({part.strip() for part in str(text).split(SEP) if part.strip()})


def join_labels(labels: Sequence[str]) -> str:
    return SEP.join(sorted(set(labels)))


def class_columns(df: pd.DataFrame) -> list[str]:
    """Columns other than the known ones whose every value is 0 or 1: one per class (a wide manifest)."""
    found = []
    for col in df.columns:
        if col in KNOWN_COLUMNS:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        if values.notna().all() and values.isin([0, 1]).all():
            found.append(col)
    return found


def normalise_labels(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """A CSV read as-is → a copy with `labels` (and `label` = `labels`). From a `labels` column, or from 0/1
    class columns when there is neither `label` nor `labels`. `source` names the file in errors."""
    df = df.copy()
    if "labels" in df:
        sets = [split_labels(v) for v in df["labels"]]
    else:
        cols = class_columns(df)
        if not cols:
            raise ManifestError(
                f"{source}: no label column: give `label`, `labels` (';'-separated) or one 0/1 "
                "column per class"
            )
        values = df[cols].apply(pd.to_numeric).to_numpy()
        sets = [[c for c, v in zip(cols, row, strict=True) if v == 1] for row in values]
        df = df.drop(columns=cols)
    df["labels"] = [join_labels(s) for s in sets]
    df["label"] = df["labels"]
    return df


def label_sets(df: pd.DataFrame) -> list[list[str]]:
    """Each row's labels: from `labels` when the manifest has it, else the one `label`."""
    if "labels" in df:
        return [split_labels(v) for v in df["labels"]]
    return [[str(v)] for v in df["label"]]


# A model folder may hold up to learner.folder.schema.MAX_CLASSES; training writes a class × class confusion
# matrix, a threshold and a plot row per class, which past this many is gigabytes and minutes (issue 25).
MAX_TRAIN_CLASSES = 1000


def check_class_count(df: pd.DataFrame, source: str) -> None:
    """Refuse an absurd number of classes in one line, from the manifest alone (before any decoding)."""
    n = len({name for names in label_sets(df) for name in names})
    if n > MAX_TRAIN_CLASSES:
        raise ValueError(
            f"{source}: {n} classes; earshot trains at most {MAX_TRAIN_CLASSES} (is the label column "
            "really the class, not a file or recording id?)"
        )


def is_multilabel(df: pd.DataFrame) -> bool:
    """True when some row has more or fewer than one label (what `task="auto"` turns into "multi")."""
    return "labels" in df and any(len(s) != 1 for s in label_sets(df))


def resolve_task(df: pd.DataFrame, task: str, source: str) -> str:
    """ "single" or "multi" for `task` in TASKS; single-label training of multi-label rows is an error."""
    if task not in TASKS:
        raise ValueError(f"task={task}: use one of {', '.join(TASKS)}")
    multi = is_multilabel(df)
    if task == "auto":
        return "multi" if multi else "single"
    if task == "single" and multi:
        sets = label_sets(df)
        row = next(i for i, s in enumerate(sets) if len(s) != 1)
        raise ManifestError(
            f"{source}: task=single, but {df['path'].iloc[row]} has {len(sets[row])} labels "
            "(use task=multi or auto)"
        )
    return task


def multi_hot(sets: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """(rows, classes) float32 0/1 targets; labels outside `classes` are ignored."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(sets), len(classes)), dtype=np.float32)
    for r, labels in enumerate(sets):
        for lab in labels:
            if lab in index:
                out[r, index[lab]] = 1.0
    return out


def balanced_split(
    counts: np.ndarray, sizes: Sequence[int], valid_pct: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of the units (rows or whole groups) that go to validation; `counts[u, c]` is how many rows
    of unit `u` carry class `c`, `sizes[u]` its rows.

    Greedy iterative stratification (after Sechidis et al., 2011): units holding the rarest labels are placed
    first, each on the side furthest below its shares of the unit's labels (relative deficits weighted by
    each label's rarity), ties by rows; so every label, rare ones too, gets about `valid_pct` of its
    examples in validation, and a group is never cut in two.
    """
    counts, sizes = np.asarray(counts, dtype=np.float64), np.asarray(sizes, dtype=np.float64)
    total = counts.sum(axis=0)
    shares = np.array([1 - valid_pct, valid_pct])  # train, valid
    want = shares[:, None] * total[None, :]
    have = np.zeros_like(want)
    rows_want, rows_have = shares * sizes.sum(), np.zeros(2)
    rarity = (
        np.where(counts > 0, total[None, :], np.inf).min(axis=1)
        if counts.size
        else np.full(len(sizes), np.inf)
    )
    order = np.lexsort((rng.permutation(len(sizes)), rarity))
    valid = np.zeros(len(sizes), dtype=bool)
    for i in order:
        rows_need = (rows_want - rows_have) / np.maximum(rows_want, 1e-9)
        present = counts[i] > 0
        if present.any():  # relative deficit of each label, weighted by its rarity: rare labels decide first
            deficit = (want[:, present] - have[:, present]) / np.maximum(want[:, present], 1e-9)
            need = (deficit / total[present]).sum(axis=1)
        else:
            need = rows_need
        if need[0] == need[1]:
            need = rows_need
        side = int(need[1] > need[0] or (need[1] == need[0] and rng.random() < valid_pct))
        valid[i] = bool(side)
        have[side] += counts[i]
        rows_have[side] += sizes[i]
    return valid


def multilabel_split(
    df: pd.DataFrame, pool: np.ndarray, valid_pct: float, rng: np.random.Generator, by_group: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) indices out of `pool` with every label balanced; whole groups when there is a
    `group`."""
    sets = label_sets(df)
    classes = sorted({lab for s in sets for lab in s})
    hot = multi_hot([sets[r] for r in pool], classes)
    if by_group and "group" in df:
        groups = df["group"].astype(str).to_numpy()[pool]
        uniq, of_row = np.unique(groups, return_inverse=True)
        if len(uniq) < 2:
            raise ManifestError(f"a group split needs at least 2 groups; found {len(uniq)}")
        counts = np.zeros((len(uniq), len(classes)))
        np.add.at(counts, of_row, hot)
        chosen = balanced_split(counts, np.bincount(of_row, minlength=len(uniq)), valid_pct, rng)
        mask = chosen[of_row]
    else:
        mask = balanced_split(hot, np.ones(len(pool)), valid_pct, rng)
    return pool[~mask], pool[mask]
