"""Share a model directory on the Hugging Face Hub and get it back.

A trained model is a folder (`config.json`, `model.safetensors`, ...) and its Hub repo holds the same files,
so a Hub id and a local folder end in the same place: `resolve(ref) -> Path`, which the Predictor
loads like any other folder. Every failure the user can fix (token, repo name, revision, network) becomes
one `HubError` with a one-line message; jobs print it instead of a traceback.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from learner import folder
from learner.folder import (
    CARD,
    CONFIG,
    METRICS,
    PICKLE,
    WEIGHTS,
    ModelDirError,
    read_config,
    refuse_links,
    strip_local_paths,
    write_json,
)

__all__ = ["SERVING_FILES", "HubError", "parse_hub_ref", "push", "resolve", "resolve_model"]

REQUIRED_FILES = (CONFIG, WEIGHTS)
# What serving needs; `model.pkl` (a fastai pickle) comes down only when asked for by name.
SERVING_FILES = [CONFIG, WEIGHTS, "model*.onnx", CARD, METRICS, "*.png"]
PICKLE_FILES = [PICKLE]
# Left behind by interrupted writes, editors and caches; never part of a model.
PUSH_IGNORE = [
    ".earshot-train.json",  # learner.train.outdir marks its folders with it; means nothing on the Hub
    "*.tmp",
    "*.incomplete",
    "*.lock",
    "*.swp",
    "*~",
    ".DS_Store",
    ".cache/**",
    "**/.cache/**",
    "__pycache__/**",
    "**/__pycache__/**",
    ".ipynb_checkpoints/**",
    "**/.ipynb_checkpoints/**",
]
LOGIN_HINT = "pass token= (or set HF_TOKEN) or run `hf auth login`"

_HUB_REF = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[^\s@]+))?")


class HubError(RuntimeError):
    """A Hub problem the user can fix, said in one line (token, repo, revision, network, folder)."""


def parse_hub_ref(ref: str) -> tuple[str, str | None] | None:
    """`USER/NAME[@revision]` → (repo_id, revision); None when `ref` is not shaped like a Hub id."""
    match = _HUB_REF.fullmatch(ref.strip())
    return (match["repo"], match["rev"]) if match else None


SERVED_FILES = (WEIGHTS, "model.onnx", "model.int8.onnx")  # a folder serves from any one of them


def check_model_dir(model_dir: str | Path, required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    """`learner.folder.check_model_dir` as a HubError (what jobs.push prints), before any network call. A
    folder with config.json and an ONNX file but no weights (a Teach speech model, the shipped int8 model)
    is complete too: the Predictor serves it."""
    try:
        path = folder.check_model_dir(model_dir, tuple(n for n in required if n != WEIGHTS))
        if WEIGHTS in required and not any((path / n).is_file() for n in SERVED_FILES):
            folder.check_model_dir(path, required)  # the usual "missing model.safetensors" line
        return path
    except ModelDirError as e:
        raise HubError(str(e)) from None


def push(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload a model folder as one commit and return the commit URL.

    The repo is created if needed (`private` applies only then) and a branch `revision` too. The upload is a
    staged copy holding a card made for `repo_id` (unless the folder's README.md is the user's own) and a
    config.json without local paths; after the push succeeds, earshot's card in the folder is refreshed to
    the pushed one. Large files (model.safetensors, model.onnx, images) go
    through LFS (Xet on huggingface.co when `hf_xet` is installed; `HF_HUB_DISABLE_XET=1` forces classic LFS).
    """
    from huggingface_hub import HfApi

    path = check_model_dir(model_dir)
    try:
        refuse_links(path)  # what a link points to (a key, ~/.ssh) must never be published
    except ModelDirError as e:
        raise HubError(str(e)) from None
    if parse_hub_ref(repo_id) is None or "@" in repo_id:
        raise HubError(f"{repo_id!r} is not a Hub repo id: use USER/NAME (and revision= for a branch)")
    from learner.card import is_earshot_card, model_card

    readme = path / CARD
    own_card = readme.is_file() and not is_earshot_card(readme.read_text(encoding="utf-8", errors="replace"))
    card = readme.read_text(encoding="utf-8") if own_card else model_card(path, repo_id=repo_id)
    arch = _read_json(path / "config.json").get("arch", "earshot")
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="earshot-push-") as tmp:
        stage = _stage(path, Path(tmp) / path.name, card)
        with _hub_errors("push", repo_id, revision, api.endpoint):
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=stage,
                repo_type="model",
                revision=revision,
                commit_message=commit_message or f"Upload {arch} audio classifier with earshot",
                ignore_patterns=list(PUSH_IGNORE),
            )
    if not own_card:  # only now, and every time: the folder's card names the repo it was last pushed to
        try:
            readme.write_text(card, encoding="utf-8")
        except OSError:
            pass  # a read-only model folder: the pushed card is what counts
    return str(info.commit_url)


