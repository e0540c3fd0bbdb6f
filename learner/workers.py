"""Supervised worker processes: the one place that starts children, feeds them, watches their time budget
and replaces them when they die or overrun. The scorer's decoding pool (`DecodePool`) and the demo's lanes
(`learner.demo.lanes`: `send_frame` / `receive_frame`, `exit_with_parent`, `stop_process`) use it.

The pool decodes files under a per-file time limit.

`concurrent.futures` cannot stop one stuck task: a decoder looping inside C (a hostile file, a hung network
mount) keeps its worker forever, and killing that worker breaks the whole pool. Here each worker has its own
pipe; a dispatcher thread in the parent feeds them, collects results while the main thread runs the model,
kills a worker whose current file passes the time limit (that file becomes an error row, "decode timed out
after N s"), and starts a fresh one. A worker that dies (a segfault in a codec, the OOM killer) costs one
error row the same way. Workers are spawned (never forked from a process running torch threads).

With `stream=True` the function also gets `emit`: a long file's samples go to the parent in parts as they
are decoded (`learner.score.streamed`), each part waiting for the parent's go-ahead, so at most
`part_buffer` parts wait in the parent; the time limit then counts per part.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import pickle
import queue
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

_DONE = object()
_READY = -1  # a worker's first message: imports done, the time limit starts counting from here
_PART = -2  # a worker's message carrying one part of a streamed result
_GO = "go"  # the parent's go-ahead for a worker's next part


class _Stop(BaseException):
    """The parent closed the pool while a worker waited to send its next part."""


class _Part:
    def __init__(self, value: Any) -> None:
        self.value = value


def _worker(conn: Connection, fn: Callable, args: tuple, stream: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    backlog: collections.deque = collections.deque()  # tasks that arrived while waiting for a go-ahead

    def emit(part: Any) -> None:
        conn.send((_PART, part))
        while (msg := conn.recv()) != _GO:
            if msg is None:
                raise _Stop
            backlog.append(msg)

    try:
        conn.send((_READY, None))
        while True:
            msg = backlog.popleft() if backlog else conn.recv()
            if msg is None:
                return
            i, task = msg
            conn.send((i, fn(task, *args, emit=emit) if stream else fn(task, *args)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt, _Stop):
        return  # the parent went away


def _send(conn: Connection, msg: Any) -> None:
    try:
        conn.send(msg)
    except OSError:
        pass  # the worker died: its sentinel tells the dispatcher


def array_bytes(result: Any) -> int:
    """Bytes of the NumPy arrays a result holds (a decoded item's signal or clip)."""
    import numpy as np

    fields = vars(result).values() if hasattr(result, "__dict__") else ()
    return sum(v.nbytes for v in fields if isinstance(v, np.ndarray))


class _Slot:
    def __init__(self, ctx: Any, fn: Callable, args: tuple, stream: bool = False) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, fn, args, stream), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: collections.deque[tuple[int, Any]] = collections.deque()
        self.since = time.monotonic()  # when the head of `inflight` started
        self.ready = False  # a spawned worker imports first (seconds on a busy machine): not the file's time
        self.owed = False  # sent a part and waits for the go-ahead (not decoding: no time limit)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.proc.kill()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class DecodePool:
    """`imap_unordered(tasks)` yields `fn(task, *args)` for every task, computed in `workers` processes.

    At most `buffer` results, and about `max_bytes` of their arrays, wait unconsumed (back-pressure: memory
    stays bounded while the consumer is busy, whether the files are 1 s clips or 10-minute recordings). A task
    running longer than `timeout_s` yields `on_error(task, "decode timed out after N s")`.
    """

    def __init__(
        self,
        fn: Callable,
        args: tuple,
        workers: int = 1,
        timeout_s: float = 120.0,
        buffer: int = 64,
        depth: int = 4,
        stream: bool = False,
        part_buffer: int = 2,
        max_bytes: int = 256 * 2**20,
    ) -> None:
        self.fn, self.args, self.n, self.max_bytes = fn, args, max(1, workers), max_bytes
        self.stream, self.part_buffer = stream, max(1, part_buffer)
        self.timeout_s, self.buffer, self.depth = timeout_s, max(1, buffer), max(1, depth)
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._stop = threading.Event()

    def __enter__(self) -> DecodePool:
        self._slots = [_Slot(self._ctx, self.fn, self.args, self.stream) for _ in range(self.n)]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for s in self._slots:
            s.stop(kill=bool(s.inflight))
        self._slots = []

    def imap_unordered(self, tasks: Iterable[Any], on_error: Callable[[Any, str], Any]) -> Iterator[Any]:
        out: queue.Queue = queue.Queue()
        pending = collections.deque(enumerate(tasks))
        taken = threading.Semaphore(0)  # results consumed: lets the dispatcher send more
        self._freed: queue.SimpleQueue = queue.SimpleQueue()  # bytes of the results consumed
        taken_parts = threading.Semaphore(0)  # parts consumed: lets the dispatcher give go-aheads
        self._stop = threading.Event()  # one per call: the pool serves many calls (a Ray actor's batches)
        t = threading.Thread(
            target=self._dispatch, args=(pending, out, on_error, taken, taken_parts), daemon=True
        )
        t.start()
        try:
            while True:
                r = out.get()
                if r is _DONE:
                    return
                if isinstance(r, BaseException):
                    raise r
                if isinstance(r, _Part):
                    taken_parts.release()
                    yield r.value
                    continue
                self._freed.put(array_bytes(r))
                taken.release()
                yield r
        finally:
            self._stop.set()
            t.join()

    def _dispatch(
        self,
        pending: collections.deque,
        out: queue.Queue,
        on_error: Callable,
        taken: threading.Semaphore,
        taken_parts: threading.Semaphore,
    ) -> None:
        try:
            d = _Dispatch(self, pending, out, on_error, taken, taken_parts)
            while not self._stop.is_set() and d.step():
                pass
        except BaseException as e:  # surface dispatcher failures in the consumer instead of hanging it
            out.put(e)
        out.put(_DONE)

    def _replace(
        self, s: _Slot, pending: collections.deque, out: queue.Queue, on_error: Callable, why: str
    ) -> None:
        """Kill a stuck or dead worker: its current task becomes an error, the rest go back to the queue."""
        s.stop(kill=True)
        _, task = s.inflight.popleft()
        out.put(on_error(task, why))
        pending.extendleft(reversed(s.inflight))
        s.inflight.clear()
        self._slots[self._slots.index(s)] = _Slot(self._ctx, self.fn, self.args, self.stream)


