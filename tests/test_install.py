"""Part B: earshot installs as the packages `learner*` and `jobs` (never `datasets`) and has one `earshot`
command.

The install itself (`pip install .` and `-e .` into fresh venvs, then `earshot train/score/predict` and a
fastai
model.pkl loaded from outside the checkout) is `scripts/install-check.sh`, run by `make test`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from jobs.cli import JOBS, main
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_and_ships_the_recipes():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = cfg["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("learner/**/__init__.py")}
    assert set(tool["packages"]) == on_disk | {"jobs", "learner._recipes", "earshot", "earshot._space"}
    assert tool["package-dir"] == {"learner._recipes": "datasets", "earshot._space": "."}
    assert [p.name for p in ROOT.glob("*.py")] == ["app.py"]  # earshot._space takes the top level's modules
    assert cfg["tool"]["setuptools"]["package-data"]["learner._recipes"] == ["*.toml"]
    assert not (ROOT / "datasets" / "__init__.py").exists() and list((ROOT / "datasets").glob("*.toml"))
    assert cfg["project"]["scripts"] == {"earshot": "jobs.cli:console"}
    assert cfg["build-system"]["build-backend"] == "setuptools.build_meta"


def test_recipes_are_found_in_a_checkout_and_in_an_install():
    from learner.data.recipes import RECIPES_DIR, _recipes_dir, list_recipes

    assert RECIPES_DIR == ROOT / "datasets" == _recipes_dir()
    assert "spoken-digits-synth" in {r.name for r in list_recipes()}


def test_the_earshot_command_knows_every_job(capsys):
    modules = {p.stem for p in (ROOT / "jobs").glob("*.py") if not p.stem.startswith("_") and p.stem != "cli"}
    assert set(JOBS) == modules
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"  {job}" in shown for job in JOBS)
    assert main(["nope"]) == 2 and "unknown job 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("job", ["score", "train"])
def test_earshot_job_is_python_m_jobs_job(job):
    """`earshot JOB` (here `python -m jobs JOB`, the same dispatcher) takes exactly the flags of `python -m
    jobs.JOB`."""
    via = run_job("jobs", job, "--help", timeout=300)
    direct = subprocess.run(
        [sys.executable, "-m", f"jobs.{job}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert via.returncode == direct.returncode == 0, via.stderr
    assert via.stdout.startswith(f"usage: earshot {job} ") and direct.stdout.startswith(
        f"usage: python -m jobs.{job} "
    )
    assert via.stdout.split("\n\n", 1)[1] == direct.stdout.split("\n\n", 1)[1] and "--quiet" in via.stdout


def test_earshot_errors_are_one_line(tmp_path):
    out = run_job("jobs", "predict", str(tmp_path / "a.wav"), "--model", str(tmp_path), timeout=300)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and out.stderr.startswith("earshot: ")


def test_import_earshot_is_learners_public_api():
    import earshot
    import learner

    assert earshot.__version__ == learner.__version__ and set(earshot.__all__) == set(learner.__all__)
    assert earshot.Predictor is learner.Predictor and earshot.AudioConfig is learner.AudioConfig
    with pytest.raises(AttributeError, match="module 'earshot' has no attribute 'nope'"):
        earshot.nope  # noqa: B018


def test_earshot_demo_is_a_job_running_app_py(capsys):
    from jobs.demo import app_file

    assert "demo" in JOBS and app_file() == ROOT / "app.py"
    out = run_job("jobs", "demo", "--help", timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("usage: earshot demo ") and "--model" in out.stdout


def test_app_help_says_whole_sentences():
    out = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    description = out.stdout.split("\n\n")[1]
    assert out.returncode == 0 and description.rstrip().endswith("(README front matter).")


def test_make_shows_pip_progress_and_installs_earshot_itself():
    make = (ROOT / "Makefile").read_text()
    big = [ln for ln in make.splitlines() if "-r requirements.txt" in ln]
    assert big and all(" -q" not in ln for ln in big)
    assert "pip install -q --no-deps -e ." in make  # `python -m jobs.X` from any folder
    serve = (ROOT / "scripts" / "serve-venv-check.sh").read_text()
    assert 'pip" install -r requirements-serve.txt' in serve


def test_serving_requirements_pin_what_the_full_install_pins():
    def specs(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        pairs = (ln.split("#")[0].strip() for ln in lines)
        import re

        return {re.split(r"[<>=\[ ]", ln, maxsplit=1)[0].lower(): ln for ln in pairs if ln}

    full, serve = specs("requirements.txt"), specs("requirements-serve.txt")
    assert serve["gradio"] == full["gradio"]
    assert {k: v for k, v in serve.items() if k in full} == {k: full[k] for k in serve if k in full}
