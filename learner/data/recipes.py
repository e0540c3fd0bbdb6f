"""Dataset recipes: `datasets/*.toml` says where a dataset lives, its licence and how to make a manifest.

A recipe is data (URLs, checksums, the manifest builder and its parameters); this module is the one engine:
resumable, checksum-verified downloads into `.part` files, extraction, and a `manifest.csv` (path,label and
optional fold/split/group) beside the data. Offline, every failure is ONE line naming the way out
(`--from` an archive or folder fetched elsewhere, or the offline `spoken-digits-synth`).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from learner.data.builders import BUILDERS
from learner.data.download import (  # noqa: F401  (re-exported: the dataset errors and the download engine)
    OFFLINE_HINT,
    ChecksumMismatchError,
    DatasetDownloadError,
    DatasetError,
    UnverifiedDownloadWarning,
    download,
    extract,
    verify_checksum,
)


def _recipes_dir() -> Path:
    """`datasets/` of the checkout, or of the installed package: pip installs it as package data
    (`learner._recipes`, mapped in pyproject.toml; never a package named `datasets`, which would shadow
    Hugging Face's)."""
    checkout = Path(__file__).resolve().parents[2] / "datasets"
    if (checkout / "esc50.toml").is_file():
        return checkout
    spec = importlib.util.find_spec("learner._recipes")
    return (
        Path(list(spec.submodule_search_locations)[0])
        if spec and spec.submodule_search_locations
        else checkout
    )


RECIPES_DIR = _recipes_dir()
DATA_ENV = "EARSHOT_DATA"
MANIFEST = "manifest.csv"
INFO_FIELDS = ("homepage", "license", "citation", "size", "splits")
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class RecipeError(DatasetError):
    """No such recipe, or a malformed one."""


class DatasetNotFetchedError(DatasetError):
    """A download recipe was named but not fetched yet."""


@dataclass(frozen=True)
class Download:
    urls: tuple[str, ...]
    filename: str
    sha256: str = ""
    md5: str = ""
    extract_to: str = "."


@dataclass(frozen=True)
class Recipe:
    """One `datasets/NAME.toml`. `params` feed the builder; `small` overrides them for `--small` (synth)."""

    name: str
    title: str
    kind: str  # "download" | "synth"
    builder: str
    # homepage, license, citation, size, splits (for `info` and docs)
    info: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    downloads: tuple[Download, ...] = ()
    marker: str = ""
    params: dict = field(default_factory=dict)
    small: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    path: Path | None = None


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_recipe(path: str | Path) -> Recipe:
    """Parse one recipe file (a `RecipeError` names the file and the missing or bad field)."""
    path = Path(path)
    try:
        d = tomllib.loads(path.read_text())
        m = d.get("manifest", {})
        params = dict(m.get("params", {}))
        if "tables" in m:
            params["tables"] = m["tables"]
        downloads = tuple(
            Download(
                tuple(x["urls"]),
                x["filename"],
                x.get("sha256", ""),
                x.get("md5", ""),
                x.get("extract_to", "."),
            )
            for x in d.get("downloads", [])
        )
        info = {k: d[k] for k in INFO_FIELDS if k in d}
        recipe = Recipe(
            d["name"],
            d.get("title", d["name"]),
            d["kind"],
            m["builder"],
            info,
            tuple(d.get("aliases", ())),
            downloads,
            m.get("marker", ""),
            params,
            dict(m.get("small", {})),
            tuple(m.get("classes", ())),
            path,
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise RecipeError(f"{path}: bad recipe ({type(e).__name__}: {e})") from e
    if recipe.kind not in ("download", "synth") or (
        recipe.kind == "download" and not (downloads and recipe.marker)
    ):
        raise RecipeError(
            f"{path}: kind must be 'synth' or 'download' (with [[downloads]] and manifest.marker)"
        )
    return recipe


def list_recipes(recipes_dir: str | Path = RECIPES_DIR) -> list[Recipe]:
    """Every recipe in `datasets/`, sorted by name."""
    return sorted((load_recipe(p) for p in Path(recipes_dir).glob("*.toml")), key=lambda r: r.name)


def get_recipe(name: str, recipes_dir: str | Path = RECIPES_DIR) -> Recipe:
    """A recipe by name or alias, ignoring case and punctuation ("ESC-50" == "esc50")."""
    recipes = list_recipes(recipes_dir)
    for r in recipes:
        if _key(name) in {_key(r.name), *map(_key, r.aliases)}:
            return r
    raise RecipeError(f"no dataset recipe {name!r}; known: {', '.join(r.name for r in recipes)}")


def data_home() -> Path:
    """Where named datasets live: `$EARSHOT_DATA`, default `~/.cache/earshot/datasets`."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "earshot" / "datasets").expanduser()


def _find_root(base: Path, marker: str, depth: int = 3) -> Path | None:
    """The first folder (breadth-first, `depth` levels down) that holds `marker`."""
    level = [base]
    for _ in range(depth + 1):
        for d in level:
            if (d / marker).exists():
                return d
        level = [Path(e.path) for d in level for e in _subdirs(d)]
    return None


def _subdirs(d: Path) -> list[os.DirEntry]:
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError:
        return []
    return [e for e in entries if e.is_dir() and not e.name.startswith(".") and e.name != "downloads"]


def build_manifest(
    recipe: Recipe, root: str | Path, to: str | Path, *, classes: Sequence[str] | None = None
) -> Path:
    """Run the recipe's builder on `root`, keep `classes` (default: the recipe's), write `to/manifest.csv`.

    Paths are relative to `to` when the data sits inside it, absolute otherwise; listed files that are missing
    are dropped with a warning (all missing is an error).
    """
    root, to = Path(root).resolve(), Path(to).resolve()
    rows = BUILDERS[recipe.builder](root, **recipe.params)  # learner.data.builders
    wanted = list(classes if classes is not None else recipe.classes)
    multi = any("labels" in r for r in rows)
    if wanted:
        known = sorted({lab for r in rows for lab in (r["labels"].split(";") if multi else [r["label"]])})
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise DatasetError(f"{recipe.title}: no class {', '.join(unknown)}; classes: {', '.join(known)}")
        keep = set(wanted)
        if multi:  # clips with a wanted label, keeping only the wanted ones
            rows = [{**r, "labels": ";".join(x for x in r["labels"].split(";") if x in keep)} for r in rows]
            rows = [r for r in rows if r["labels"]]
        else:
            rows = [r for r in rows if r["label"] in keep]
    present = [r for r in rows if (root / r["path"]).is_file()]
    if not present:
        raise DatasetError(f"{recipe.title}: none of the {len(rows)} listed audio files exist under {root}")
    if len(present) < len(rows):
        warnings.warn(
            f"{recipe.title}: {len(rows) - len(present)} listed files are missing; left out", stacklevel=2
        )
    inside = root == to or to in root.parents
    cols = ["path", "labels" if multi else "label"] + [
        c for c in ("fold", "split", "group") if any(c in r for r in present)
    ]
    to.mkdir(parents=True, exist_ok=True)
    tmp = to / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in present:
            full = root / r["path"]
            w.writerow(
                {**r, "path": os.path.relpath(full, to).replace(os.sep, "/") if inside else full.as_posix()}
            )
    os.replace(tmp, to / MANIFEST)
    return to / MANIFEST


# --- fetch / resolve
# -----------------------------------------------------------------------------------------------


def _is_archive(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(_ARCHIVES)


def _from_source(recipe: Recipe, src: Path, to: Path, verify: bool) -> Path:
    """An extracted tree is used in place; an archive (or a folder of them) is extracted into `to`."""
    if not src.exists():
        raise DatasetError(f"{recipe.title}: source={src}: no such file or folder")
    if src.is_dir() and (root := _find_root(src, recipe.marker)):
        return root
    archives = [src] if src.is_file() else [p for p in sorted(src.iterdir()) if _is_archive(p)]
    by_name = {d.filename: d for d in recipe.downloads}
    for a in archives:
        d = by_name.get(a.name)
        if d and verify:
            verify_checksum(a, sha256=d.sha256, md5=d.md5, title=recipe.title, delete=False)
        extract(a, to / (d.extract_to if d else "."))
        if d:
            (to / f".extracted-{d.filename}").touch()  # a later plain `fetch` will not download it again
    root = _find_root(to, recipe.marker)
    if root is None:
        raise DatasetError(
            f"{recipe.title}: no {recipe.marker} in {src} or its archives — is it the right download?"
        )
    return root


def fetch(
    name: str | Recipe,
    to: str | Path | None = None,
    *,
    source: str | Path | None = None,
    progress: bool = True,
    verify: bool = True,
    classes: Sequence[str] | None = None,
    small: bool = False,
    keep_archives: bool = False,
) -> Path:
    """Download (or take `source`: an archive or a folder), extract, and write `to/manifest.csv` → its path.

    `to` defaults to `data_home()/NAME`, where `resolve_data(NAME)` looks. Synth recipes are built instead
    (`small=True`: the test-sized set, by default in `NAME-small`). Re-running skips finished downloads and
    extractions.
    """
    recipe = name if isinstance(name, Recipe) else get_recipe(name)
    # never where --data NAME looks
    default = data_home() / (f"{recipe.name}-small" if small else recipe.name)
    to = Path(to).expanduser() if to is not None else default
    if recipe.kind == "synth":
        if source is not None or classes:
            raise ValueError(f"{recipe.title} is generated here: source= and classes= do not apply")
        return _synth_builder(recipe, ensure=False)(
            to, **{**recipe.params, **(recipe.small if small else {})}
        )
    to.mkdir(parents=True, exist_ok=True)
    if source is not None:
        return build_manifest(
            recipe, _from_source(recipe, Path(source).expanduser(), to, verify), to, classes=classes
        )
    for d in recipe.downloads:
        done = to / f".extracted-{d.filename}"
        if done.exists():
            continue
        archive = download(
            d.urls,
            to / "downloads" / d.filename,
            sha256=d.sha256,
            md5=d.md5,
            verify=verify,
            progress=progress,
            title=recipe.title,
        )
        extract(archive, to / d.extract_to)
        done.touch()
        if not keep_archives:
            archive.unlink()
    root = _find_root(to, recipe.marker)
    if root is None:
        raise DatasetError(
            f"{recipe.title}: extracted, but no {recipe.marker} under {to}; the archive layout changed?"
        )
    return build_manifest(recipe, root, to, classes=classes)


def _synth_builder(recipe: Recipe, ensure: bool) -> Callable[..., Path]:
    """The function that generates a synth recipe's data (`ensure`: only when absent or outdated)."""
    if recipe.builder == "mixtures":
        from learner.data.mixtures import build_mixtures, ensure_mixtures

        return ensure_mixtures if ensure else build_mixtures
    from learner.data.synth import build_spoken_digits, ensure_spoken_digits

    return ensure_spoken_digits if ensure else build_spoken_digits


def resolve_data(data: str | Path) -> Path:
    """`--data` → a path: an existing file/folder as is; a recipe name → its manifest under `data_home()`.

    spoken-digits-synth is built on first use; a download recipe that was never fetched raises
    `DatasetNotFetchedError` naming the command to run.
    """
    p = Path(data).expanduser()
    if p.exists():
        return p
    try:
        recipe = get_recipe(str(data))
    except RecipeError:
        names = ", ".join(r.name for r in list_recipes())
        raise DatasetError(f"{data}: no such file or folder, and not a dataset recipe ({names})") from None
    home = data_home() / recipe.name
    if recipe.kind == "synth":
        return _synth_builder(recipe, ensure=True)(home, **recipe.params)
    if (home / MANIFEST).exists():
        return home / MANIFEST
    raise DatasetNotFetchedError(
        f"{recipe.title} is not downloaded: fetch {recipe.name} first (the datasets job; "
        f"it writes {home / MANIFEST}), or give a folder or CSV path"
    )
