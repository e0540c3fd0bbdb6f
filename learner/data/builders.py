"""The manifest builders of dataset recipes: a dataset's root folder + the recipe's parameters → rows of
path (relative to root), label (or labels), fold/split/group. A new dataset layout is one function here,
named in `BUILDERS` and chosen by a recipe's `builder` key."""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from learner.data.download import DatasetError


def _meta_csv(root: Path, *, tables: list[dict]) -> list[dict]:
    """Rows from metadata CSVs; `columns` maps manifest columns to CSV columns, `constants` adds fixed values,
    `exclude` lists files the dataset's own documentation calls broken (`exclude_reason` says why; a warning
    names the ones left out)."""
    rows = []
    for t in tables:
        dirs = [t["audio_dir"]] if isinstance(t["audio_dir"], str) else t["audio_dir"]
        audio = next((d for d in dirs if (root / d).is_dir()), None)
        if audio is None:
            raise DatasetError(f"{root}: no audio folder ({' or '.join(dirs)}) — is the download complete?")
        where = {k: str(v).lower() for k, v in t.get("where", {}).items()}
        broken, left_out = set(t.get("exclude", ())), []
        with open(root / t["csv"], newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                if any(str(rec.get(k, "")).lower() != v for k, v in where.items()):
                    continue
                if rec[t["columns"]["path"]] in broken:
                    left_out.append(rec[t["columns"]["path"]])
                    continue
                row = {col: rec[src] for col, src in t["columns"].items()}
                row["path"] = f"{audio}/{row['path']}"
                if "labels" in row and t.get("labels_sep"):  # multi-label metadata: its own separator → ";"
                    row["labels"] = ";".join(
                        x.strip() for x in row["labels"].split(t["labels_sep"]) if x.strip()
                    )
                rows.append({**row, **t.get("constants", {})})
        if left_out:
            warnings.warn(
                f"{t['csv']}: left out {len(left_out)} clip(s) "
                f"{t.get('exclude_reason', 'listed as broken')}: "
                f"{', '.join(sorted(left_out))}",
                stacklevel=3,
            )
    return rows


def _fsdd(root: Path, *, recordings: str, test_below_index: int, labels: Sequence[str]) -> list[dict]:
    """`{digit}_{speaker}_{index}.wav`: group = speaker, split = test for index < `test_below_index`."""
    rows = []
    for p in sorted((root / recordings).glob("*.wav")):
        m = re.fullmatch(r"(\d)_(.+)_(\d+)", p.stem)
        if m:
            split = "test" if int(m[3]) < test_below_index else "train"
            rows.append(dict(path=f"{recordings}/{p.name}", label=labels[int(m[1])], group=m[2], split=split))
    return rows


def _speech_commands(root: Path, *, valid_list: str, test_list: str, exclude: Sequence[str]) -> list[dict]:
    """`{word}/{speaker}_nohash_{n}.wav`: split from the two list files, group = speaker hash."""
    listed = {}
    for split, name in (("valid", valid_list), ("test", test_list)):
        listed.update(
            {line.strip(): split for line in (root / name).read_text().splitlines() if line.strip()}
        )
    rows = []
    for word in sorted(d.name for d in os.scandir(root) if d.is_dir() and d.name not in exclude):
        for name in sorted(n for n in os.listdir(root / word) if n.endswith(".wav")):
            rel = f"{word}/{name}"
            rows.append(
                dict(path=rel, label=word, group=name.split("_nohash_")[0], split=listed.get(rel, "train"))
            )
    return rows


BUILDERS: dict[str, Callable[..., list[dict]]] = {
    "meta_csv": _meta_csv,
    "fsdd": _fsdd,
    "speech_commands": _speech_commands,
}