def _stage(src: Path, stage: Path, card: str) -> Path:
    """What a push uploads: the folder's regular files (hard links where possible), this push's card, and
    config.json without local paths (the training data folder, a weights file): they mean nothing on the Hub.
    Nothing is copied through a link: a link that appeared since the check is refused here too."""
    import shutil

    for root, dirs, files in os.walk(src):  # followlinks=False: a linked folder is never entered
        rel = Path(root).relative_to(src)
        (stage / rel).mkdir(parents=True, exist_ok=True)
        for name in dirs + files:
            entry = Path(root) / name
            if entry.is_symlink():
                raise HubError(f"{entry}: a symbolic link in a model folder; copy the file in instead")
            if name in dirs or (name == CARD and rel == Path(".")):
                continue
            try:
                os.link(entry, stage / rel / name, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry, stage / rel / name, follow_symlinks=False)
    config = _read_json(src / "config.json")
    public = strip_local_paths(config)
    if public != config:
        (stage / "config.json").unlink()
        write_json(stage / "config.json", public)
    (stage / "README.md").write_text(card, encoding="utf-8")
    return stage


def looks_like_path(text: str) -> bool:
    """A reference meant as a local folder, never a Hub id: `/…`, `./…`, `~/…`, backslashes, more than one
    `/`, a trailing `/`, or a first part that is a folder here (`models/my_sonds` beside `models/`)."""
    if text.startswith(("/", "./", "../", "~", ".\\")) or "\\" in text or text.endswith("/"):
        return True
    name = text.split("@")[0]
    return name.count("/") > 1 or ("/" in name and Path(name.split("/")[0]).is_dir())


def _did_you_mean(path: Path) -> str:
    import difflib

    try:
        near = difflib.get_close_matches(
            path.name, [p.name for p in path.parent.iterdir() if p.is_dir()], n=1
        )
    except OSError:
        return ""
    return f"; did you mean {path.parent / near[0]}?" if near else ""


