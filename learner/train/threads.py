"""CPU threads for training. torch's OpenMP threads spin while they wait for each other; when another
process takes one of the cores, every parallel operation waits for the descheduled thread and an epoch
takes several times longer (bench/RESULTS.md, "Threads on a busy CPU").

Importing this module does not import torch: the OpenMP settings must be in the environment before torch
loads its OpenMP runtime, so a job calls `configure_threads` first.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(setting: str | int = "auto") -> int:
    """Set training's CPU threads and return their number.

    "auto": the cores shared out among the processes of a run on this machine (a launcher's
    LOCAL_WORLD_SIZE), and OpenMP threads that sleep instead of spin while they wait
    (OMP_WAIT_POLICY=PASSIVE), unless the environment already says otherwise (OMP_NUM_THREADS,
    OMP_WAIT_POLICY). A number: exactly that many threads.
    """
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if setting == "auto":
        n = int(os.environ.get("OMP_NUM_THREADS") or max(1, usable_cores() // processes))
        wait = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    else:
        n = int(setting)
        if n < 1:
            raise ValueError(f"threads={setting}: expected 'auto' or a number ≥ 1")
        wait = os.environ.get("OMP_WAIT_POLICY", "default")
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:  # too late for the wait policy; the thread count still applies
        import torch

        torch.set_num_threads(n)
    log.debug("%d CPU thread(s), OpenMP wait policy %s", n, wait)
    return n
