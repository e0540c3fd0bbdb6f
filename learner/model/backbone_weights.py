"""A backbone's published weights: found (installed wheel, cache, the wheel fetched, URL), checked, converted
once.

A backbone whose weights ship inside a PyPI wheel (aisfx) is installed locally with `pip install --no-deps`
(its own pins are old). Where that is impossible (a Hugging Face Space installs requirements.txt with plain
pip), the wheel itself is fetched on first use with `pip download --no-deps` (the registry and proxy settings
pip already has, nothing installed) into the cache, and the checkpoint is read out of the wheel (a zip) and
checked against its published sha256 before it is kept. Offline, that is one line saying so.

The converted file lives in earshot's cache (`$EARSHOT_CACHE`, default ~/.cache/earshot) under
`backbones/NAME-<sha12>.safetensors`; later loads read only that (no pickle). A source checkpoint is read
with `torch.load(weights_only=True)` and an allow-list of exactly the numpy globals it needs, after its
checksum was checked. Missing weights are one line saying how to get them (`BackboneWeightsError`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from learner.model.backbone_registry import BackboneSpec, WeightsSource, get_backbone


class BackboneWeightsError(RuntimeError):
    """Weights that are missing or wrong, said in one line with the way to get them."""


def cache_root() -> Path:
    return Path(os.environ.get("EARSHOT_CACHE") or Path.home() / ".cache" / "earshot").expanduser()


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: Path, src: WeightsSource) -> None:
    """Refuse a checkpoint whose checksum is not the published one (before unpickling anything)."""
    for algo, want in (("sha256", src.sha256), ("md5", src.md5)):
        if want and _digest(path, algo) != want:
            raise BackboneWeightsError(
                f"{path}: {algo} is not the published {want[:12]}…; get it again: {src.how}"
            )


def _numpy_globals() -> list:
    """Exactly what the aisfx pickle names besides tensors: numpy scalars of dtype int64 (its numpy-1 name,
    and numpy 2's own for checkpoints written today)."""
    import numpy as np
    import numpy.dtypes

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, numpy.dtypes.Int64DType]


def read_checkpoint(path: Path) -> object:
    """A torch checkpoint (weights only, numpy scalars allowed), or an ONNX model (its graph: weights are
    initializers, read by the backbone's adapter)."""
    if Path(path).suffix == ".onnx":
        import onnx

        return onnx.load(str(path))
    with torch.serialization.safe_globals(_numpy_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def installed_file(src: WeightsSource) -> Path | None:
    """The checkpoint inside an installed wheel (found without importing the package: its imports need
    the old pins it was installed without)."""
    if not src.package or not src.member:
        return None
    top = src.member.split("/")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]).parent / src.member
    return path if path.is_file() else None


def converted_path(spec: BackboneSpec) -> Path:
    tag = (spec.weights.sha256 or spec.weights.md5 or "x")[:12]
    return cache_root() / "backbones" / f"{spec.name}-{tag}.safetensors"


def _download(src: WeightsSource, name: str) -> Path:
    import urllib.request

    dest = cache_root() / "downloads" / src.file
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(src.url, timeout=20) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BackboneWeightsError(
            f"{name} weights need the network ({src.url}: {getattr(e, 'reason', e)}); {src.how}"
        ) from None
    os.replace(tmp, dest)
    return dest


PIP_TIMEOUT_S = 300.0  # the whole `pip download` of one wheel (tens of MB)


def _fetch_wheel(src: WeightsSource, name: str, into: Path) -> Path:
    """`pip download --no-deps` of the package's wheel into `into` (once): nothing is installed."""
    dist = src.package.split("==")[0].replace("-", "_").lower()
    found = sorted(into.glob(f"{dist}-*.whl")) if into.is_dir() else []
    version = src.package.split("==")[1] if "==" in src.package else ""
    found = [w for w in found if not version or w.name.split("-")[1] == version]
    if found:
        return found[0]
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("EARSHOT_OFFLINE"):
        raise BackboneWeightsError(f"{name} weights need the network (offline is set); {src.how}")
    into.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--retries", "1", "--timeout", "15", "--dest", str(into),
           src.package]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        done = subprocess.CompletedProcess(cmd, 1, "", f"no answer in {PIP_TIMEOUT_S:g} s")
    wheels = sorted(into.glob(f"{dist}-*.whl"))
    if done.returncode != 0 or not wheels:
        said = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
        why = said[-1] if said else f"pip exited {done.returncode}"
        raise BackboneWeightsError(
            f"{name} weights need the network: pip could not download {src.package} ({why}); {src.how}"
        )
    return wheels[0]


def wheel_file(src: WeightsSource, name: str) -> Path:
    """The checkpoint read out of the package's wheel (fetched once into the cache), checked before it is
    kept: a file that is not the published one is deleted and refused."""
    downloads = cache_root() / "downloads"
    dest = downloads / src.file
    if dest.is_file():
        return dest
    wheel = _fetch_wheel(src, name, downloads / "wheels")
    tmp = dest.with_suffix(".part")
    try:
        with zipfile.ZipFile(wheel) as z, z.open(src.member) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as e:
        tmp.unlink(missing_ok=True)
        wheel.unlink(missing_ok=True)
        raise BackboneWeightsError(f"{wheel.name}: no {src.member} in it ({e}); {src.how}") from None
    try:
        check_file(tmp, src)
    except BackboneWeightsError:
        tmp.unlink(missing_ok=True)
        wheel.unlink(missing_ok=True)  # fetched again next time, never kept
        raise
    os.replace(tmp, dest)
    return dest


def source_file(spec: BackboneSpec) -> Path:
    """The published checkpoint: from the installed wheel, else the wheel fetched with pip, else downloaded
    (URL), else one clear error."""
    src = spec.weights
    found = installed_file(src)
    if found is not None:
        return found
    if src.package and src.member:
        return wheel_file(src, spec.name)
    if src.url:
        return _download(src, spec.name)
    raise BackboneWeightsError(f"{spec.name} weights are not installed: {src.how}")


def convert(spec: BackboneSpec, checkpoint: Path) -> dict[str, torch.Tensor]:
    """Checked → read (weights_only) → adapted → saved once as safetensors in the cache."""
    from safetensors.torch import save_file

    check_file(checkpoint, spec.weights)
    sd = {k: v.contiguous() for k, v in spec.adapter(read_checkpoint(checkpoint)).items()}
    out = converted_path(spec)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
        os.close(fd)
        save_file(sd, tmp)
        os.replace(tmp, out)
    except OSError:
        pass  # a read-only cache: use the weights without keeping the conversion
    return sd


def backbone_state_dict(spec: BackboneSpec, path: Path | None = None) -> dict[str, torch.Tensor]:
    """The block network's weights: a given file (safetensors of the network, or the published
    checkpoint), else the cached conversion, else the published checkpoint converted now."""
    from safetensors.torch import load_file

    if path is not None:
        if not path.is_file():
            raise BackboneWeightsError(f"{path}: no such weights file")
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return convert(spec, path)
    cached = converted_path(spec)
    if cached.is_file():
        return load_file(str(cached))
    return convert(spec, source_file(spec))


def have_weights(name: str) -> bool:
    """True when `name`'s pretrained weights load without the network (cached, installed, or already read
    out of a fetched wheel)."""
    spec = get_backbone(name)
    fetched = (cache_root() / "downloads" / spec.weights.file).is_file() and bool(spec.weights.package)
    return converted_path(spec).is_file() or installed_file(spec.weights) is not None or fetched