def resolve(
    ref: str | Path,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    include_pickle: bool = False,
) -> Path:
    """The one resolver: a local model folder for `ref`, a directory as is (its config.json checked), or a Hub
    id
    `USER/NAME[@revision]` downloaded once.

    Downloads go to the Hugging Face cache (`cache_dir`, else HF_HUB_CACHE) and only the files serving needs;
    `model.pkl` only with `include_pickle`. Offline (`HF_HUB_OFFLINE=1` or no network) a cached copy is used.
    """
    from huggingface_hub import snapshot_download

    text = str(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        read_config(check_model_dir(path, required=(CONFIG,)))
        return path
    if path.exists():
        raise HubError(
            f"{path} is a file: pass the model directory that holds config.json, or a Hub id USER/NAME"
        )
    if isinstance(ref, Path) or looks_like_path(text):
        hint = _did_you_mean(path)
        raise HubError(f"{text}: no such model directory{hint} (a local path, not a Hub id: not looked up)")
    parsed = parse_hub_ref(text)
    if parsed is None:
        raise HubError(f"{text}: no such model directory, and not a Hub id (USER/NAME[@revision])")
    repo_id, at_rev = parsed
    if revision and at_rev and revision != at_rev:
        raise HubError(f"{text}: revision given twice ({at_rev!r} and {revision!r})")
    rev = revision or at_rev
    patterns = SERVING_FILES + (PICKLE_FILES if include_pickle else [])
    with _hub_errors("download", repo_id, rev, endpoint, pulling=True):
        folder = Path(
            snapshot_download(
                repo_id,
                repo_type="model",
                revision=rev,
                cache_dir=cache_dir,
                endpoint=endpoint,
                token=token,
                allow_patterns=patterns,
                local_files_only=offline(),
            )
        )
    if not (folder / CONFIG).is_file():
        raise HubError(f"{repo_id} has no {CONFIG}: it is not an earshot model")
    return folder


resolve_model = resolve  # the name earlier releases exported


# ---- errors -------------------------------------------------------------------------------------------


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since (tests, notebooks)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever HTTP stack this huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        errors += [getattr(mod, n) for n in names if isinstance(getattr(mod, n, None), type)]
    return tuple(errors)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def _one_line(text: Any, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _sent_token(error: Any) -> bool:
    try:
        return bool(error.response.request.headers.get("authorization"))
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when a response has no request
        return True


def _translate(
    exc: BaseException, action: str, repo_id: str, revision: str | None, endpoint: str | None, pulling: bool
) -> HubError:
    from huggingface_hub import errors

    where = f"{action} {repo_id}"
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, errors.RevisionNotFoundError):
            return HubError(
                f"{where}: no revision {revision!r} in model repo {repo_id} (use a branch, tag or commit)"
            )
        if isinstance(e, errors.RepositoryNotFoundError):
            local = Path(repo_id).parent.is_dir()  # e.g. models/esc50 typed for a local folder
            return HubError(
                f"{where}: no such model repo {repo_id} (or it is private: pass a token)"
                + (f"; no local directory {repo_id} either" if local and pulling else "")
            )
        if isinstance(e, errors.HfHubHTTPError) and e.response is not None:
            status = e.response.status_code
            said = _one_line((e.server_message or str(e) or "").splitlines()[0])
            if status in (401, 403) and not _sent_token(e):
                return HubError(f"{where}: the Hub needs a token ({status} {said}): {LOGIN_HINT}")
            if status in (401, 403):
                return HubError(f"{where}: token rejected by the Hub ({status} {said}): {LOGIN_HINT}")
            return HubError(f"{where}: the Hub answered {status} ({said})")
    offline_types = (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError) + _network_errors()
    incomplete = getattr(errors, "IncompleteSnapshotError", ())  # huggingface_hub >= 1.x
    for e in chain:
        if "xet" in str(e).lower() and not pulling:  # hf_xet reports Hub answers as ConnectionError
            return HubError(
                f"{where}: the Xet upload failed ({_one_line(e, 100)}); for a Hub without Xet "
                "set HF_HUB_DISABLE_XET=1"
            )
        if isinstance(e, incomplete):
            return HubError(
                f"{where}: the cached copy is incomplete and the Hub cannot be reached; connect and retry"
            )
        if isinstance(e, offline_types):
            reason = "offline mode: HF_HUB_OFFLINE=1" if offline() else _one_line(chain[-1], 100)
            if pulling:
                return HubError(
                    f"{where}: cannot reach the Hub ({reason}) and {repo_id} is not in the local cache; "
                    "connect, or pass a local model directory"
                )
            return HubError(f"{where}: cannot reach the Hub at {endpoint} ({reason}); connect and push again")
    return HubError(f"{where} failed: {type(exc).__name__}: {_one_line(exc)}")


@contextmanager
def _hub_errors(
    action: str, repo_id: str, revision: str | None, endpoint: str | None, pulling: bool = False
) -> Iterator[None]:
    """Turn whatever the Hub client raises inside into one HubError (the original stays as __cause__)."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        raise _translate(exc, action, repo_id, revision, endpoint, pulling) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return folder.read_json(path)
    except ModelDirError as e:
        raise HubError(str(e)) from None
