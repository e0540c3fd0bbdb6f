"""Share a model directory on the Hugging Face Hub and get it back.

A trained model is a folder (`config.json`, `model.safetensors`, ...) and its Hub repo holds the same files,
so a Hub id and a local folder end in the same place: `resolve_model(ref) -> Path`, which the Predictor
loads like any other folder. Every failure the user can fix (token, repo name, revision, network) becomes
one `HubError` with a one-line message; jobs print it instead of a traceback.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from learner.modeldir import strip_local_paths, write_json

__all__ = ["SERVING_FILES", "HubError", "model_card", "parse_hub_ref", "push", "resolve_model", "write_model_card"]

REQUIRED_FILES = ("config.json", "model.safetensors")
# What serving needs; `model.pkl` (a fastai pickle) comes down only when asked for by name.
SERVING_FILES = ["config.json", "model.safetensors", "model*.onnx", "README.md", "metrics.json", "*.png"]
PICKLE_FILES = ["model.pkl"]
# Left behind by interrupted writes, editors and caches; never part of a model.
PUSH_IGNORE = ["*.tmp", "*.incomplete", "*.lock", "*.swp", "*~", ".DS_Store", ".cache/**", "**/.cache/**",
               "__pycache__/**", "**/__pycache__/**", ".ipynb_checkpoints/**", "**/.ipynb_checkpoints/**"]
LOGIN_HINT = "pass --token (or set HF_TOKEN) or run `hf auth login`"

_HUB_REF = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[^\s@]+))?")


class HubError(RuntimeError):
    """A Hub problem the user can fix, said in one line (token, repo, revision, network, folder)."""


def parse_hub_ref(ref: str) -> tuple[str, str | None] | None:
    """`USER/NAME[@revision]` → (repo_id, revision); None when `ref` is not shaped like a Hub id."""
    match = _HUB_REF.fullmatch(ref.strip())
    return (match["repo"], match["rev"]) if match else None


def check_model_dir(model_dir: str | Path, required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    """The folder as a Path, or a HubError naming what is missing (before any network call)."""
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise HubError(f"{path}: no such model directory")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise HubError(f"{path} is not a complete earshot model directory: missing {', '.join(missing)}")
    return path


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
    if parse_hub_ref(repo_id) is None or "@" in repo_id:
        raise HubError(f"{repo_id!r} is not a Hub repo id: use USER/NAME (and --revision for a branch)")
    readme = path / "README.md"
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


CARD_MARK = "<!-- earshot model card: written by learner/hub.py, refreshed on every push -->"


def is_earshot_card(text: str) -> bool:
    """A README.md earshot wrote (refreshed on push), not one the user wrote (pushed as it is)."""
    return CARD_MARK in text or "An earshot audio classifier (`" in text


def _stage(src: Path, stage: Path, card: str) -> Path:
    """What a push uploads: the folder's files (hard links where possible), this push's card, and config.json
    without local paths (the training data folder, a weights file): they mean nothing on the Hub."""
    import shutil

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, stage, ignore=shutil.ignore_patterns("README.md"), copy_function=link)
    config = _read_json(src / "config.json")
    public = strip_local_paths(config)
    if public != config:
        (stage / "config.json").unlink()
        write_json(stage / "config.json", public)
    (stage / "README.md").write_text(card, encoding="utf-8")
    return stage


def resolve_model(
    ref: str | Path,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    include_pickle: bool = False,
) -> Path:
    """A local model folder for `ref`: a directory as is, or a Hub id `USER/NAME[@revision]` downloaded once.

    Downloads go to the Hugging Face cache (`cache_dir`, else HF_HUB_CACHE) and only the files serving needs;
    `model.pkl` only with `include_pickle`. Offline (`HF_HUB_OFFLINE=1` or no network) a cached copy is used.
    """
    from huggingface_hub import snapshot_download

    text = str(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        return check_model_dir(path, required=("config.json",))
    if path.exists():
        raise HubError(f"{path} is a file: pass the model directory that holds config.json, or a Hub id USER/NAME")
    if isinstance(ref, Path):
        raise HubError(f"{path}: no such model directory")
    parsed = parse_hub_ref(text)
    if parsed is None:
        raise HubError(f"{text}: no such model directory, and not a Hub id (USER/NAME[@revision])")
    repo_id, at_rev = parsed
    if revision and at_rev and revision != at_rev:
        raise HubError(f"{text}: revision given twice ({at_rev!r} and {revision!r})")
    rev = revision or at_rev
    patterns = SERVING_FILES + (PICKLE_FILES if include_pickle else [])
    with _hub_errors("download", repo_id, rev, endpoint, pulling=True):
        folder = Path(snapshot_download(
            repo_id,
            repo_type="model",
            revision=rev,
            cache_dir=cache_dir,
            endpoint=endpoint,
            token=token,
            allow_patterns=patterns,
            local_files_only=_offline(),
        ))
    if not (folder / "config.json").is_file():
        raise HubError(f"{repo_id} has no config.json: it is not an earshot model")
    return folder


# ---- errors -------------------------------------------------------------------------------------------

def _offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since (tests, notebooks)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever HTTP stack this huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
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


def _translate(exc: BaseException, action: str, repo_id: str, revision: str | None, endpoint: str | None,
               pulling: bool) -> HubError:
    from huggingface_hub import errors

    where = f"{action} {repo_id}"
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, errors.RevisionNotFoundError):
            return HubError(f"{where}: no revision {revision!r} in model repo {repo_id} (use a branch, tag or commit)")
        if isinstance(e, errors.RepositoryNotFoundError):
            local = Path(repo_id).parent.is_dir()  # e.g. models/esc50 typed for a local folder
            return HubError(f"{where}: no such model repo {repo_id} (or it is private: pass a token)"
                            + (f"; no local directory {repo_id} either" if local and pulling else ""))
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
            return HubError(f"{where}: the Xet upload failed ({_one_line(e, 100)}); for a Hub without Xet "
                            "set HF_HUB_DISABLE_XET=1")
        if isinstance(e, incomplete):
            return HubError(f"{where}: the cached copy is incomplete and the Hub cannot be reached; connect and retry")
        if isinstance(e, offline_types):
            reason = "offline mode: HF_HUB_OFFLINE=1" if _offline() else _one_line(chain[-1], 100)
            if pulling:
                return HubError(f"{where}: cannot reach the Hub ({reason}) and {repo_id} is not in the local cache; "
                                "connect, or pass a local model directory")
            return HubError(f"{where}: cannot reach the Hub at {endpoint} ({reason}); connect and push again")
    return HubError(f"{where} failed: {type(exc).__name__}: {_one_line(exc)}")


@contextmanager
def _hub_errors(action: str, repo_id: str, revision: str | None, endpoint: str | None,
                pulling: bool = False) -> Iterator[None]:
    """Turn whatever the Hub client raises inside into one HubError (the original stays as __cause__)."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        raise _translate(exc, action, repo_id, revision, endpoint, pulling) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError as e:
        raise HubError(f"{path} is not valid JSON ({e})") from e


