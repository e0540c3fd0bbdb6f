"""learner.data.builds.build_once: generated sets are built once, atomically, and never over a user's
folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.data.builds import build_once


def _complete(out: Path) -> bool:
    return (out / "manifest.csv").exists() and (out / "build.json").exists()


def _builder(calls: list[Path]):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        tmp.mkdir(parents=True)
        (tmp / "build.json").write_text(json.dumps({"version": 1}))
        (tmp / "manifest.csv").write_text("path,label\n")

    return build


def test_builds_into_place_then_reuses(tmp_path):
    calls: list[Path] = []
    out = tmp_path / "set"
    assert build_once(out, _complete, _builder(calls), "build.json", "test-set") == out / "manifest.csv"
    assert _complete(out) and len(calls) == 1
    assert not calls[0].exists()  # the temporary sibling is gone
    build_once(out, _complete, _builder(calls), "build.json", "test-set")
    assert len(calls) == 1  # a complete build is not built again


def test_a_build_finished_meanwhile_by_another_process_is_kept(tmp_path):
    out = tmp_path / "set"
    theirs: list[Path] = []

    def racing(tmp: Path) -> None:
        _builder(theirs)(out)  # the other process renames its build into place while this one builds
        (out / "theirs").write_text("x")
        _builder([])(tmp)

    build_once(out, _complete, racing, "build.json", "test-set")
    assert (out / "theirs").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_stale_build_replaced_foreign_folder_refused(tmp_path):
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "build.json").write_text("{}")  # ours, but incomplete (no manifest)
    build_once(stale, _complete, _builder([]), "build.json", "test-set")
    assert _complete(stale)

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="holds no test-set build"):
        build_once(foreign, _complete, _builder([]), "build.json", "test-set")
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert {p.name for p in tmp_path.iterdir()} == {"stale", "mine"}  # no temporary folder left