class _Dispatch:
    """One `imap_unordered` call's bookkeeping in the dispatcher thread: results and parts produced but not
    consumed (back-pressure), then per step: go-aheads, top-ups, replies, and the time limit."""

    def __init__(self, pool: DecodePool, pending, out, on_error, taken, taken_parts) -> None:
        self.pool, self.pending, self.out, self.on_error = pool, pending, out, on_error
        self.taken, self.taken_parts = taken, taken_parts
        self.waiting = self.parts = self.waiting_bytes = 0

    def step(self) -> bool:
        """One round; False when every task is done."""
        self._settle()
        self._go_aheads()
        busy = sum(len(s.inflight) for s in self.pool._slots)
        if not self.pending and not busy:
            return False
        self._top_up(busy)
        self._collect()
        self._police(time.monotonic())
        return True

    def _settle(self) -> None:
        while self.taken.acquire(blocking=False):
            self.waiting -= 1
        while not self.pool._freed.empty():
            self.waiting_bytes -= self.pool._freed.get()
        while self.taken_parts.acquire(blocking=False):
            self.parts -= 1

    def _go_aheads(self) -> None:
        for s in self.pool._slots:
            if s.owed and self.parts < self.pool.part_buffer:
                s.owed, s.since = False, time.monotonic()
                _send(s.conn, _GO)

    def _room(self, s: _Slot, busy: int) -> bool:
        pool = self.pool
        return (
            bool(self.pending)
            and len(s.inflight) < pool.depth
            and busy + self.waiting < pool.buffer
            and self.waiting_bytes < pool.max_bytes
        )

    def _top_up(self, busy: int) -> None:
        """Feed each worker while there is room downstream."""
        for s in self.pool._slots:
            while self._room(s, busy):
                i, task = self.pending.popleft()
                if not s.inflight:
                    s.since = time.monotonic()
                s.inflight.append((i, task))
                busy += 1
                try:
                    s.conn.send((i, task))
                except OSError:  # the worker died on its current file
                    busy -= len(s.inflight)
                    self._replace(s, f"decoder process died (exit code {s.proc.exitcode})")
                    break

    def _collect(self) -> None:
        """Read every reply that is there (or wait a little for one)."""
        slots = self.pool._slots
        conns = {s.conn: s for s in slots if s.inflight}
        sentinels = {s.proc.sentinel: s for s in slots if s.inflight}
        ready = wait(list(conns) + list(sentinels), timeout=0.05) if conns else []
        if not conns:
            time.sleep(0.005)
        for r in ready:
            s = conns.get(r)
            if s is None or s not in slots:
                continue
            try:
                while s.conn.poll():
                    self._receive(s, *s.conn.recv())
            except (EOFError, OSError):
                pass  # died mid-send: `_police` handles it

    def _receive(self, s: _Slot, i: int, result: Any) -> None:
        if i == _READY:
            s.ready, s.since = True, time.monotonic()
        elif i == _PART:
            self.out.put(_Part(result))
            self.parts += 1
            s.since, s.owed = time.monotonic(), True
            if self.parts <= self.pool.part_buffer:
                s.owed = False
                _send(s.conn, _GO)
        else:
            s.inflight.popleft()
            s.since = time.monotonic()
            self.out.put(result)
            self.waiting += 1
            self.waiting_bytes += array_bytes(result)

    def _police(self, now: float) -> None:
        """Replace a worker that died, overran the time limit, or never started."""
        timeout = self.pool.timeout_s
        for s in list(self.pool._slots):
            if not s.inflight or (s.owed and s.proc.is_alive()):
                continue
            if not s.proc.is_alive():
                why = f"decoder process died (exit code {s.proc.exitcode})"
            elif s.ready and now - s.since > timeout:
                why = f"decode timed out after {timeout:g} s"
            elif not s.ready and now - s.since > max(timeout, 120.0):
                why = "decoder process did not start"
            else:
                continue
            self._replace(s, why)

    def _replace(self, s: _Slot, why: str) -> None:
        self.pool._replace(s, self.pending, self.out, self.on_error, why)
        self.waiting += 1


# --- the demo lanes' children: framed messages over a pipe, and an end tied to the server's -------------


def send_frame(stream: Any, obj: Any) -> None:
    """One message (length-prefixed pickle) to our own child process or parent."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def receive_frame(stream: Any) -> Any:
    """One message from our own worker (length-prefixed pickle); EOFError when the other side is gone."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("worker closed its pipe")
    n = struct.unpack("<Q", head)[0]
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("worker closed its pipe mid-message")
    return pickle.loads(data)  # noqa: S301 (our own child process, never a user's bytes)


def exit_with_parent(parent: int) -> None:
    """End this worker within a second of its parent's death (even by SIGKILL), not after a long read for
    nobody: a daemon thread watching the parent's pid."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def stop_process(proc: subprocess.Popen) -> None:
    """Kill a child now and reap it, closing its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