# ---- model card ---------------------------------------------------------------------------------------

# metrics.json key → (model-index metric type, display name, card `metrics:` id)
_CARD_METRICS = [
    ("accuracy", "accuracy", "Accuracy", "accuracy"),
    ("top3_accuracy", "top_3_accuracy", "Top-3 accuracy", None),
    ("map3", "map_at_3", "MAP@3", None),
    ("macro_precision", "precision", "Macro precision", "precision"),
    ("macro_recall", "recall", "Macro recall", "recall"),
    ("macro_f1", "f1", "Macro F1", "f1"),
]


def write_model_card(model_dir: str | Path, *, repo_id: str | None = None, overwrite: bool = False) -> Path:
    """Write README.md (Hub metadata + human card) from config.json and metrics.json; keep an existing one."""
    path = Path(model_dir).expanduser()
    readme = path / "README.md"
    if readme.exists() and not overwrite:
        return readme
    readme.write_text(model_card(path, repo_id=repo_id), encoding="utf-8")
    return readme


def model_card(model_dir: str | Path, *, repo_id: str | None = None) -> str:
    """The card text: YAML front matter the Hub indexes (library, task, tags, model-index), then the card."""
    path = check_model_dir(model_dir, required=("config.json",))
    cfg, metrics = _read_json(path / "config.json"), _read_json(path / "metrics.json")
    return f"---\n{_card_metadata(path, cfg, metrics, repo_id)}---\n\n{_card_body(path, cfg, metrics, repo_id)}"


def _dataset_name(cfg: dict[str, Any]) -> str | None:
    data = cfg.get("train", {}).get("data")
    return cfg.get("dataset") or (Path(str(data)).name if data else None)


def _card_metadata(path: Path, cfg: dict[str, Any], metrics: dict[str, Any], repo_id: str | None) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    arch, dataset = cfg.get("arch", "unknown"), _dataset_name(cfg)
    present = [m for m in _CARD_METRICS if isinstance(metrics.get(m[0]), (int, float))]
    split = cfg.get("train", {}).get("split")
    results = [
        EvalResult(task_type="audio-classification", task_name="Audio classification",
                   dataset_type=dataset or "custom", dataset_name=dataset or "custom audio dataset",
                   dataset_split=str(split) if split else None, metric_type=mtype, metric_name=name,
                   metric_value=round(float(metrics[key]), 4))
        for key, mtype, name, _ in present
    ]
    data = ModelCardData(
        library_name="fastai", pipeline_tag="audio-classification",
        tags=["earshot", "audio", "audio-classification", "fastai", arch],
        datasets=[cfg["dataset"]] if cfg.get("dataset") else None,
        metrics=[m[3] for m in present if m[3]] or None,
        model_name=(repo_id or path.name).split("/")[-1] if results else None,
        eval_results=results or None,
    )
    return data.to_yaml() + "\n"


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    text = value if isinstance(value, str) else f"`{json.dumps(value)}`"
    return text.replace("|", "\\|")


