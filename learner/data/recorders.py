"""When and where a field recording was made: its start time (UTC) and site, from the file name a recorder
gave it, a user's pattern, or a deployments CSV.

    20240105_031500.WAV             AudioMoth (UTC by default)           → 2024-01-05 03:15:00 UTC
    SMA01234_20240105_031500.wav    Song Meter (PREFIX_YYYYMMDD_HHMMSS)  → the same (`timezone` if set local)
    site3-20240105T031500.flac      any YYYYMMDD[_-T]HHMMSS in the name
    5E9C2A00.WAV                    AudioMoth's older firmware: the UNIX time in hex

`FileTimes.start_utc(path)` is None when nothing says when a file starts; the caller counts those and says
so. A deployments CSV has a `path` column (a file, or a folder for every file under it; relative to the
CSV) and any of `site`, `start_utc` (ISO 8601, for a file; without a zone it is UTC), `timezone` (the zone
the names of the files under it are written in, e.g. `Europe/Berlin` or `+02:00`).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

# YYYYMMDD, one of _ - T, HHMMSS, not inside a longer run of digits
NAME_TIME = re.compile(
    r"(?<!\d)(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})[_\-T](?P<hour>\d{2})(?P<minute>\d{2})"
    r"(?P<second>\d{2})(?!\d)"
)
HEX_TIME = re.compile(r"^(?P<hex>[0-9A-Fa-f]{8})$")  # AudioMoth before firmware 1.4: seconds since 1970
REQUIRED_GROUPS = ("year", "month", "day", "hour", "minute")
# a hex name outside these years is a number, not a recorder's clock (and an all-digit name is never hex)
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def parse_zone(text: str) -> tzinfo:
    """`UTC`, `+02:00` / `-0530`, or an IANA name (`Europe/Berlin`)."""
    text = text.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {text!r}: use UTC, an offset such as +02:00, or a name such as Europe/Berlin"
        ) from None


def compile_pattern(text: str) -> re.Pattern:
    """A user's pattern for the file name: named groups year, month, day, hour, minute (second, optional)."""
    try:
        pattern = re.compile(text)
    except re.error as e:
        raise ValueError(f"time pattern {text!r}: {e}") from None
    missing = [g for g in REQUIRED_GROUPS if g not in pattern.groupindex]
    if missing:
        raise ValueError(
            f"time pattern {text!r} needs the named groups {', '.join(REQUIRED_GROUPS)} (second optional), "
            f"e.g. (?P<year>\\d{{4}})(?P<month>\\d\\d)(?P<day>\\d\\d)_(?P<hour>\\d\\d)(?P<minute>\\d\\d); "
            f"missing: {', '.join(missing)}"
        )
    return pattern


def _from_match(m: re.Match, zone: tzinfo) -> datetime | None:
    g = m.groupdict()
    try:
        local = datetime(
            int(g["year"]),
            int(g["month"]),
            int(g["day"]),
            int(g["hour"]),
            int(g["minute"]),
            int(g.get("second") or 0),
        )
    except ValueError:  # digits that are not a date (month 13): not a time stamp
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


def time_from_name(
    path: str | Path, pattern: re.Pattern | None = None, zone: tzinfo = UTC
) -> datetime | None:
    """The start time in a file name (module docstring), as UTC; None when the name holds none."""
    name = os.path.basename(str(path))
    stem = os.path.splitext(name)[0]
    if pattern is not None:
        m = pattern.search(name)
        return _from_match(m, zone) if m else None
    m = NAME_TIME.search(stem)
    if m:
        return _from_match(m, zone)
    m = HEX_TIME.match(stem)
    if m and not stem.isdigit():
        t = datetime.fromtimestamp(int(m.group("hex"), 16), UTC)
        return t if EARLIEST <= t < LATEST else None
    return None


@dataclass(frozen=True)
class Deployment:
    site: str | None = None
    start_utc: datetime | None = None
    zone: tzinfo | None = None


def _iso_utc(text: str, where: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{where}: start_utc {text!r} is not an ISO 8601 time (2024-01-05T03:15:00Z)"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def read_deployments(csv_path: str | Path) -> dict[str, Deployment]:
    """Real path of a file or folder → its Deployment, from a deployments CSV (module docstring)."""
    csv_path = Path(csv_path)
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0]:
        raise ValueError(
            f"{csv_path}: a deployments CSV needs a header with a path column "
            "(and site, start_utc or timezone)"
        )
    out: dict[str, Deployment] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path} line {line}"
        given = (row.get("path") or "").strip()
        if not given:
            raise ValueError(f"{where}: empty path")
        target = Path(given) if os.path.isabs(given) else csv_path.parent / given
        start = (row.get("start_utc") or "").strip()
        if start and target.is_dir():
            raise ValueError(
                f"{where}: start_utc on a folder ({given}); give each file's start on its own row"
            )
        zone = (row.get("timezone") or "").strip()
        try:
            dep = Deployment(
                (row.get("site") or "").strip() or None,
                _iso_utc(start, where) if start else None,
                parse_zone(zone) if zone else None,
            )
        except ValueError as e:
            raise ValueError(str(e) if str(e).startswith(str(csv_path)) else f"{where}: {e}") from None
        out[os.path.realpath(target)] = dep
    return out


@dataclass
class FileTimes:
    """How each recording's start (UTC) and site are found: deployments first, then the file name."""

    pattern: re.Pattern | None = None
    zone: tzinfo = UTC
    deployments: dict[str, Deployment] = field(default_factory=dict)
    description: str = "names"

    def _deployments_of(self, path: str) -> list[Deployment]:
        """The rows for this file and for the folders holding it, nearest first."""
        real = os.path.realpath(path)
        found, here = [], real
        while True:
            if here in self.deployments:
                found.append(self.deployments[here])
            parent = os.path.dirname(here)
            if parent == here:
                return found
            here = parent

    def start_utc(self, path: str) -> datetime | None:
        deps = self._deployments_of(path) if self.deployments else []
        for d in deps:
            if d.start_utc is not None:
                return d.start_utc
        zone = next((d.zone for d in deps if d.zone is not None), self.zone)
        return time_from_name(path, self.pattern, zone)

    def site(self, path: str) -> str:
        """The deployment's site, else the name of the folder the file is in."""
        for d in self._deployments_of(path) if self.deployments else []:
            if d.site:
                return d.site
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "."


def file_times(
    pattern: str | None = None, zone: str | None = None, deployments: str | Path | None = None
) -> FileTimes:
    """A FileTimes from the job's flags (`--time-regex`, `--timezone`, `--deployments`)."""
    parts = [
        f"regex {pattern}" if pattern else "names",
        *([f"timezone {zone}"] if zone else []),
        *([f"deployments {deployments}"] if deployments else []),
    ]
    return FileTimes(
        compile_pattern(pattern) if pattern else None,
        parse_zone(zone) if zone else UTC,
        read_deployments(deployments) if deployments else {},
        "; ".join(parts),
    )
