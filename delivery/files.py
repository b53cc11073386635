"""File download: a version streamed as Parquet or CSV in bounded memory, whatever its size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.errors import ConfigError
from pipeline.layers import iter_parts, parts_schema, version_parts
from pipeline.text_values import csv_ready, csv_schema
from registry.exchange.models import DatasetVersion

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
    yield from iter_parts(version_parts(version, pull=False), columns=columns)  # streamed from an object store


def _schema(version: DatasetVersion, columns: list[str] | None) -> pa.Schema:
    schema = parts_schema(version_parts(version, pull=False))
    return pa.schema([schema.field(c) for c in columns]) if columns else schema


def write_batches(sink: BinaryIO, fmt: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[int]:
    """The one Parquet/CSV writer of downloads: each batch written to ``sink`` (a write-only file object), its row
    count yielded once written, so a caller may hand out the bytes between batches."""
    if fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema, compression="snappy")
    elif fmt == "csv":
        sink.write("\ufeff".encode())  # a BOM, so Excel opens Chinese text correctly
        writer = pacsv.CSVWriter(sink, csv_schema(schema))  # binary as \x hex, nested as JSON: text_values
    else:
        raise ConfigError(f"格式 {fmt!r} 无效 / unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    for batch in batches:
        writer.write_batch(csv_ready(batch) if fmt == "csv" else batch)
        yield batch.num_rows
    writer.close()


def stream_version(version: DatasetVersion, *, fmt: str, columns: list[str] | None = None,
                   batches: Iterable[pa.RecordBatch] | None = None, schema: pa.Schema | None = None) -> Iterator[bytes]:
    """The version's bytes in ``fmt``, chunk by chunk; ``batches`` with their ``schema`` (e.g. from
    delivery.access.restrict) replace the version's own batches."""
    sink = _ChunkSink()
    schema = schema if schema is not None else _schema(version, columns)
    batches = batches if batches is not None else iter_batches(version, columns=columns)
    for _rows in write_batches(sink, fmt, schema, batches):
        if chunk := sink.drain():
            yield chunk
    if chunk := sink.drain():
        yield chunk


def version_schema(version: DatasetVersion) -> pa.Schema:
    """The Arrow schema of a version's rows (read from its first part's footer)."""
    return _schema(version, None)


def export_version(*, resource_code: str, fmt: str, out: Path, version: int | None = None,
                   actor: str = "cli") -> dict:
    """Write a published version (default: the latest) to ``out`` as Parquet or CSV, streamed, never a whole
    table in memory; written beside ``out`` and renamed, so a failed export leaves no partial file. Audited.
    Returns the version, rows, bytes and SHA-256 of the file."""
    import hashlib
    import os

    from core.errors import NotFound
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.exchange.models import PrunedVersion
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import list_versions, require_latest_version

    if fmt not in FORMATS:
        raise ConfigError(f"格式 {fmt!r} 无效 / format must be one of {', '.join(FORMATS)}")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; give the file to write, e.g. {out / (resource_code.replace('/', '_') + '.' + fmt)}")
    if not out.parent.is_dir():
        raise ConfigError(f"folder {out.parent} does not exist; create it first")
    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if version is None:
            found = require_latest_version(session, resource=resource)
        else:
            found = next((v for v in list_versions(session, resource=resource) if v.number == version), None)
            if found is None:
                raise NotFound(f"资源 {resource_code} 没有第 {version} 版 / {resource_code} has no version {version}; "
                               f"`govshare versions {resource_code}` lists them")
        if session.get(PrunedVersion, found.id) is not None:
            raise NotFound(f"{resource_code} v{found.number} was removed by retention (its record stays); export a "
                           "later version")
        session.expunge(found)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    digest, size = hashlib.sha256(), 0
    try:
        with temporary.open("wb") as handle:
            for chunk in stream_version(found, fmt=fmt):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    result = {"version": found.number, "rows": found.row_count, "bytes": size, "sha256": digest.hexdigest(),
              "manifest_sha256": found.manifest_sha256}
    with session_scope() as session:
        record_event(session, actor=actor, action="data.export", resource_code=resource_code,
                     detail={**result, "format": fmt, "file": out.name})
    return result
