"""Labelled data: manifests (folder-per-class or CSV), validation splits and cross-validation folds.

A manifest is a DataFrame with absolute `path` and `label`, and optional `fold`, `split`, `group`
(multi-label manifests add `labels`, the `;`-joined label set, which `label` then repeats).
Splitters are plain functions returning (train, valid) index arrays, so any rule fits fastai's DataBlock.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from learner.audio import AUDIO_EXTENSIONS
from learner.data.labels import ManifestError, is_multilabel, multilabel_split, normalise_labels

SPLITS = ("train", "valid", "test")
CV_MANIFEST = "cv_manifest.csv"


def files_under(root: Path, extensions: frozenset[str] | tuple[str, ...]) -> list[Path]:
    """The files below `root` with one of `extensions` (lower case, with the dot), in a stable order;
    hidden files and folders are skipped, linked folders followed (audio folders and their tables)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in extensions
        ]
    return files


def _audio_files(root: Path) -> list[Path]:
    return files_under(root, AUDIO_EXTENSIONS)


def manifest_from_folder(root: Path) -> pd.DataFrame:
    """Folder-per-class: the label is each file's parent folder. A top level of train/valid/test folders
    (each holding class folders) becomes the `split` column."""
    root = Path(root)
    files = _audio_files(root)
    if not files:
        raise ManifestError(
            f"{root}: no audio files found (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    rows = []
    for f in files:
        rel = f.relative_to(root).parts
        if len(rel) < 2:
            raise ManifestError(
                f"{f}: audio directly in {root}; put each class in its own folder ({root}/LABEL/{f.name})"
            )
        row = {"path": str(f), "label": f.parent.name}
        if len(rel) >= 3 and rel[0] in SPLITS:
            row["split"] = rel[0]
        rows.append(row)
    df = pd.DataFrame(rows)
    if "split" in df and df["split"].isna().any():
        stray = df.loc[df["split"].isna(), "path"].iloc[0]
        raise ManifestError(f"{stray}: outside the train/valid/test folders that the rest of {root} uses")
    return df


def manifest_from_csv(csv: Path) -> pd.DataFrame:
    """CSV with `path,label` [+ `fold` int | `split` train/valid/test | any group column]; relative paths
    resolve against the CSV's folder. Multi-label: `path,labels` (`;`-separated, empty = background) or
    `path` + one 0/1 column per class (see `learner.data.labels`)."""
    csv = Path(csv)
    try:
        df = pd.read_csv(csv, dtype={"path": str, "label": str, "labels": str, "group": str, "split": str})
    except Exception as e:
        raise ManifestError(f"{csv}: unreadable CSV ({e})") from None
    if "path" not in df:
        raise ManifestError(f"{csv}: missing column(s) path (need path,label)")
    if "label" not in df or "labels" in df:  # multi-label: a `labels` column or one 0/1 column per class
        df = normalise_labels(df, str(csv))
    bad = df[df["path"].isna() | df["label"].isna()]
    if len(bad):
        raise ManifestError(f"{csv}: row {bad.index[0] + 2} has an empty path or label")
    df["path"] = [str(p if Path(p).is_absolute() else (csv.parent / p)) for p in df["path"]]
    if "fold" in df:
        if df["fold"].isna().any() or not np.allclose(df["fold"], df["fold"].round()):
            raise ManifestError(f"{csv}: column fold must hold integers")
        df["fold"] = df["fold"].astype(int)
    if "split" in df:
        df["split"] = df["split"].astype(str).str.strip().str.lower()
        wrong = sorted(set(df["split"]) - set(SPLITS))
        if wrong:
            raise ManifestError(f"{csv}: column split has {wrong}; use train, valid or test")
    return df.reset_index(drop=True)


def load_manifest(data: str | Path) -> pd.DataFrame:
    """A folder, a CSV manifest, or a dataset recipe name (see `python -m jobs.datasets list`)."""
    path = Path(data)
    if not path.exists():
        from learner.data.recipes import resolve_data

        path = Path(resolve_data(str(data)))
    df = manifest_from_folder(path) if path.is_dir() else manifest_from_csv(path)
    df.attrs["source"] = str(path)  # what a later error about one row names
    missing = [p for p in df["path"] if not os.path.exists(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ManifestError(f"{missing[0]}: listed in {data} but does not exist{more}")
    check_labels(df, path)
    check_one_label_per_file(df, path)
    return df


def _where(df: pd.DataFrame, i: int, source: Path) -> str:
    """A manifest row as a user finds it: the CSV's line number, or the file of a folder-per-class set."""
    if source.is_dir():
        return str(df["path"].iloc[i])
    return f"{source}: row {i + 2} ({df['path'].iloc[i]})"


def check_labels(df: pd.DataFrame, source: Path) -> None:
    """Every class name printable (`learner.folder.schema.class_name_problem`, the rule config.json is read
    with), so training never makes a model earshot then refuses, nor labels that forge lines in predict's
    output."""
    from learner.folder.schema import class_name_problem

    column = "labels" if "labels" in df else "label"
    for i, cell in enumerate(df[column]):
        names = [n for n in str(cell).split(";") if n] if column == "labels" else [cell]
        for name in names:
            if problem := class_name_problem(name):
                raise ManifestError(f"{_where(df, i, source)}: class name {name!r} {problem}")


def check_one_label_per_file(df: pd.DataFrame, source: Path) -> None:
    """A file listed under two labels would train both ways; several labels per file is multi-label, which
    the manifest says with a `labels` column (`a;b`)."""
    real = [os.path.normcase(os.path.realpath(p)) for p in df["path"]]
    first: dict[str, int] = {}
    for i, key in enumerate(real):
        j = first.setdefault(key, i)
        if j != i and df["label"].iloc[j] != df["label"].iloc[i]:
            a, b = df["path"].iloc[j], df["path"].iloc[i]
            where = f"{source}: rows {j + 2} and {i + 2} list {b}" if not source.is_dir() else f"{b} is {a}"
            raise ManifestError(
                f"{where} under two labels ({df['label'].iloc[j]!r} and {df['label'].iloc[i]!r}); a file "
                "with several labels needs a multi-label manifest (a `labels` column: a;b)"
            )


# --- splits ----------------------------------------------------------------------------------------------


def add_groups(
    df: pd.DataFrame, group_col: str | None = None, group_regex: str | None = None
) -> pd.DataFrame:
    """Fill `group` from an existing column or from a regex on the file name (first capture group)."""
    df = df.copy()
    if group_col:
        if group_col not in df:
            raise ManifestError(f"group_col={group_col}: no such column (columns: {', '.join(df.columns)})")
        _refuse_blank_groups(df, group_col)
        df["group"] = df[group_col].astype(str)
    elif group_regex:
        rx = re.compile(group_regex)
        groups = []
        for p in df["path"]:
            m = rx.search(Path(p).name)
            if not m:
                raise ManifestError(f"{p}: file name does not match group_regex={group_regex}")
            groups.append(m.group(1) if m.groups() else m.group(0))
        df["group"] = groups
    if "group" in df:
        _refuse_blank_groups(df, "group")
    return df


def _refuse_blank_groups(df: pd.DataFrame, column: str) -> None:
    """A file with no group would sit on both sides of a group split (or crash sorting the groups): the
    first empty cell is refused, naming the manifest, its line and the file."""
    cells = df[column]
    blank = cells.isna().to_numpy() | np.array([not str(c).strip() for c in cells], dtype=bool)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        source = df.attrs.get("source", "the manifest")
        raise ManifestError(
            f"{source}: the {column!r} cell of {df['path'].iloc[i]} (row {i + 1}) is empty; every file needs "
            "a group for a group split: fill it in or drop the row"
        )


def split_indices(
    df: pd.DataFrame,
    *,
    valid_pct: float = 0.2,
    seed: int = 42,
    valid_fold: int | None = None,
    by_group: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) row indices. Precedence: `valid_fold` > a `split` column > groups > stratified random.

    Rows with split == "test" are in neither (evaluate them with `jobs.evaluate`).
    """
    idx = np.arange(len(df))
    if valid_fold is not None:
        if "fold" not in df:
            raise ManifestError(f"valid_fold={valid_fold} needs a fold column in the manifest")
        if valid_fold not in set(df["fold"]):
            raise ManifestError(f"valid_fold={valid_fold}: folds present are {sorted(set(df['fold']))}")
        valid = (df["fold"] == valid_fold).to_numpy()
        test = (df["split"] == "test").to_numpy() if "split" in df else np.zeros(len(df), dtype=bool)
        return idx[~valid & ~test], idx[valid & ~test]
    if "split" in df and (df["split"] == "valid").any():
        return idx[(df["split"] == "train").to_numpy()], idx[(df["split"] == "valid").to_numpy()]
    pool = idx[(df["split"] != "test").to_numpy()] if "split" in df else idx
    rng = np.random.default_rng(seed)

    if is_multilabel(df):
        return multilabel_split(df, pool, valid_pct, rng, by_group=by_group)
    if by_group and "group" in df:
        groups = df["group"].to_numpy()[pool]
        uniq = np.unique(groups)
        if len(uniq) < 2:
            raise ManifestError(f"a group split needs at least 2 groups; found {len(uniq)}")
        rng.shuffle(uniq)
        n_valid = max(1, round(len(uniq) * valid_pct))
        valid_groups = cover_classes(set(uniq[:n_valid]), uniq, groups, df["label"].to_numpy()[pool])
        mask = np.array([g in valid_groups for g in groups])
        return pool[~mask], pool[mask]
    valid = []
    labels = df["label"].to_numpy()[pool]
    for lab in np.unique(labels):
        members = pool[labels == lab]
        members = members[rng.permutation(len(members))]
        k = int(round(len(members) * valid_pct)) if len(members) > 1 else 0
        valid.extend(members[:k])
    valid_set = np.zeros(len(df), dtype=bool)
    valid_set[valid] = True
    return pool[~valid_set[pool]], pool[valid_set[pool]]


def cover_classes(valid: set, order: np.ndarray, groups: np.ndarray, labels: np.ndarray) -> set:
    """`valid` groups plus, for each class with no validation file but at least 2 groups, one more of its
    groups (in the shuffled `order`) that leaves every class it holds a training group: a group split never
    leaves a class out of validation when it could have one (4 classes by speaker once left 2 unmeasured)."""
    classes_of = {g: set(labels[groups == g]) for g in order}
    valid = set(valid)
    for c in sorted(set(labels)):
        holders = [g for g in order if c in classes_of[g]]
        if len(holders) < 2 or any(g in valid for g in holders):
            continue
        for g in holders:
            rest = [h for h in order if h not in valid and h != g]
            if all(any(k in classes_of[h] for h in rest) for k in classes_of[g]):
                valid.add(g)
                break
    return valid


# --- cross-validation folds (one planner for crossval and compare)
# -------------------------------------------


def files_digest(df: pd.DataFrame) -> str:
    """sha256 over the (label, file name) pairs of `df`: which clips a model trained on, without their
    local paths (a moved or re-downloaded copy of the data gives the same digest)."""
    lines = sorted(
        f"{label}\t{Path(str(path)).name}" for path, label in zip(df["path"], df["label"], strict=True)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assign_folds(df: pd.DataFrame, n_folds: int, seed: int = 42) -> pd.DataFrame:
    """A copy of `df` with a `fold` column 1..n_folds: whole groups per fold when there is a `group` column
    (so a speaker is never on both sides), else stratified by label. Deterministic for a given seed."""
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    df = df.copy()
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(df), dtype=int)
    if "group" in df:
        groups = df["group"].astype(str).to_numpy()
        uniq = np.unique(groups)
        if len(uniq) < n_folds:
            raise ManifestError(f"{n_folds} folds need at least {n_folds} groups; found {len(uniq)}")
        rng.shuffle(uniq)
        of_group = {g: 1 + i % n_folds for i, g in enumerate(uniq)}
        fold = np.array([of_group[g] for g in groups])
    else:
        labels = df["label"].to_numpy()
        for lab in np.unique(labels):
            members = np.flatnonzero(labels == lab)
            fold[members[rng.permutation(len(members))]] = 1 + np.arange(len(members)) % n_folds
    df["fold"] = fold
    return df


@dataclass
class FoldPlan:
    """Which manifest the folds' training runs read (`data`), the fold values, and where they came from."""

    data: str
    folds: list[int]
    source: str


def plan_folds(df: pd.DataFrame, data: str, out: Path, n_folds: int | None, seed: int = 42) -> FoldPlan:
    """The manifest's own `fold` column, or `n_folds` folds assigned once (by group when there is one) and
    written to `out/cv_manifest.csv`, so every run (every arch of a comparison) sees exactly the same
    folds."""
    if "fold" in df:
        if n_folds is not None:
            raise ManifestError(f"{data} already has a fold column; drop n_folds= to use it")
        folds = sorted(int(f) for f in df["fold"].unique())
        if len(folds) < 2:
            raise ManifestError(
                f"{data}: cross-validation needs at least 2 values in the fold column, found {folds}"
            )
        return FoldPlan(str(data), folds, f"the fold column ({len(folds)} folds)")
    if n_folds is None:
        raise ManifestError(
            f"{data}: cross-validation needs a fold column (integers) in the manifest, "
            "or n_folds=K to assign folds (by group when there is one)"
        )
    assigned = assign_folds(df, n_folds, seed)
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / CV_MANIFEST
    assigned.to_csv(path, index=False)
    how = "group" if "group" in df else "label (stratified)"
    return FoldPlan(str(path), list(range(1, n_folds + 1)), f"{n_folds} folds assigned by {how}, seed {seed}")
