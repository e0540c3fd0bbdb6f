"""Labelled data: manifests (folder-per-class or CSV), splits, and the decoded-signal cache.

A manifest is a DataFrame with absolute `path` and `label`, and optional `fold`, `split`, `group`.
Splitters are plain functions returning (train, valid) index arrays, so any rule fits fastai's DataBlock.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from learner.audio import AUDIO_EXTENSIONS, AudioDecodeError, decode
from learner.clip import trim_silence
from learner.config import AudioConfig

SPLITS = ("train", "valid", "test")


class ManifestError(ValueError):
    """The data a user pointed at cannot be read as a labelled dataset; the message says where and why."""


def _audio_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return files


def manifest_from_folder(root: Path) -> pd.DataFrame:
    """Folder-per-class: the label is each file's parent folder. A top level of train/valid/test folders
    (each holding class folders) becomes the `split` column."""
    root = Path(root)
    files = _audio_files(root)
    if not files:
        raise ManifestError(f"{root}: no audio files found (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})")
    rows = []
    for f in files:
        rel = f.relative_to(root).parts
        if len(rel) < 2:
            raise ManifestError(f"{f}: audio directly in {root}; put each class in its own folder ({root}/LABEL/{f.name})")
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
    resolve against the CSV's folder."""
    csv = Path(csv)
    try:
        df = pd.read_csv(csv, dtype={"path": str, "label": str, "group": str, "split": str})
    except Exception as e:
        raise ManifestError(f"{csv}: unreadable CSV ({e})") from None
    missing = {"path", "label"} - set(df.columns)
    if missing:
        raise ManifestError(f"{csv}: missing column(s) {', '.join(sorted(missing))} (need path,label)")
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
        from learner.recipes import resolve_data

        path = Path(resolve_data(str(data)))
    df = manifest_from_folder(path) if path.is_dir() else manifest_from_csv(path)
    missing = [p for p in df["path"] if not os.path.exists(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ManifestError(f"{missing[0]}: listed in {data} but does not exist{more}")
    return df


# --- splits ----------------------------------------------------------------------------------------------


def add_groups(df: pd.DataFrame, group_col: str | None = None, group_regex: str | None = None) -> pd.DataFrame:
    """Fill `group` from an existing column or from a regex on the file name (first capture group)."""
    df = df.copy()
    if group_col:
        if group_col not in df:
            raise ManifestError(f"no column {group_col!r} for --group-col (columns: {', '.join(df.columns)})")
        df["group"] = df[group_col].astype(str)
    elif group_regex:
        rx = re.compile(group_regex)
        groups = []
        for p in df["path"]:
            m = rx.search(Path(p).name)
            if not m:
                raise ManifestError(f"{p}: file name does not match --group-regex {group_regex!r}")
            groups.append(m.group(1) if m.groups() else m.group(0))
        df["group"] = groups
    return df


def split_indices(
    df: pd.DataFrame, *, valid_pct: float = 0.2, seed: int = 42, valid_fold: int | None = None, by_group: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) row indices. Precedence: `valid_fold` > a `split` column > groups > stratified random.

    Rows with split == "test" are in neither (evaluate them with `jobs.evaluate`).
    """
    idx = np.arange(len(df))
    if valid_fold is not None:
        if "fold" not in df:
            raise ManifestError("--valid-fold needs a fold column in the manifest")
        if valid_fold not in set(df["fold"]):
            raise ManifestError(f"--valid-fold {valid_fold}: folds present are {sorted(set(df['fold']))}")
        valid = (df["fold"] == valid_fold).to_numpy()
        test = (df["split"] == "test").to_numpy() if "split" in df else np.zeros(len(df), dtype=bool)
        return idx[~valid & ~test], idx[valid & ~test]
    if "split" in df and (df["split"] == "valid").any():
        return idx[(df["split"] == "train").to_numpy()], idx[(df["split"] == "valid").to_numpy()]
    pool = idx[(df["split"] != "test").to_numpy()] if "split" in df else idx
    rng = np.random.default_rng(seed)
    if by_group and "group" in df:
        groups = df["group"].to_numpy()[pool]
        uniq = np.unique(groups)
        if len(uniq) < 2:
            raise ManifestError(f"a group split needs at least 2 groups; found {len(uniq)}")
        rng.shuffle(uniq)
        n_valid = max(1, round(len(uniq) * valid_pct))
        valid_groups = set(uniq[:n_valid])
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


# --- decoded-signal cache ------------------------------------------------------------------------------


def files_digest(df: pd.DataFrame) -> str:
    """sha256 over the (label, file name) pairs of `df`: which clips a model trained on, without their
    local paths (a moved or re-downloaded copy of the data gives the same digest)."""
    lines = sorted(f"{label}\t{Path(str(path)).name}" for path, label in zip(df["path"], df["label"], strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _cache_key(path: str, cfg: AudioConfig) -> str:
    st = os.stat(path)
    raw = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{cfg.sample_rate}|{cfg.trim_db}|{cfg.trim_mode}"
    return hashlib.sha1(raw.encode()).hexdigest()


def load_signal(path: str, cfg: AudioConfig) -> np.ndarray:
    """Decode → mono → resample → trim: everything before the crop, which differs per epoch."""
    x = decode(path, cfg.sample_rate).samples
    return trim_silence(x, cfg.trim_db, cfg.trim_mode)


def _load_one(args: tuple[str, AudioConfig, str | None]) -> tuple[str, np.ndarray | None, str | None]:
    path, cfg, cache_dir = args
    try:
        if cache_dir:
            f = Path(cache_dir) / f"{_cache_key(path, cfg)}.npy"
            if f.is_file():
                return path, np.load(f), None
        x = load_signal(path, cfg)
        if cache_dir:
            tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, x)
            os.replace(tmp, f)
        return path, x, None
    except AudioDecodeError as e:
        return path, None, e.reason


def load_signals(
    paths: list[str], cfg: AudioConfig, *, cache_dir: str | Path | None = None, workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode every file once (in parallel; from the disk cache when present).

    Returns (signals by path, failures by path → reason). Nothing is skipped silently: the caller reports
    `failures` by name.
    """
    from tqdm.auto import tqdm

    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    uniq = list(dict.fromkeys(paths))
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    jobs = [(p, cfg, str(cache_dir) if cache_dir else None) for p in uniq]
    signals: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc="decoding", unit="file", disable=not progress)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) >= 64 else None
    results = pool.map(_load_one, jobs, chunksize=16) if pool else map(_load_one, jobs)
    try:
        for path, x, err in results:
            if err is None:
                signals[path] = x
            else:
                failures[path] = err
            bar.update()
    finally:
        if pool:
            pool.shutdown()
    bar.close()
    return signals, failures
