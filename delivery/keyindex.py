"""Key-sorted copies of a published version, so a page of records (`records`, in key order with a stable
cursor) reads one small row group. Keyed lookups use the per-part structures built at publish time instead
(delivery.partlookup).

A version is immutable, so its sorted copy (one per key column) is built once, lazily, on first use, with
DuckDB's external sort (bounded memory whatever the size), into small row groups whose min/max statistics are
kept in memory: a lookup on millions of rows then bisects a list and reads a few thousand rows.
Copies live under <storage>/index/<resource id>/<version folder>/<column>.parquet, beside the version, never
inside it (the published folder stays exactly what its manifest describes).
"""

from __future__ import annotations

import bisect
import fcntl
import gc
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ConfigError
from pipeline.duckdb_parts import readable_parts
from pipeline.layers import live_sql, parts_schema, version_parts
from pipeline.paths import resolve, storage_root
from registry.exchange.models import DatasetVersion

ROW_GROUP_ROWS = 1024  # small groups: a lookup decodes about a thousand rows of the columns it needs
_CACHE: dict[str, SortedCopy] = {}
_CACHE_LOCK = threading.Lock()
_LOADING = threading.Lock()


_PATHS: dict[tuple[str, str, str], Path] = {}


def copy_path(version: DatasetVersion, column: str) -> Path:
    key = (str(storage_root_setting()), version.path, column)
    if (known := _PATHS.get(key)) is None:
        folder = resolve(version.path)
        known = _PATHS[key] = storage_root() / "index" / folder.parent.name / folder.name / f"{column}.parquet"
    return known


def storage_root_setting() -> str:
    from core.settings import get_settings

    return get_settings().storage


@dataclass
class SortedCopy:
    """A version sorted by one column, with each row group's first/last key and first ordinal."""

    path: Path
    column: str
    file: pq.ParquetFile
    mins: list
    maxs: list
    starts: list[int]  # ordinal of each row group's first row
    rows: int

    @property
    def schema(self) -> pa.Schema:
        return self.file.schema_arrow

    def _reader(self) -> pq.ParquetFile:
        # One reader per call: a ParquetFile is not safe to share between threads; the parsed footer is.
        return pq.ParquetFile(self.path, metadata=self.file.metadata, memory_map=True)

    def find(self, value: object, *, columns: list[str] | None = None) -> pa.Table:
        """Every row whose key equals value: bisect the row groups, then in each candidate decode the key column
        first and the other columns only when the key is there."""
        first = max(bisect.bisect_left(self.maxs, value), 0)
        wanted = _with(columns, self.column)
        parts = []
        reader = self._reader()
        group = first
        while group < len(self.mins) and self.mins[group] <= value:
            keys = reader.read_row_group(group, columns=[self.column]).column(0)
            hits = pc.indices_nonzero(pc.equal(keys, pa.scalar(value, keys.type)))
            if len(hits):
                parts.append(reader.read_row_group(group, columns=wanted).take(hits))
            group += 1
        if not parts:
            empty = self.schema.empty_table()
            return empty.select(wanted) if wanted else empty
        return pa.concat_tables(parts)

    def groups_from(self, ordinal: int) -> tuple[int, int]:
        """The row group holding an ordinal, and the offset of the ordinal in it."""
        group = max(bisect.bisect_right(self.starts, ordinal) - 1, 0)
        return group, ordinal - self.starts[group]

    def read_group(self, group: int, columns: list[str] | None = None) -> pa.Table:
        return self._reader().read_row_group(group, columns=columns)


def _with(columns: list[str] | None, column: str) -> list[str] | None:
    return None if columns is None else (columns if column in columns else [*columns, column])


def _build(version: DatasetVersion, column: str, target: Path) -> None:
    import duckdb

    parts = version_parts(version)
    schema = parts_schema(parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}-{threading.get_ident()}")
    scratch = target.parent / f"duckdb-parts-{os.getpid()}-{threading.get_ident()}"
    parts = readable_parts(parts, scratch=scratch)  # wide decimals as text; the writer casts them back
    connection = duckdb.connect(config={"threads": 2, "memory_limit": "1GB",
                                        "temp_directory": str(target.parent / "duckdb-spill")})
    try:
        quoted = '"' + column.replace('"', '""') + '"'
        # The live rows only: a layered version's referenced files minus their deletion vectors.
        result = connection.execute(f"SELECT * FROM {live_sql(parts, connection)} ORDER BY {quoted} NULLS LAST")
        # pyarrow writes the copy, so its schema (types, time zones, labels) is the version's own and every
        # row group carries min/max statistics.
        with pq.ParquetWriter(partial, schema, compression="snappy") as writer:
            for batch in result.fetch_record_batch(ROW_GROUP_ROWS):
                writer.write_batch(batch.cast(schema), row_group_size=ROW_GROUP_ROWS)
    finally:
        connection.close()
        shutil.rmtree(scratch, ignore_errors=True)
    os.replace(partial, target)  # readers see the whole copy or none


def _load(path: Path, column: str) -> SortedCopy:
    file = pq.ParquetFile(path)
    meta = file.metadata
    index = file.schema_arrow.get_field_index(column)
    mins, maxs, starts, start = [], [], [], 0
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        # Nulls sort last; groups holding only nulls have no min/max and can never match a lookup.
        if stats is not None and stats.has_min_max and len(mins) == len(starts):
            mins.append(stats.min)
            maxs.append(stats.max)
        starts.append(start)
        start += meta.row_group(group).num_rows
    loaded = SortedCopy(path=path, column=column, file=file, mins=mins, maxs=maxs, starts=starts,
                        rows=meta.num_rows)
    # These keys live as long as the process: keep them out of the garbage collector's full passes, which
    # would otherwise walk them all again and again and stall every request meanwhile.
    gc.freeze()
    return loaded


def sorted_copy(version: DatasetVersion, column: str) -> SortedCopy:
    """The version sorted by column, built on first use (concurrent callers wait for one build)."""
    columns = [field["name"] for field in version.manifest.get("schema", [])]
    if column not in columns:
        raise ConfigError(f"version {version.number} has no column {column!r}; columns: {', '.join(columns)}")
    path = copy_path(version, column)
    key = str(path)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    if not path.exists():
        lock = path.with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # one build per copy, across threads and processes
            try:
                if not path.exists():
                    _build(version, column, path)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    with _LOADING:  # one footer parse at a time: concurrent first lookups wait for it instead of repeating it
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        loaded = _load(path, column)
        with _CACHE_LOCK:
            if len(_CACHE) > 256:
                _CACHE.clear()
            _CACHE[key] = loaded
    return loaded
