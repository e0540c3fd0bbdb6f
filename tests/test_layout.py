"""The shape of the library: rooms along the clip's path, public names, and a library that never speaks
CLI."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_job

ROOT = Path(__file__).resolve().parents[1]
LEARNER = ROOT / "learner"
# The rooms along the clip's path, lowest first: a module may import its own room and any room of a lower
# layer, never one above it (README "Layout"). A new room or flat module is declared here.
LAYERS = {
    "config": 0, "folder": 0, "workers": 0,
    "audio": 1,
    "model": 2, "data": 2, "report": 2, "hub": 2, "card": 2, "weights": 2,
    "train": 3,
    "serve": 4,
    "score": 5, "embed": 5,
    "demo": 6,
}  # fmt: skip
FLAT = {"config", "hub", "card", "weights", "workers"}  # the rest lives in a room
SOURCES = sorted(LEARNER.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in SOURCES}


def _learner_imports(path: Path) -> set[str]:
    """The learner modules `path` imports, anywhere in it (inside functions and TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(_tree(path)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != "learner":
                found.add(name)
    return found - {_module(path)}


GRAPH = {m: _learner_imports(p) for m, p in MODULES.items()}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else "learner"


def test_rooms_and_no_flat_modules_left():
    rooms = {p.name for p in LEARNER.iterdir() if (p / "__init__.py").is_file()}
    assert rooms <= set(LAYERS), f"declare the new room in LAYERS: {rooms - set(LAYERS)}"
    assert {"audio", "model", "data", "train", "serve", "score", "report", "demo", "folder"} <= rooms
    flat = {p.stem for p in LEARNER.glob("*.py")} - {"__init__"}
    assert flat <= FLAT, flat
    assert not (ROOT / "datasets" / "__init__.py").exists()  # recipes are data, never a package


def test_imports_point_down_the_layers():
    upward = [
        f"{m} -> {o}"
        for m, outs in GRAPH.items()
        for o in outs
        if m != "learner" and LAYERS[_room(o)] > LAYERS[_room(m)]
    ]
    assert not upward, "\n".join(sorted(upward))


def test_serving_never_imports_training():
    for m, outs in GRAPH.items():
        if _room(m) in ("serve", "demo"):
            assert not {o for o in outs if _room(o) == "train"}, m


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, circles


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_under_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


def test_no_function_over_60_lines():
    long = [
        f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for p in SOURCES
        for n in ast.walk(_tree(p))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60
    ]
    assert not long, "\n".join(long)


def test_lines_stay_short_without_packing():
    """ruff checks the 110 limit; this keeps the limit itself from creeping back up."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "line-length = 110" in text


def test_public_entry_points():
    code = (
        "from learner import Predictor, Prediction, AudioConfig, ClipPipeline, TrainArgs, evaluate, "
        "resolve, push, BACKENDS; from learner.train import train; import sys; "
        "assert Predictor.__module__ == 'learner.serve.predictor' and callable(train) and 'torch' in "
        "BACKENDS; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastai'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['torch']"  # fastai loads only when a training run starts
    lazy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import learner, sys; from learner import AudioConfig; print('torch' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lazy.stdout.strip() == "False", lazy.stderr


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_train_room_imports_fastai_and_nothing_imports_a_shell():
    for path in SOURCES:
        used = _imports(path)
        assert not used & {"jobs", "app"}, f"{path} imports a shell"
        if "train" not in path.relative_to(LEARNER).parts:
            assert not used & {"fastai", "fasttransform"}, f"{path} imports fastai outside learner/train"


def test_the_library_never_prints():
    for path in SOURCES:
        calls = [
            n
            for n in ast.walk(_tree(path))
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"
        ]
        assert not calls, f"{path}:{calls[0].lineno} prints; log instead (jobs and app.py print)"
        assert "= print" not in path.read_text(encoding="utf-8"), f"{path} defaults to print"


_FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_library_messages_name_fields_not_flags():
    """Errors, log lines and hints in learner/ say `pretrained=none`; jobs/ turn that into `--pretrained
    none`."""
    found = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            said = []
            if isinstance(node, ast.Raise) and node.exc is not None:
                said = _strings(node.exc)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "warning",
                "info",
                "error",
                "debug",
                "warn",
                "log",
                "_info",
            ):
                said = _strings(node)
            elif isinstance(node, ast.Assign) and any(
                getattr(t, "id", "").endswith("HINT") for t in node.targets
            ):
                said = _strings(node.value)
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {s}" for s in said if _FLAG.search(s)]
    assert not found, "\n".join(found)


def test_jobs_say_library_fields_as_flags(capsys):
    from jobs._cli import as_flags, run

    assert as_flags("set pretrained=PATH or pretrained=none") == "set --pretrained PATH or --pretrained none"
    assert (
        as_flags("pass resume=True to continue it or overwrite=True")
        == "pass --resume to continue it or --overwrite"
    )
    assert (
        as_flags("drop n_folds= to use it; hop_length=0; verify=False skips")
        == "drop --n-folds to use it; --hop 0; --no-verify skips"
    )

    def fails():
        raise FileExistsError(
            "out already exists; pass resume=True to continue it or overwrite=True to replace it"
        )

    with pytest.raises(SystemExit) as e:
        run(fails)
    assert e.value.code == 1
    assert (
        capsys.readouterr().err
        == "earshot: out already exists; pass --resume to continue it or --overwrite to replace it\n"
    )


def test_library_logs_reach_the_job_as_lines(capsys):
    import logging

    from jobs._cli import log_to_console

    log_to_console()
    logging.getLogger("learner.train.fit").info("clip length %g s", 1.5)
    logging.getLogger("learner.train.fit").warning("2 file(s) excluded (pretrained=none)")
    out = capsys.readouterr()
    assert (
        out.out == "earshot: clip length 1.5 s\n"
        and out.err == "earshot: 2 file(s) excluded (--pretrained none)\n"
    )
    log_to_console(quiet=True)
    logging.getLogger("learner").info("hidden")
    assert capsys.readouterr().out == ""


def test_offline_train_job_names_the_flag(four_class_dir, tmp_path):
    out = run_job(
        "jobs.train", "--data", str(four_class_dir), "--out", str(tmp_path / "m"), "--quiet", timeout=600,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("earshot: ") and "--pretrained none" in last and "pretrained=" not in last
