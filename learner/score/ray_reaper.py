"""Clean up after a Ray driver that dies without a word (kill -9, the OOM killer).

When the Ray engine starts Ray on this machine itself, Ray's GCS server and raylet die with the driver, but
the agents the raylet started (dashboard agent, runtime-env agent) poll for their parent and stayed over
45 s, and the run's staging folder (OUT/.ray-staging-…) stayed in OUT until the next resume (issue 13).
So the engine starts this small watcher beside Ray: it learns the processes `ray.init` started, follows
their descendants every half second, and when the driver is gone (its pipe closes, or the watcher is handed
to another parent) stops them (SIGTERM, then SIGKILL after a grace period) and removes the staging folders
it was told about. Never started for a cluster given by address: the engine did not start those processes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REFRESH_S = 0.5  # how often the watcher follows the Ray processes' descendants
GRACE_S = 2.0  # SIGTERM → SIGKILL
ROOT = Path(__file__).resolve().parents[2]
_log = logging.getLogger(__name__)


class RayReaper:
    """The driver's side: start the watcher, tell it which staging folders to remove if the driver dies."""

    def __init__(self, roots: list[int]) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from learner.score.ray_reaper import reaper_main; reaper_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )  # Ctrl-C in the terminal reaches the driver, not this
        self._say({"roots": roots})

    def _say(self, message: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            _log.warning("the Ray clean-up watcher is gone; a killed run would leave Ray processes behind")

    def watch(self, folder: str | Path) -> None:
        """Remove `folder` if the driver dies before `forget(folder)`."""
        self._say({"watch": str(folder)})

    def forget(self, folder: str | Path) -> None:
        self._say({"forget": str(folder)})


_current: RayReaper | None = None


def start(roots: list[int]) -> RayReaper:
    """The one watcher of the Ray session this process started (`roots`: the processes `ray.init` started)."""
    global _current
    _current = RayReaper(roots)
    return _current


def current() -> RayReaper | None:
    return _current


def _table() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, start time in clock ticks since boot, state) of every process (Linux /proc).

    With the pid, the start time names one process: pids are reused."""
    out: dict[int, tuple[int, int, str]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                out[int(name)] = (int(fields[1]), int(fields[19]), fields[0])
            except (OSError, IndexError, ValueError):
                continue
    return out


def children_of(pid: int) -> set[int]:
    """Direct children of `pid` (empty where /proc is not available)."""
    return {p for p, (parent, _, _) in _table().items() if parent == pid}


def _alive(known: dict[int, int], table: dict[int, tuple[int, int, str]]) -> list[int]:
    return [p for p, t in known.items() if p in table and table[p][1] == t and table[p][2] != "Z"]


def _follow(known: dict[int, int], table: dict[int, tuple[int, int, str]] | None = None) -> None:
    """Add every live descendant of the known processes (pid → start time)."""
    table = _table() if table is None else table
    kids: dict[int, list[int]] = {}
    for p, (parent, _, _) in table.items():
        kids.setdefault(parent, []).append(p)
    todo = _alive(known, table)
    while todo:
        for kid in kids.get(todo.pop(), []):
            if kid not in known:
                known[kid] = table[kid][1]
                todo.append(kid)


def stop_processes(known: dict[int, int], grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every known process still alive (same pid and start time), SIGKILL what is left after
    `grace_s`;
    returns the pids still alive at the end (none, unless a process cannot be killed)."""
    _follow(known)
    alive = _alive(known, _table())
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for p in alive:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = _alive({p: known[p] for p in alive}, _table())
        if not alive:
            break
    return alive


def reaper_main() -> None:
    """The watcher process: JSON lines on stdin (`roots`, `watch`, `forget`); the driver's end closing — or
    the driver dying, which hands this process to another parent — means: stop Ray's processes, clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    driver = os.getppid()
    known: dict[int, int] = {}
    folders: set[str] = set()
    stdin = sys.stdin.buffer
    pending = b""
    while True:
        ready, _, _ = select.select([stdin], [], [], REFRESH_S)
        if ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                table = _table()
                known.update({pid: table[pid][1] for pid in msg.get("roots", []) if pid in table})
                if "watch" in msg:
                    folders.add(msg["watch"])
                folders.discard(msg.get("forget"))
        if os.getppid() != driver:
            break
        _follow(known)
    stop_processes(known)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
