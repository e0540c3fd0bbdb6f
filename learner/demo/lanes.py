"""Two lanes for the demo, so that a long upload never starves short ones.

A 10-minute upload is allowed and costs seconds of CPU (decoding, resampling, a thousand windows); on the
Space's 2 cores two such uploads made a third user's 3 s clip wait 87–99 s (issue 13). So:

- **short lane**: every request is first tried in the server process, at most `short_slots` at once, with a
  decoding limit of `short_s` seconds of 48 kHz stereo (rate × channels × seconds, `learner.audio.limits`).
  A header over that limit is refused in well under a millisecond, so trying costs a long file nothing;
- **long lane**: what the short lane refuses as too long goes to one worker process of its own (same model
  folder and backend, lowered CPU priority, one thread), one request at a time, at most `long_slots` admitted
  (one running, the rest waiting; more are turned away at once with a message), each under a wall-clock
  budget after which the worker is stopped and replaced. A worker that dies (out of memory, a crash) takes
  only its request with it.

Uploads over the demo's own limits (size, or samples from the header) are refused at once in the server
process, never queued behind long work. `Lanes.run(task, path, ...)` runs `classify` or `find_events_in`.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import select
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learner.audio import DEMO_MAX_BYTES, DEMO_MAX_S, AudioDecodeError, TooLongError
from learner.demo.classify import classify
from learner.demo.events import find_events_in
from learner.demo.live import score_windows
from learner.serve.predictor import Predictor
from learner.workers import exit_with_parent, receive_frame, send_frame, stop_process

SHORT_LANE_S = 30.0  # at most this much audio (as 48 kHz stereo samples) is served in the server process
SHORT_SLOTS = 2  # short requests computing at once (the Space has 2 cores)
LONG_SLOTS = 3  # long requests admitted at once: one in the worker, the others waiting their turn
LONG_BUDGET_S = 300.0  # wall-clock seconds one long request may take in the worker
SHORT_BUDGET_S = 60.0  # the same for a short request in a short-lane worker (`short_workers`)
LONG_NICE = 10  # the worker's CPU priority below the server's: short requests win the cores
LIVE_NICE = 5  # the live lane's worker: below short uploads, above long ones (learner/demo/live_lane.py)
LIVE_BUDGET_S = 10.0  # wall-clock seconds for one streamed chunk's windows (tens of milliseconds)
WORKER_START_S = 180.0  # loading the model in a fresh worker (torch imports slowly on a busy machine)
LANES_ENV = "EARSHOT_LONG_LANE"  # "off": every request in the server process, as before issue 13
ROOT = Path(__file__).resolve().parents[2]
TASKS: dict[str, Callable[..., Any]] = {"classify": classify, "events": find_events_in, "live": score_windows}
_log = logging.getLogger(__name__)


class LaneError(RuntimeError):
    """The long lane cannot take this request now (busy, over budget, worker died); the message says why."""


class UploadRefused(ValueError):
    """The worker refused the upload itself (undecodable, too long): its message, as the server would say
    it."""


def worker_main() -> None:
    """The long lane's process: read the model recipe, load it, then answer one request after another.

    Replies go to a private copy of stdout; stdout itself is pointed at stderr so that a library printing
    something can never corrupt a reply. The process ends when the server closes its pipe (or dies)."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    recipe = receive_frame(requests)
    exit_with_parent(recipe.pop("server"))
    os.nice(recipe.pop("nice"))
    predictor = Predictor.from_dir(recipe.pop("folder"), **recipe)
    send_frame(replies, ("ready", os.getpid()))
    while True:
        try:
            task, path, args, kwargs = receive_frame(requests)
        except EOFError:
            return
        try:
            reply: tuple = ("ok", TASKS[task](predictor, path, *args, **kwargs))
        except TooLongError as e:
            reply = ("too long", e.path, e.reason)
        except (AudioDecodeError, ValueError) as e:
            reply = ("refused", str(e))
        except Exception as e:
            reply = ("failed", f"{type(e).__name__}: {e}", traceback.format_exc())
        try:
            send_frame(replies, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # a result that cannot travel
            send_frame(replies, ("failed", f"{type(e).__name__}: {e}", traceback.format_exc()))


class LaneWorker:
    """One child process with its own Predictor (niced for the long lane), fed one request at a time, started
    on
    first use and replaced when it dies or overruns its budget. `serves` names it in messages."""

    def __init__(
        self,
        recipe: dict[str, Any],
        *,
        budget_s: float = LONG_BUDGET_S,
        nice: int = LONG_NICE,
        serves: str = "long recordings",
    ) -> None:
        self.recipe = {**recipe, "nice": nice}
        self.serves = serves
        self.budget_s = budget_s
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one request in the worker at a time
        self.started = 0  # worker processes started so far (tests: a dead one is replaced)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", "from learner.demo.lanes import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        self.started += 1
        try:
            send_frame(proc.stdin, {**self.recipe, "server": os.getpid()})
            kind, _ = self._reply(proc, WORKER_START_S, "loading the model")
        except TimeoutError as e:
            self._stop(proc)
            raise LaneError(f"the worker for {self.serves} did not start: {e}") from None
        except BaseException:
            self._stop(proc)
            raise
        if kind != "ready":
            self._stop(proc)
            raise LaneError(f"the worker for {self.serves} could not start ({kind})")
        return proc

    def _running(self) -> subprocess.Popen:
        """The worker process, started first if it never started or died (called with `_lock` held)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        return self._proc

    def _reply(self, proc: subprocess.Popen, timeout_s: float, doing: str) -> tuple:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError(f"{doing} took over {timeout_s:g} s")
        try:
            return receive_frame(proc.stdout)
        except EOFError:
            code = proc.wait(timeout=5)
            why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            raise LaneError(
                f"the worker for {self.serves} stopped while {doing} ({why}"
                f"{', out of memory?' if code == -signal.SIGKILL else ''})"
            ) from None

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        stop_process(proc)

    def call(self, task: str, path: Any, args: tuple, kwargs: dict[str, Any], name: str = "") -> Any:
        """`TASKS[task](predictor, path, *args, **kwargs)` in the worker; its result, or its error raised
        here. `path` is the upload (or, for the live lane, the samples: then `name` says what they are)."""
        name = name or Path(path).name
        with self._lock:
            proc = self._running()
            try:
                send_frame(proc.stdin, (task, path, args, kwargs))
                reply = self._reply(proc, self.budget_s, f"reading {name}")
            except TimeoutError:
                self._stop(proc)
                raise LaneError(
                    f"{name}: stopped after {self.budget_s:g} s, this demo's budget for one "
                    f"of its {self.serves}; try a shorter part of it"
                ) from None
            except (LaneError, BrokenPipeError) as e:
                self._stop(proc)
                raise LaneError(f"{name}: {e}") from None
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "too long":
            raise TooLongError(reply[1], reply[2])
        if reply[0] == "refused":
            raise UploadRefused(reply[1])
        _log.error("the worker for %s failed on %s:\n%s", self.serves, name, reply[2])
        raise RuntimeError(reply[1])

    def warm(self) -> None:
        """Start the process now if it never started or died, so the next call does not wait for it; a
        failure is logged, and `call` tries again."""
        try:
            with self._lock:
                self._running()
        except Exception as e:
            _log.warning("a demo worker process did not start: %s", e)

    def close(self) -> None:
        """Stop the worker now (without waiting for a request in progress: that one gets a LaneError)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def plan(path: str | Path, short_s: float) -> str:
    """From the file's size and header alone (no decoding): "refuse" (over the demo's own limits, or not a
    readable file: the decoder says why at once), "long" (over the short lane's limit) or "try" (short, or the
    header cannot tell: the short lane finds out while decoding)."""
    from learner.audio.limits import SAMPLES_PER_LIMIT_S, header_samples
    from learner.audio.readers import SF_MAGIC

    try:
        st = os.stat(path)
    except OSError:
        return "refuse"
    if not stat.S_ISREG(st.st_mode) or st.st_size > DEMO_MAX_BYTES:
        return "refuse"
    with open(path, "rb") as f:
        head = f.read(64)
    stated = header_samples(str(path), head, SF_MAGIC)
    if stated is None:
        return "try"
    rate, channels, seconds = stated
    if seconds > DEMO_MAX_S or rate * channels * seconds > DEMO_MAX_S * SAMPLES_PER_LIMIT_S:
        return "refuse"
    return "long" if seconds > short_s or rate * channels * seconds > short_s * SAMPLES_PER_LIMIT_S else "try"


class Lanes:
    """Where a demo request runs: `run("classify" | "events", path, ...)` → what that function returns."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        short_s: float = SHORT_LANE_S,
        short_slots: int = SHORT_SLOTS,
        long_slots: int = LONG_SLOTS,
        budget_s: float = LONG_BUDGET_S,
        nice: int = LONG_NICE,
        enabled: bool | None = None,
        short_workers: int = 0,
    ) -> None:
        """`short_workers` > 0 serves short requests in that many worker processes (at the server's priority)
        instead of threads of the server process: the server then only does Gradio's share of a request, and
        two short clips are classified on two cores at once instead of taking turns with the GIL."""
        self.predictor = predictor
        self.short_s, self.long_slots = short_s, long_slots
        self._short = threading.BoundedSemaphore(short_slots)
        self._admit = threading.Lock()
        self.long_admitted = 0
        # Gradio's limit: long ones waiting never block short ones
        self.gradio_slots = short_slots + long_slots
        if enabled is None:
            enabled = os.environ.get(LANES_ENV, "on").lower() not in ("off", "0", "false", "no")
        recipe = self.recipe(predictor)
        if enabled and recipe is None:
            _log.warning("long uploads share the server process: the model was not loaded from a folder")
        self.worker = LaneWorker(recipe, budget_s=budget_s, nice=nice) if enabled and recipe else None
        self.short_workers: queue.SimpleQueue = queue.SimpleQueue()  # idle short-lane workers
        self._all_short: list[LaneWorker] = []
        if self.worker is not None and short_workers > 0:
            self._all_short = [
                LaneWorker(recipe, budget_s=SHORT_BUDGET_S, nice=0, serves="short clips")
                for _ in range(min(short_workers, short_slots))
            ]
            for w in self._all_short:
                self.short_workers.put(w)
        self.live_worker = (  # the Live tab's windows (learner/demo/live_lane.py)
            LaneWorker(recipe, budget_s=LIVE_BUDGET_S, nice=LIVE_NICE, serves="live streams")
            if self.worker is not None
            else None
        )
        atexit.register(self.close)

    @staticmethod
    def recipe(predictor: Predictor) -> dict[str, Any] | None:
        """How the worker loads the same model (None: this Predictor was not loaded from a folder)."""
        backend = getattr(predictor.backend, "name", None)
        if predictor.folder is None or backend not in ("torch", "onnx", "onnx-int8"):
            return None
        return {
            "folder": os.path.abspath(predictor.folder),  # the worker runs in the package root
            "backend": backend,
            "threads": 1,
            "model_id": predictor.model_id,
            "revision": predictor.revision,
            "batch_size": predictor.batch_size,
        }

    def _workers(self) -> list[LaneWorker]:
        return [w for w in (self.worker, self.live_worker) if w is not None] + self._all_short

    def warm(self) -> None:
        """Start the workers in the background now, so the first uploads do not wait for them."""
        for w in self._workers():
            threading.Thread(target=w.warm, daemon=True).start()

    def _short_call(self, task: str, path: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        fn = TASKS[task]
        if not self._all_short:
            return fn(self.predictor, path, *args, max_duration_s=self.short_s, **kwargs)
        worker = self.short_workers.get()  # the semaphore guarantees one is idle
        try:
            return worker.call(task, str(path), args, {**kwargs, "max_duration_s": self.short_s})
        finally:
            self.short_workers.put(worker)

    def run(self, task: str, path: str | None, *args: Any, **kwargs: Any) -> Any:
        fn = TASKS[task]
        if self.worker is None:
            with self._short:
                return fn(self.predictor, path, *args, **kwargs)
        where = plan(path, self.short_s) if path else "refuse"
        if where == "refuse":  # refused at once by the demo's own limits: no slot, no queue
            return fn(self.predictor, path, *args, **kwargs)
        if where == "try":
            try:
                with self._short:
                    return self._short_call(task, path, args, kwargs)
            except TooLongError:
                pass  # longer than its header said (or it said nothing): the long lane's turn
        with self._admit:
            if self.long_admitted >= self.long_slots:
                raise LaneError(
                    f"{Path(path).name}: {self.long_admitted} long recordings are already being read or "
                    f"waiting; try again in a minute, or send up to {self.short_s:g} s"
                )
            self.long_admitted += 1
        t0 = time.perf_counter()
        try:
            return self.worker.call(task, str(path), args, kwargs)
        finally:
            with self._admit:
                self.long_admitted -= 1
            _log.info("long lane: %s in %.1f s", Path(path).name, time.perf_counter() - t0)

    def close(self) -> None:
        for w in self._workers():
            w.close()