def _card_body(path: Path, cfg: dict[str, Any], metrics: dict[str, Any], repo_id: str | None) -> str:
    name, ref = (repo_id or path.name).split("/")[-1], repo_id or "USER/NAME"
    arch, classes, audio = cfg.get("arch", "unknown"), list(cfg.get("classes", [])), cfg.get("audio", {})
    sr, dur, dataset = audio.get("sample_rate", "?"), audio.get("duration", "?"), _dataset_name(cfg)
    start = str(strip_local_paths(cfg["pretrained"])) if cfg.get("pretrained") else None
    how = ("trained with fastai" if start is None else "trained from scratch with fastai" if start.startswith("none")
           else f"fine-tuned with fastai from {start}")
    out = [f"# {name}", "", CARD_MARK, "",
           f"An earshot audio classifier (`{arch}`, {how}) that labels "
           f"{dur}-second clips (resampled to {sr} Hz, mono) as one of {len(classes)} classes"
           + (f", trained on `{dataset}`." if dataset else "."), "",
           "## Classes", "", ", ".join(f"`{c}`" for c in classes) or "(none listed in config.json)", ""]
    if metrics:
        n = metrics.get("n_samples")
        out += ["## Evaluation", "", f"On the held-out split{f' ({n} clips)' if n else ''}:", "",
                _table([(label, f"{metrics[key]:.4f}") for key, _, label, _ in _CARD_METRICS
                        if isinstance(metrics.get(key), (int, float))], ("Metric", "Value")), ""]
        per_class = metrics.get("per_class") or []
        if per_class:
            cols = ("support", "top1", "precision", "recall", "f1")
            rows = [(r.get("label"), *(r.get(c, "") if not isinstance(r.get(c), float) else f"{r[c]:.3f}"
                                       for c in cols)) for r in per_class]
            out += ["<details><summary>Per class</summary>", "", _table(rows, ("Class", *cols)), "", "</details>", ""]
    for image, title in (("confusion_matrix.png", "Confusion matrix"), ("curves.png", "Training curves")):
        if (path / image).is_file():
            out += [f"![{title}]({image})", ""]
    out += ["## How to use", "", "With earshot installed (`pip install -r requirements.txt` in a clone):", "",
            "```python", "from learner.predictor import Predictor", "",
            f'predictor = Predictor.from_pretrained("{ref}")  # downloads once, then uses the local cache', "```",
            "", "```bash", f"python -m jobs.predict clip.wav --model {ref}",
            f"HF_HUB_OFFLINE=1 python -m jobs.predict clip.wav --model {ref}  # from the cache, no network", "```", "",
            "`model.safetensors` holds the weights and `config.json` the classes and the preprocessing, so the "
            "demo, the scorer and this card rebuild exactly the training pipeline."
            + (" `model.pkl` is a fastai export: unpickling runs code, so it is downloaded and loaded only on "
               "explicit request (`allow_pickle=True`)." if (path / "model.pkl").is_file() else ""), "",
            "## Preprocessing (AudioConfig)", "",
            _table([(f"`{k}`", _fmt(v)) for k, v in audio.items() if k != "extra" or v], ("Field", "Value")), ""]
    train = cfg.get("train", {})
    if train:
        out += ["## Training", "", _table([(f"`{k}`", _fmt(strip_local_paths(v))) for k, v in train.items()],
                                          ("Argument", "Value")), ""]
    versions = {"earshot": cfg.get("earshot_version"), **cfg.get("versions", {})}
    out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), "",
            "## Intended use and limitations", "",
            (f"- Meant for tagging short recordings with one of the {len(classes)} classes above, e.g. for sorting, "
             "search or a demo. Every input gets one of these labels: sounds outside the list are still forced into "
             "one, so threshold the probability or add an `other` class if that matters."),
            f"- Each clip is cut or padded to {dur} s after trimming silence; longer recordings should be scored in "
            "windows. Quality depends on how close the microphone, room and noise are to the training data"
            + (f" (`{dataset}`)" if dataset else "") + ".",
            ("- The reported numbers come from one held-out split and carry its biases; measure on your own data "
             "before relying on the model. Not for safety-critical or surveillance use."), ""]
    return "\n".join(out)
