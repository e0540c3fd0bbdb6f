"""The docs name only what exists: every job has a `--help`, every flag a page's command uses is in it, and
every path (`learner/...py`, `jobs/...`, `bench/...`) and `learner.x.y` module the README and docs/ mention
is in the checkout, so a renamed flag or a moved module breaks a test, not a reader. The README stays a
five-minute read and keeps the Space's front matter.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from tests.test_docs import COMMANDS, PAGES, REPO

# Paths and modules of the issue 21 layout that pages name before main has them. One that exists is an error
# (so the set empties itself as the moves land); one no page names any more is an error too.
PLANNED: set[str] = set()
# "A file like this", or the new file an example in docs/contributing.md creates: not files of the checkout.
PLACEHOLDERS = {"tests/test_X.py", "datasets/NAME.toml", "learner.x.y", "learner/model/tiny_cnn.py"}
PLACEHOLDERS |= {"learner/model/beats.py"}
PATH = re.compile(r"(?<![\w/.])((?:learner|jobs|bench|scripts|tests|datasets|assets|examples)/[\w./-]*[\w/])")
MODULE = re.compile(r"(?<![\w./])(learner(?:\.\w+)+)")


def _mentions(pattern: re.Pattern) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for page in PAGES:
        for match in pattern.finditer(page.read_text()):
            found.setdefault(match.group(1), set()).add(page.name)
    return found


def _unknown(mentions: dict[str, set[str]], exists: Callable[[str], bool]) -> list[str]:
    return [
        f"{name}  ({', '.join(sorted(pages))})"
        for name, pages in sorted(mentions.items())
        if name not in PLANNED | PLACEHOLDERS and not exists(name)
    ]


def _path_exists(path: str) -> bool:
    return (REPO / path.rstrip("/.")).exists()


def test_every_path_the_pages_name_exists():
    missing = _unknown(_mentions(PATH), _path_exists)
    assert not missing, "the pages name paths that do not exist:\n" + "\n".join(missing)


def test_planned_names_are_still_planned_and_still_named():
    landed = sorted(p for p in PLANNED if (_resolves(p) if "/" not in p else _path_exists(p)))
    assert not landed, f"these exist now: drop them from PLANNED in tests/test_docs_names.py: {landed}"
    named = set(_mentions(PATH)) | set(_mentions(MODULE))
    assert PLANNED | PLACEHOLDERS <= named, f"no page names these any more: {sorted(PLANNED - named)}"


def _defines(module: Path, name: str) -> bool:
    """Whether `module` (a .py file) binds `name` at its top level: def, class, assignment or import."""
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


def _resolves(dotted: str) -> bool:
    """`learner.a.b[.attr]`: the longest module prefix exists, and at most one attribute follows it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:cut])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.exists():
            rest = parts[cut:]
            return not rest or (
                len(rest) == 1 and (_defines(module, rest[0]) or (base / f"{rest[0]}.py").exists())
            )
    return False


def test_every_module_the_pages_name_exists():
    mentions = _mentions(MODULE)
    assert "learner.audio.decode.decode" in mentions  # the pattern finds what it is meant to find
    missing = _unknown(mentions, _resolves)
    assert not missing, "the pages name modules (or names in them) that do not exist:\n" + "\n".join(missing)


def test_the_readme_is_short_keeps_the_space_front_matter_and_links_to_real_pages():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    front = text.split("---\n")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front and text.startswith("---\ntitle: earshot\n")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [link for link in links if "://" not in link]
    assert relative and not [link for link in relative if not (REPO / link).exists()]


def test_the_benchmarks_page_includes_the_results_file_itself():
    assert '--8<-- "bench/RESULTS.md"' in (REPO / "docs" / "benchmarks.md").read_text()
    assert (REPO / "bench" / "RESULTS.md").exists()


@cache
def job_help(job: str, sub: str | None = None) -> str:
    """`python -m jobs.JOB [SUB] --help`, once per job (and subcommand)."""
    result = subprocess.run(
        [sys.executable, "-m", f"jobs.{job}", *([sub] if sub else []), "--help"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"jobs.{job} --help\n{result.stderr[-2000:]}"
    return result.stdout


def _jobs() -> list[str]:
    from jobs.cli import JOBS

    return list(JOBS)


@pytest.mark.parametrize("job", _jobs())
def test_every_job_has_help(job):
    text = job_help(job)
    assert text.startswith("usage:") and "--help" in text


def test_the_earshot_command_lists_every_job():
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0 and all(f"  {job} " in result.stdout for job in _jobs())


def _job_and_flags(command: str) -> tuple[str, str | None, list[str]] | None:
    """`... -m jobs.JOB [SUB] ... --flag ...` → (JOB, SUB or None, the flags)."""
    words = shlex.split(command)
    if "-m" not in words[:-1] or not words[words.index("-m") + 1].startswith("jobs."):
        return None
    at = words.index("-m") + 1
    job, rest = words[at].removeprefix("jobs."), words[at + 1 :]
    subs = re.search(r"\{([\w,-]+)\}", job_help(job).split("\n\n")[0])
    sub = rest[0] if subs and rest and rest[0] in subs.group(1).split(",") else None
    return job, sub, [w.split("=")[0] for w in rest if w.startswith("--")]


def test_every_flag_a_page_uses_is_in_its_jobs_help():
    """Also for the commands that are not run: a renamed flag breaks the page, so it breaks here."""
    missing = []
    for command in COMMANDS:
        found = _job_and_flags(command)
        if found:
            job, sub, flags = found
            words = set(re.findall(r"--[\w-]+", job_help(job, sub)))
            missing += [f"jobs.{job} {flag}  (in: {command})" for flag in flags if flag not in words]
    assert not missing, "flags the pages use that the jobs do not have:\n" + "\n".join(missing)
