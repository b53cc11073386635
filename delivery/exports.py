"""File download exports (文件下载, article 16): a version, or the changes since one, as Parquet, CSV or Excel.

An export is what one grant may see of one version in one format. It is written once, streaming record batches
(memory stays flat whatever the size), into a cache file named by everything that shapes its bytes (version,
format, change range, approved columns, row condition, masking), and then served from disk: that makes the
bytes stable, so a broken download resumes with an HTTP Range request and the ETag (the file's SHA-256) tells a
client the file did not change under it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy.orm import Session

from connectors.arrowconv import value_text
from core.errors import ConfigError
from core.storage import get_storage
from core.xlsx import append_row
from delivery.access import AccessDecision, restrict, restricted_schema
from delivery.files import FORMATS, iter_batches, version_schema, write_batches
from pipeline.paths import storage_root
from registry.exchange.models import DatasetVersion

MEDIA_TYPES = {**FORMATS, "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
EXCEL_MAX_ROWS = 1_048_575  # a sheet holds 1,048,576 rows, one of them the header
CHUNK = 1 << 20


@dataclass
class Export:
    path: Path
    sha256: str
    size: int
    rows: int
    fmt: str
    version: int
    since: int | None
    manifest_sha256: str
    filename: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]


def _shape(decision: AccessDecision, version: DatasetVersion, fmt: str, since: int | None) -> dict:
    return {"version_id": version.id, "fmt": fmt, "since": since, "columns": decision.columns,
            "row_filter": decision.row_filter, "mask": sorted(decision.mask_columns or [])}


def _batches(session: Session, decision: AccessDecision, version: DatasetVersion,
             since: int | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if since is None:
        schema = restricted_schema(decision, version_schema(version))
        return schema, restrict(decision, iter_batches(version, columns=decision.read_columns))
    from delivery.change_filter import filtered_changes
    from pipeline.changes import CHANGE_COLUMN
    from pipeline.changes_feed import VERSION_COLUMN, changes_schema, changes_since

    if version.number != decision.version.number:
        raise ConfigError(zh="变更只提供到最新版本为止，请去掉 version 参数",
                          en="changes are offered up to the latest version only; leave out `version`")
    change_range = changes_since(session, resource=decision.resource, since=since)
    full = changes_schema(version)
    # The change columns travel with the approved data items; the row condition is applied to the changes as
    # a view (rows entering or leaving it become inserts or deletes, delivery/change_filter.py), not again.
    view = decision
    if decision.columns is not None:
        view = dataclasses.replace(decision, columns=[*decision.columns, VERSION_COLUMN, CHANGE_COLUMN])
    read = None if view.read_columns is None else [c for c in view.read_columns if c != VERSION_COLUMN]
    changes = filtered_changes(session, decision, change_range, schema=full, columns=read)
    return restricted_schema(view, full), restrict(dataclasses.replace(view, row_filter=None), changes)


class _Hashing:
    """A write-only file that hashes what passes through it."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self._handle.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self.closed = True


def _excel_value(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones: keep the wall-clock time as published
    if isinstance(value, bytes | list | dict | timedelta):  # no Excel form: the text forms of CSV
        return value_text(value)
    return value


def _write_xlsx(target: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)  # rows go to a temporary file, not into memory
    sheet, in_sheet, rows = None, EXCEL_MAX_ROWS, 0
    for batch in batches:
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns):
            if in_sheet >= EXCEL_MAX_ROWS:
                sheet = workbook.create_sheet(title=f"数据{len(workbook.worksheets) + 1}")
                append_row(sheet, schema.names)
                in_sheet = 0
            append_row(sheet, [_excel_value(v) for v in values])  # text stays text: core.xlsx
            in_sheet += 1
            rows += 1
    if sheet is None:
        append_row(workbook.create_sheet(title="数据1"), schema.names)
    workbook.save(target)
    return rows


def _write(target: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> tuple[str, int, int]:
    """Write the export; its SHA-256, size and row count."""
    if fmt == "xlsx":
        rows = _write_xlsx(target, schema, batches)
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest(), target.stat().st_size, rows
    with target.open("wb") as handle:
        sink = _Hashing(handle)
        rows = sum(write_batches(sink, fmt, schema, batches))
    return sink.digest.hexdigest(), sink.size, rows


def materialise(session: Session, decision: AccessDecision, version: DatasetVersion, *, fmt: str,
                since: int | None = None) -> Export:
    """The cached export for this grant, version and format, written first if it does not exist yet."""
    if fmt not in MEDIA_TYPES:
        raise ConfigError(zh=f"不支持的格式“{fmt}”，可选：{'、'.join(MEDIA_TYPES)}",
                          en=f"unknown format {fmt!r}; use one of {', '.join(MEDIA_TYPES)}")
    shape = _shape(decision, version, fmt, since)
    key = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:24]
    folder = storage_root() / "exports" / str(decision.resource.id) / f"v{version.number:06d}"
    target, sidecar = folder / f"{key}.{fmt}", folder / f"{key}.json"
    stem = decision.resource.code.replace("/", "_")
    filename = f"{stem}_v{version.number}{f'_since_v{since}' if since is not None else ''}.{fmt}"
    storage = get_storage()
    if not sidecar.exists() and storage.remote and storage.exists(sidecar):
        storage.pull(sidecar)  # another worker wrote it: the export is whole in the store
    if not sidecar.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per export, across threads and processes
            try:
                if not sidecar.exists():
                    schema, batches = _batches(session, decision, version, since)
                    partial = folder / f".{key}.{os.getpid()}.partial.{fmt}"
                    sha256, size, rows = _write(partial, fmt, schema, batches)
                    os.replace(partial, target)
                    storage.push(target)
                    tmp = folder / f".{key}.json.partial"
                    tmp.write_text(json.dumps({"sha256": sha256, "size": size, "rows": rows, "shape": shape},
                                              default=str))
                    os.replace(tmp, sidecar)  # the sidecar appears last: its presence means the file is whole
                    storage.push(sidecar)  # in the store too
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    meta = json.loads(sidecar.read_text())
    return Export(path=target, sha256=meta["sha256"], size=meta["size"], rows=meta["rows"], fmt=fmt,
                  version=version.number, since=since, manifest_sha256=version.manifest_sha256, filename=filename)


def local_copy(export: Export) -> Path:
    """The export as a file of this worker (SFTP push and offline packages hand a file to their library):
    copied from the store if another worker wrote it."""
    return get_storage().pull(export.path)


def read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    """Bytes start..end (inclusive) of a file, a chunk at a time, read from the storage itself (on an object
    store, one ranged GET per chunk: an HTTP Range request passes through, nothing is copied whole)."""
    with get_storage().open_input(path) as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
