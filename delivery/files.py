"""File download: a version streamed as Parquet or CSV in bounded memory, whatever its size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.layers import iter_parts, parts_schema, version_parts
from registry.models import DatasetVersion

FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}


class _ChunkSink:
    """A write-only file object whose written bytes are handed out chunk by chunk."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def iter_batches(version: DatasetVersion, *, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The version's rows in manifest order: a layered version's files minus their deleted rows
    (pipeline.layers), never a whole file's rows as they are."""
    yield from iter_parts(version_parts(version), columns=columns)


def _schema(version: DatasetVersion, columns: list[str] | None) -> pa.Schema:
    schema = parts_schema(version_parts(version))
    return pa.schema([schema.field(c) for c in columns]) if columns else schema


def stream_version(version: DatasetVersion, *, fmt: str, columns: list[str] | None = None,
                   batches: Iterable[pa.RecordBatch] | None = None, schema: pa.Schema | None = None) -> Iterator[bytes]:
    """The version's bytes in ``fmt``; ``batches`` with their ``schema`` (e.g. from delivery.access.restrict)
    replace the version's own batches."""
    sink = _ChunkSink()
    schema = schema if schema is not None else _schema(version, columns)
    if fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema, compression="snappy")
    elif fmt == "csv":
        sink.write("\ufeff".encode())  # a BOM, so Excel opens Chinese text correctly
        writer = pacsv.CSVWriter(sink, schema)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    for batch in batches if batches is not None else iter_batches(version, columns=columns):
        writer.write_batch(batch)
        if chunk := sink.drain():
            yield chunk
    writer.close()
    if chunk := sink.drain():
        yield chunk


def version_schema(version: DatasetVersion) -> pa.Schema:
    """The Arrow schema of a version's rows (read from its first part's footer)."""
    return _schema(version, None)
