"""What the benchmarks share: the checkout on the import path, a command line from a table of defaults,
how they run a job in a child process (one thread, offline), and the CPU time their children used.
Benches (`python bench/NAME.py`) import this first, never tests/."""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/NAME.py` puts bench/ first, not the checkout
    sys.path.insert(0, str(ROOT))


def _devsets() -> Path:
    """$EARSHOT_DEVSETS, else ../shared/devsets beside the checkout (or beside a worktree's parent)."""
    if os.environ.get("EARSHOT_DEVSETS"):
        return Path(os.environ["EARSHOT_DEVSETS"])
    near = [ROOT.parent / "shared" / "devsets", ROOT.parent.parent / "shared" / "devsets"]
    return next((p for p in near if p.is_dir()), near[0])


DEVSETS = _devsets()  # the real recordings benches measure on (never tests)
# one thread per child: steady timings on a shared 2-core machine (README "Scaling up"); never the network
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def job(name: str, *args: object) -> list[str]:
    """The command line of `python -m jobs.NAME ARGS...` (arguments as strings)."""
    return [sys.executable, "-m", f"jobs.{name}", *map(str, args)]


def train_job(manifest: Path, out: Path, *, pretrained: str = "none", seed: int = 0, extra=()) -> list[str]:
    """The README's training command on `manifest`, quiet and without the fastai pickle."""
    return job(
        "train", "--data", manifest, "--out", out, "--pretrained", pretrained, "--seed", seed,
        "--quiet", "--no-pickle", *extra,
    )  # fmt: skip


def child_cpu() -> float:
    """CPU seconds used so far by finished child processes (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parser(doc: str, **flags: Any) -> argparse.ArgumentParser:
    """A bench's command line: its docstring's first line as the description, and one `--name` flag per
    keyword, given as its default or as (default, help). The type follows the default (a False default
    makes a switch); flags that need more are added to the parser this returns."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, spec in flags.items():
        default, help = spec if isinstance(spec, tuple) else (spec, None)
        kw: dict[str, Any] = {"default": default, "help": help}
        if default is False:
            kw["action"] = "store_true"
        elif default is not None:
            kw["type"] = type(default)
        p.add_argument("--" + name.replace("_", "-"), **kw)
    return p


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A table for bench/RESULTS.md, printed ready to paste: `align` gives each column's alignment, "l" or
    "r" (default: left), e.g. "lrr" for a name and two figures."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = [header, rule, *[[str(c) for c in r] for r in rows]]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
