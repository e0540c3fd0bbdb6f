"""The demo's disk: uploads and outputs live in one folder (Gradio's cache, `GRADIO_TEMP_DIR`) under a budget.

Gradio only caps each file (`max_file_size`) and deletes old files on a timer (`delete_cache`), so ten quick
50 MB uploads add 500 MB, and a kill -9 leaves them forever (issue 25). Here, before Gradio reads an upload:
its declared size (Content-Length) must fit the client's share (bytes sent in the last `max_age_s`) and the
total; to make room the oldest files are evicted, except those younger than `grace_s` (an upload that may
still be in use); otherwise it is refused with one line (507 full, 429 for one client's share, 411 for an
upload that does not say its size). Files older than `max_age_s` go at start (what a killed demo left) and on
a timer; outputs (events CSVs) are written inside the same folder, so Gradio serves them without a second
copy and the same sweep removes them once delivered.

Walking the folder costs a stat per file, and a streaming microphone is an upload every 0.1 s (Gradio 6.31's
recorder, whatever `stream_every` says; each a folder of its own for 15 minutes: thousands of files). So the
folder is walked at most every `refresh_s`, or sooner when an upload might not fit: between walks, what it
held at the last walk plus every byte admitted since is an upper bound on what it holds (only uploads pass
here; outputs written in the meantime are seen at the next walk, within `refresh_s`). Refusals and evictions
are decided on a fresh walk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MB = 2**20
OUTPUTS = "earshot-outputs"  # the demo's own outputs, beside Gradio's uploads
OUTPUT_DIR_MIN_AGE_S = 60.0  # an empty output folder younger than this is about to be written into
UPLOAD_ROUTES = ("/upload", "/process_recording")  # what writes request bodies into the cache


@dataclass
class DiskBudget:
    """Bytes the demo may keep on disk, in total and per client; see the module docstring."""

    root: Path
    total_bytes: int = 2048 * MB
    client_bytes: int = 512 * MB
    max_age_s: float = 900.0
    grace_s: float = 60.0
    every_s: float = 60.0
    refresh_s: float = 5.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _reserved: int = 0
    _sent: dict[str, deque] = field(default_factory=lambda: defaultdict(deque), repr=False)
    _timer: threading.Thread | None = field(default=None, repr=False)
    _held: int = 0  # bytes the folder held at the last walk
    _since: int = 0  # bytes admitted since the last walk (and those in flight then)
    _walked_at: float = float("-inf")  # monotonic time of the last walk
    walks: int = 0  # folder walks so far (tests: uploads that fit do not walk)

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> DiskBudget:
        """The budget for Gradio's cache folder; `EARSHOT_DEMO_DISK_MB`, `EARSHOT_DEMO_CLIENT_MB`,
        `EARSHOT_DEMO_KEEP_S` (the longest a file stays) and `EARSHOT_DEMO_GRACE_S` override the defaults."""
        from gradio.utils import get_upload_folder

        env = os.environ.get
        return cls(
            Path(root or get_upload_folder()),
            total_bytes=int(float(env("EARSHOT_DEMO_DISK_MB", 2048)) * MB),
            client_bytes=int(float(env("EARSHOT_DEMO_CLIENT_MB", 512)) * MB),
            max_age_s=float(env("EARSHOT_DEMO_KEEP_S", 900)),
            grace_s=float(env("EARSHOT_DEMO_GRACE_S", 60)),
            every_s=min(60.0, float(env("EARSHOT_DEMO_KEEP_S", 900)) / 2),
        )

    @property
    def outputs(self) -> Path:
        """Where the demo writes what it hands back (inside the cache: served as is, swept like uploads)."""
        path = self.root / OUTPUTS
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every file under the root, oldest first."""
        self.walks += 1
        found = []
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue  # deleted meanwhile (Gradio's own sweep, a finished request)
                found.append((st.st_mtime, st.st_size, p))  # Gradio touches a cached file it hands out again
        return sorted(found)

    def usage(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _evict(self, need: int, older_than_s: float) -> int:
        """Delete files older than `older_than_s`, oldest first, until `need` bytes are free (need < 0:
        every such file). Returns the bytes the folder then holds."""
        files, now = self._files(), time.time()
        held = sum(size for _, size, _ in files)
        for t, size, p in files:
            if need >= 0 and held + self._reserved + need <= self.total_bytes:
                break
            if now - t < older_than_s:
                if need < 0:
                    continue
                break  # the rest are younger still
            try:
                p.unlink()
                held -= size
            except OSError:
                pass
        self._remove_empty_dirs()
        self._held, self._since, self._walked_at = held, self._reserved, time.monotonic()
        return held

    def _fits_unwalked(self, size: int) -> bool:
        """An upload of `size` surely fits without walking the folder: the last walk is recent and what it
        found plus everything admitted since leaves room."""
        fresh = time.monotonic() - self._walked_at < self.refresh_s
        return fresh and self._held + self._since + size <= self.total_bytes

    def _remove_empty_dirs(self) -> None:
        """Folders emptied by evictions go. The outputs folder stays, and so does a folder in it made in
        the last `OUTPUT_DIR_MIN_AGE_S` (a request makes it, then writes into it: a sweep in between made the
        request fail with FileNotFoundError)."""
        outputs, now = self.root / OUTPUTS, time.time()
        for dirpath, dirs, names in os.walk(self.root, topdown=False):
            p = Path(dirpath)
            if dirs or names or p in (self.root, outputs):
                continue
            try:
                if p.parent == outputs and now - p.stat().st_mtime < OUTPUT_DIR_MIN_AGE_S:
                    continue
                os.rmdir(p)
            except OSError:
                pass

    def sweep(self) -> int:
        """Files older than `max_age_s` go, then the oldest past `grace_s` until the total fits; returns the
        bytes held."""
        with self._lock:
            self._evict(-1, self.max_age_s)
            return self._evict(0, self.grace_s)

    def admit(self, client: str, size: int) -> tuple[int, str] | None:
        """None when an upload of `size` bytes from `client` fits (its bytes are then reserved until
        `release`), else (HTTP status, one-line reason)."""
        now = time.time()
        with self._lock:
            sent = self._sent[client]
            while sent and now - sent[0][0] > self.max_age_s:
                sent.popleft()
            if sum(n for _, n in sent) + size > self.client_bytes:
                return 429, (
                    f"upload refused: this client sent {sum(n for _, n in sent) / MB:.0f} MB in the last "
                    f"{self.max_age_s / 60:g} min (the demo allows {self.client_bytes / MB:g} MB); try later"
                )
            if size > self.total_bytes or not (
                self._fits_unwalked(size)
                or self._evict(size, self.grace_s) + self._reserved + size <= self.total_bytes
            ):
                return 507, "upload refused: the demo's disk space for uploads is in use; try again shortly"
            sent.append((now, size))
            self._since += size
            self._reserved += size
        return None

    def release(self, size: int) -> None:
        with self._lock:
            self._reserved -= size

    def start(self) -> DiskBudget:
        """Sweep now (what an earlier, killed demo left) and every `every_s` seconds in the background."""
        held = self.sweep()
        log.info("demo disk: %s holds %.1f MB of %.0f MB", self.root, held / MB, self.total_bytes / MB)
        if self._timer is None:
            self._timer = threading.Thread(target=self._sweep_forever, name="earshot-disk", daemon=True)
            self._timer.start()
        return self

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(self.every_s)
            try:
                self.sweep()
            except Exception:  # a sweep must never stop the demo
                log.exception("demo disk sweep failed")


ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class UploadBudget:
    """ASGI middleware: each upload is admitted by the `DiskBudget` before its body is read."""

    def __init__(self, app: ASGIApp, budget: DiskBudget) -> None:
        self.app, self.budget = app, budget

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "").rstrip("/")
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.endswith(UPLOAD_ROUTES):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if not length.isdigit():
            return await _refuse(receive, send, 411, "upload refused: it must say its size (Content-Length)")
        size = int(length)
        client = (scope.get("client") or ("unknown",))[0]
        refused = await asyncio.to_thread(self.budget.admit, client, size)
        if refused:
            log.info("demo disk: %s (%s, %d bytes)", refused[1], client, size)
            return await _refuse(receive, send, *refused)
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(size)  # the file is on disk now (and counted there), or it was never kept


async def _refuse(receive: Any, send: Any, status: int, message: str) -> None:
    """Read the body to its end (nothing is kept: a client still sending would otherwise see a broken pipe,
    not the reason), then answer `status` with the one-line `message`."""
    more = True
    while more:
        event = await receive()
        more = event.get("type") == "http.request" and event.get("more_body", False)
    body = message.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
