"""File names as text that every output can hold: UTF-8 with no lone surrogates, one line, lossless.

On Linux a file name is bytes; Python hands names that are not valid UTF-8 over as `str` with lone
surrogates (`bad_\\xff.wav` arrives as 'bad_\\udcff.wav'), which parquet, JSON and a UTF-8 terminal refuse.
The choice, the same in every output (jobs.score rows, jobs.predict lines):

- `path`: the name as readable text; bytes that are not UTF-8 written as `\\xNN` (Python's backslashreplace,
  what `ls -b` shows). For a valid UTF-8 name this is the name itself, unchanged.
- `path_hex`: only when the name is not valid UTF-8, the hex of its exact bytes (else null), so the row
  points at one file: `os.fsdecode(bytes.fromhex(path_hex))` opens it, and a valid name that happens to
  contain a literal backslash-x never collides with it (its `path_hex` is null).

`original_path(path, path_hex)` turns a stored row back into the name `os` gives (what `--resume` compares).
"""

from __future__ import annotations

import os

_LINE_BREAKERS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def stored_path(path: str) -> str:
    """`path` as valid UTF-8 text (undecodable bytes as `\\xNN`); unchanged when it already is."""
    return clean_text(path)


def path_hex(path: str) -> str | None:
    """Hex of the exact bytes of a name that is not valid UTF-8; None for a valid name."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return raw.hex()


def original_path(path: str, hex_bytes: str | None) -> str:
    """The name as `os` gives it (lone surrogates for undecodable bytes) from a stored row."""
    return os.fsdecode(bytes.fromhex(hex_bytes)) if hex_bytes else path


def clean_text(text: str | None) -> str | None:
    """Any message (an error naming an undecodable file, say) as valid UTF-8, bad bytes as `\\xNN`."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # surrogates that stand for bytes: the bytes
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")  # other lone surrogates: \udXXX
    return raw.decode("utf-8", "backslashreplace")


def one_line(path: str) -> str:
    """A name for a tab-separated text line: backslash, newline, CR and tab escaped (`\\`, `\\n`, …) and
    bytes that are not UTF-8 as `\\xNN`, so no name splits the line or reads as another name."""
    text = path.replace("\\", "\\\\")
    for ch, esc in _LINE_BREAKERS.items():
        text = text.replace(ch, esc)
    return clean_text(text)
