"""Change sets (变更集): keys inserted, updated and deleted between a version and the one before it.

Computed by key with DuckDB over the two versions' Parquet files, out of core (a memory limit and a spill
folder), and handed back as Arrow record batches: no table is ever loaded whole. A full refresh also finds
deletions (keys of the previous version the source no longer has); an incremental run compares only the
keys it read, plus the keys its scan of the source's keys found deleted (pipeline/deletes.py). The result is
``changes.parquet`` next to the version's data: the new row for inserts and updates, the last published row
for deletes, and a ``_change`` column.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.layers import Part, live_sql

CHANGE_COLUMN = "_change"
CHANGES_FILE = "changes.parquet"


@dataclass
class ChangeSet:
    since_version: int | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    deletes_detected: bool = False
    file: str | None = None
    note: str = ""
    schema_changed: bool = False
    compared_columns: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"since_version": self.since_version, "inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "deletes_detected": self.deletes_detected, "file": self.file,
                "note": self.note, "schema_changed": self.schema_changed}

    @property
    def empty(self) -> bool:
        return self.file is not None and not (self.inserted or self.updated or self.deleted or self.schema_changed)


def change_schema(schema: pa.Schema) -> pa.Schema:
    """The version's columns (nullable: a delete carries only its key) and the kind of change."""
    fields = [pa.field(f.name, f.type, nullable=True) for f in schema]
    return pa.schema([*fields, pa.field(CHANGE_COLUMN, pa.string(), nullable=False)])


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def compute_changes(*, new_files: list[Path], previous_parts: list[Part], key: tuple[str, ...], schema: pa.Schema,
                    previous_schema: pa.Schema, out: Path, since_version: int, read_keys: pa.Table | None = None,
                    deleted_keys: pa.Table | None = None, scratch: Path) -> ChangeSet:
    """Write `out` and return the counts. `read_keys` (incremental runs): only these keys can have changed;
    `deleted_keys` (with them): the keys the source no longer has (pipeline.deletes), written as deletes."""
    import duckdb

    unchanged_type = [n for n in schema.names if n in previous_schema.names and n not in key
                      and previous_schema.field(n).type == schema.field(n).type]
    result = ChangeSet(since_version=since_version, file=out.name,
                       deletes_detected=read_keys is None or deleted_keys is not None,
                       schema_changed=schema.names != previous_schema.names or len(unchanged_type) + len(key) != len(schema),
                       compared_columns=unchanged_type)
    scratch.mkdir(parents=True, exist_ok=True)
    # The budget keeps a whole sync under 512 MiB (`make bench`: peak_rss_mib); the join spills beyond it.
    connection = duckdb.connect(config={"threads": "2", "memory_limit": "96MB", "temp_directory": str(scratch),
                                        "preserve_insertion_order": False})
    target = change_schema(schema)
    writer = pq.ParquetWriter(out, target, compression="snappy")
    try:
        new, old = f"read_parquet({_files(new_files)})", live_sql(previous_parts, connection)
        on = " AND ".join(f"n.{_q(k)} = o.{_q(k)}" for k in key)
        def order(alias: str) -> str:  # by key: the same change set reads the same way every time
            return ", ".join(f"{alias}.{_q(k)}" for k in key)

        # The old side carries one 64-bit hash of its compared columns, not the columns: the join's table stays
        # small (5 M rows: about 80 MB instead of gigabytes spilled). Two different rows share a hash with a
        # chance of about one in 2^64 per row.
        def row_hash(alias: str) -> str:
            return f"hash({', '.join(f'{alias}.{_q(c)}' for c in unchanged_type)})"

        differs = f"{row_hash('n')} IS DISTINCT FROM o.__hash" if unchanged_type else "FALSE"
        old_columns = ", ".join([*(f"x.{_q(k)}" for k in key),
                                 f"{row_hash('x') if unchanged_type else 'NULL'} AS __hash"])
        source, before = new, f"(SELECT {old_columns}, TRUE AS __present FROM {old} x)"
        if read_keys is not None:
            # Only the keys read can have changed: both sides shrink to them before the join.
            connection.register("read_keys", read_keys)
            by_key = " AND ".join(f"k.{_q(c)} = x.{_q(c)}" for c in key)
            source = f"(SELECT * FROM {new} x WHERE EXISTS (SELECT 1 FROM read_keys k WHERE {by_key}))"
            before = (f"(SELECT {old_columns}, TRUE AS __present FROM {old} x "
                      f"WHERE EXISTS (SELECT 1 FROM read_keys k WHERE {by_key}))")
        upserts = connection.execute(
            f"SELECT n.*, CASE WHEN o.__present IS NULL THEN 'insert' ELSE 'update' END AS {CHANGE_COLUMN} "
            f"FROM {source} n LEFT JOIN {before} o ON {on} "
            f"WHERE o.__present IS NULL OR {differs} ORDER BY {order('n')}").fetch_record_batch(65_536)
        for batch in upserts:
            batch = pa.RecordBatch.from_arrays([batch.column(n) for n in target.names], names=target.names)
            batch = batch.cast(target)
            writer.write_batch(batch)
            kinds = batch.column(CHANGE_COLUMN).to_numpy(zero_copy_only=False)
            inserted = int((kinds == "insert").sum())
            result.inserted += inserted
            result.updated += batch.num_rows - inserted
        if read_keys is None or deleted_keys is not None:
            # A delete carries the row as it was, so a consumer's row condition and columns apply to it too.
            kept = [n for n in schema.names if n in previous_schema.names]
            gone = f"NOT EXISTS (SELECT 1 FROM {new} n WHERE {on})"
            if deleted_keys is not None:
                connection.register("deleted_keys", deleted_keys)
                gone = "EXISTS (SELECT 1 FROM deleted_keys d WHERE " + \
                    " AND ".join(f"d.{_q(c)} = o.{_q(c)}" for c in key) + ")"
            deletes = connection.execute(
                f"SELECT {', '.join('o.' + _q(n) for n in kept)} FROM {old} o "
                f"WHERE {gone} ORDER BY {order('o')}").fetch_record_batch(65_536)
            for batch in deletes:
                writer.write_batch(_deleted_rows(batch, target))
                result.deleted += batch.num_rows
    finally:
        writer.close()
        connection.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _deleted_rows(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for f in target:
        if f.name == CHANGE_COLUMN:
            arrays.append(pa.array(["delete"] * batch.num_rows, pa.string()))
        elif f.name in batch.schema.names:
            try:
                arrays.append(batch.column(f.name).cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # retyped, not castable: the key still counts
                arrays.append(pa.nulls(batch.num_rows, f.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)
