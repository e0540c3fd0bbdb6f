"""Resumable, checksum-verified downloads into `.part` files, and safe extraction (used by dataset recipes).

Offline, every failure is one line naming the way out (`--from` a copy fetched elsewhere, or the offline
`spoken-digits-synth`).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import tarfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

OFFLINE_HINT = "download it elsewhere and give source=ARCHIVE/DIR, or use data=spoken-digits-synth"


class DatasetError(RuntimeError):
    """A dataset cannot be found, fetched or indexed; the message is one line saying what to do."""


class DatasetDownloadError(DatasetError):
    """A download failed (offline, HTTP error, interrupted); a `.part` file is kept for resuming."""


class ChecksumMismatchError(DatasetDownloadError):
    """The downloaded bytes are not the published ones; the file is deleted."""


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a checksum (none is published for it)."""


# --- download
# ---------------------------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    r = getattr(e, "reason", e)
    if isinstance(r, socket.gaierror):
        return "name resolution failed (offline?)"
    if isinstance(r, ConnectionRefusedError):
        return "connection refused"
    if isinstance(r, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(r, OSError) and r.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable"
    return " ".join(str(r).split()) or type(r).__name__


def _file_hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(
    path: Path, *, sha256: str = "", md5: str = "", title: str = "", delete: bool = True
) -> None:
    """sha256 (else md5) must match (a bad download is deleted; a user's --from file never is).

    None published → `UnverifiedDownloadWarning`, never a silent pass."""
    algo, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if not expected:
        msg = f"{title or path.name}: no published checksum for {path.name}; verification skipped"
        warnings.warn(msg, UnverifiedDownloadWarning, stacklevel=3)
        return
    got = _file_hash(path, algo)
    if got.lower() != expected.lower():
        if delete:
            path.unlink(missing_ok=True)
        fix = (
            "the file was deleted — run again to retry"
            if delete
            else "is it the right file? (verify=False skips)"
        )
        raise ChecksumMismatchError(
            f"{title or path.name}: checksum mismatch for {path.name} ({algo} expected "
            f"{expected[:16]}…, got {got[:16]}…); {fix}"
        )


class _Unreachable(Exception):
    """This URL failed before any byte arrived (the next URL is tried)."""


_NET_ERRORS = (urllib.error.URLError, OSError, ValueError, http.client.HTTPException)


def _get(url: str, part: Path, progress: bool, timeout: float, title: str) -> tuple[int, int | None, str]:
    """One HTTP GET appending to `part` from its current size → (bytes on disk, expected total, error
    text)."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "earshot-datasets/1", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part is complete
            return offset, offset, ""
        raise _Unreachable(f"{url} answered HTTP {e.code} {e.reason}") from None
    except _NET_ERRORS as e:
        raise _Unreachable(f"cannot reach {url}: {_reason(e)}") from None
    with resp:
        if not (
            offset
            and resp.status == 206
            and resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        ):
            offset = 0  # the server ignored the range: start again
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length else None
        got, err = offset, ""
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        )
        with open(part, "ab" if offset else "wb") as f, bar:
            try:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except _NET_ERRORS as e:
                err = _reason(e) or "connection lost"
    return got, total, err


def download(
    urls: str | Sequence[str],
    dest: str | Path,
    *,
    sha256: str = "",
    md5: str = "",
    verify: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    title: str = "",
) -> Path:
    """Fetch into `dest.part` (resuming with HTTP Range), verify, then rename to `dest`.

    URLs are tried in order; an interrupted transfer is resumed until `retries` attempts in a row bring no new
    bytes, and a `.part` left by an earlier run is resumed too. An existing `dest` is taken as already
    verified.
    """
    urls, dest = ([urls] if isinstance(urls, str) else list(urls)), Path(dest)
    title = title or dest.name
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failure = ""
    for url in urls:
        stalls = 0
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                got, total, err = _get(url, part, progress, timeout, title)
            except _Unreachable as e:
                got, failure = before, str(e)
            else:
                if (total is None and not err) or (total is not None and got >= total):
                    if verify:
                        verify_checksum(part, sha256=sha256, md5=md5, title=title)
                    else:
                        warnings.warn(
                            f"{title}: checksum verification disabled", UnverifiedDownloadWarning, 2
                        )
                    os.replace(part, dest)
                    return dest
                of = f" of {total / 1e6:.1f}" if total else ""
                failure = (
                    f"download interrupted at {got / 1e6:.1f}{of} MB ({err or 'connection closed early'})"
                )
            stalls = 0 if got > before else stalls + 1
            if got == 0 or stalls > retries:  # unreachable from the start, or stuck: next URL
                break
            time.sleep(min(2.0, 0.2 * stalls))
    if part.exists() and part.stat().st_size:
        raise DatasetDownloadError(f"{title}: {failure}; the partial file is kept, run again to resume")
    raise DatasetDownloadError(f"{title}: {failure} — {OFFLINE_HINT}")


def extract(archive: str | Path, into: str | Path) -> None:
    """Unpack a zip or tar(.gz/.bz2/.xz) safely (no absolute paths, no `..`, no links out of `into`)."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(into)  # zipfile drops absolute paths and `..` itself
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
        else:
            raise DatasetError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"{archive}: cannot extract ({_reason(e)}); delete it and fetch again") from e
