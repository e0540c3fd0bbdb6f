"""One writer per scoring output format, in one table (`WRITERS`): adding a format is adding a class here.

A writer streams batches of rows (Arrow tables with the run's schema) into one part file, reads a committed
part back, and writes a read-back table again (when `--resume` drops the rows of changed files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

NESTED = ("top_k", "events", "detected")  # list columns, stored as JSON text in CSV


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def _json_lines(table: pa.Table) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in table.to_pylist())


def csv_table(table: pa.Table) -> pa.Table:
    """CSV has no nested or zoned types: list<struct> columns become JSON text, timestamps ISO 8601 text."""
    cols, fields = [], []
    for f, col in zip(table.schema, table.columns):
        if f.name in NESTED:
            col = pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string())
        elif pa.types.is_timestamp(f.type):
            col = pa.array([None if v is None else v.isoformat() for v in col.to_pylist()], pa.string())
        cols.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


class Writer:
    """Streams tables into `path` through `self._w` (a handle with `write_table` or `write`, and `close`);
    `read` and `dump` work on committed parts of this format."""

    name: ClassVar[str]
    _w: Any

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema

    def write(self, table: pa.Table) -> None:
        self._w.write_table(table)

    def close(self) -> None:
        self._w.close()

    @staticmethod
    def read(path: Path, columns: list[str] | None = None) -> pa.Table:
        raise NotImplementedError

    @staticmethod
    def dump(path: Path, table: pa.Table) -> None:
        """Write a table as `read` returned it (no schema cast: CSV and JSONL parts come back as text)."""
        raise NotImplementedError


class ParquetWriter(Writer):
    name = "parquet"

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._w = pq.ParquetWriter(path, schema, compression="zstd")

    @staticmethod
    def read(path: Path, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns)

    @staticmethod
    def dump(path: Path, table: pa.Table) -> None:
        pq.write_table(table, path, compression="zstd")


class CsvWriter(Writer):
    name = "csv"
    TYPES = {
        "path": pa.string(),
        "file_size": pa.int64(),
        "file_mtime_ns": pa.int64(),
        "error": pa.string(),
        "label": pa.string(),
        "decoder": pa.string(),
        "model_revision": pa.string(),
    }

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.csv as pcsv

        super().__init__(path, schema)
        self._w = pcsv.CSVWriter(path, csv_table(schema.empty_table()).schema)

    def write(self, table: pa.Table) -> None:
        self._w.write_table(csv_table(table))

    @staticmethod
    def read(path: Path, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.csv as pcsv

        opts = pcsv.ConvertOptions(
            include_columns=columns or [], column_types=CsvWriter.TYPES, strings_can_be_null=True
        )
        return pcsv.read_csv(path, convert_options=opts)

    @staticmethod
    def dump(path: Path, table: pa.Table) -> None:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)


class JsonlWriter(Writer):
    name = "jsonl"

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._w = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, table: pa.Table) -> None:
        self._w.write(_json_lines(table))

    @staticmethod
    def read(path: Path, columns: list[str] | None = None) -> pa.Table:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if columns:
            rows = [{c: r.get(c) for c in columns} for r in rows]
        return pa.Table.from_pylist(rows)

    @staticmethod
    def dump(path: Path, table: pa.Table) -> None:
        path.write_text(_json_lines(table), encoding="utf-8")


#: format name → writer; the CLI's `--format` choices, part names and readers all come from here.
WRITERS: dict[str, type[Writer]] = {w.name: w for w in (ParquetWriter, CsvWriter, JsonlWriter)}
FORMATS = tuple(WRITERS)
