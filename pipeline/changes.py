"""Change sets (变更集): keys inserted, updated and deleted between a version and the one before it.

Computed by key with DuckDB over the two versions' Parquet files, out of core (a memory limit and a spill
folder): the joins name the changed rows by key, one hash of their columns and row numbers, and the rows
are then read part by part, in row order, so no table is loaded whole and no join carries whole rows. A full
refresh also finds deletions (keys of the previous version the source no longer has); an incremental run
compares only the keys it read, plus the keys its scan of the source's keys found deleted
(pipeline/deletes.py) and those whose new state it quarantined (their published rows withdrawn). The result
is ``changes.parquet`` next to the version's data: the new row for inserts and updates, the last published row
for deletes, and a ``_change`` column.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.duckdb_parts import readable_parts
from pipeline.layers import PART_INDEX, Part, live_sql

CHANGE_COLUMN = "_change"
# DuckDB's budget for a change set: a whole sync stays under 512 MiB (`make bench`: peak_rss_mib); joins spill.
MEMORY_LIMIT = "96MB"
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



def no_change(summary: dict[str, Any]) -> bool:
    """A change set (its summary) that is known, with its file, and empty: no key inserted, updated or deleted,
    no column changed. A run that finds one publishes nothing (pipeline.publish)."""
    return bool(summary.get("file")) and not (summary.get("inserted") or summary.get("updated")
                                              or summary.get("deleted") or summary.get("schema_changed"))


def change_schema(schema: pa.Schema) -> pa.Schema:
    """The version's columns (nullable: a delete carries only its key) and the kind of change."""
    fields = [pa.field(f.name, f.type, nullable=True) for f in schema]
    return pa.schema([*fields, pa.field(CHANGE_COLUMN, pa.string(), nullable=False)])


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_digest(alias: str, columns: list[str]) -> str:
    """DuckDB's one 64-bit hash of a row's ``columns`` (NULL without any): two different rows share it with a
    chance of about one in 2^64."""
    return f"hash({', '.join(f'{alias}.{quoted(c)}' for c in columns)})" if columns else "NULL"


def budget_connection(scratch: Path):  # noqa: ANN201 - a duckdb connection
    """A DuckDB connection within the change set's memory budget, spilling to ``scratch``."""
    import duckdb

    return duckdb.connect(config={"threads": "2", "memory_limit": MEMORY_LIMIT, "temp_directory": str(scratch),
                                  "preserve_insertion_order": False})


def compute_changes(*, new_files: list[Path], previous_parts: list[Part], key: tuple[str, ...], schema: pa.Schema,
                    previous_schema: pa.Schema, out: Path, since_version: int, read_keys: pa.Table | None = None,
                    deleted_keys: pa.Table | None = None, withheld_keys: pa.Table | None = None,
                    scratch: Path) -> ChangeSet:
    """Write `out` and return the counts. `read_keys` (incremental runs): only these keys can have changed;
    `deleted_keys` (with them): the keys the source no longer has (pipeline.deletes), written as deletes;
    `withheld_keys` (with them): keys whose new state was quarantined, their published rows withdrawn, written
    as deletes too (whether the source's deletes were looked for stays the key scan's to say)."""
    unchanged_type = [n for n in schema.names if n in previous_schema.names and n not in key
                      and previous_schema.field(n).type == schema.field(n).type]
    detected = read_keys is None or deleted_keys is not None
    deletes = detected or withheld_keys is not None
    if withheld_keys is not None and deleted_keys is not None:
        deleted_keys = pa.concat_tables([deleted_keys, withheld_keys.cast(deleted_keys.schema)])
    elif withheld_keys is not None:
        deleted_keys = withheld_keys
    result = ChangeSet(since_version=since_version, file=out.name, deletes_detected=detected,
                       schema_changed=schema.names != previous_schema.names or len(unchanged_type) + len(key) != len(schema),
                       compared_columns=unchanged_type)
    scratch.mkdir(parents=True, exist_ok=True)
    new_parts = [Part(path=path, rows=pq.ParquetFile(path).metadata.num_rows) for path in new_files]
    target = change_schema(schema)
    try:
        upserts_at, deletes_at = _locate(new_parts=new_parts, previous_parts=previous_parts, key=key,
                                         compared=unchanged_type, read_keys=read_keys, deleted_keys=deleted_keys,
                                         deletes=deletes, scratch=scratch)
        with pq.ParquetWriter(out, target, compression="snappy") as writer:
            for batch, inserted in _located_rows(upserts_at, new_parts, schema.names):
                kinds = pa.array(np.where(inserted, "insert", "update"), pa.string())
                arrays = [kinds if f.name == CHANGE_COLUMN else batch.column(f.name).cast(f.type) for f in target]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=target))
                result.inserted += int(inserted.sum())
                result.updated += int((~inserted).sum())
            if deletes:
                # A delete carries the row as it was, so a consumer's row condition and columns apply to it too.
                kept = [n for n in schema.names if n in previous_schema.names]
                for batch, _ in _located_rows(deletes_at, previous_parts, kept):
                    writer.write_batch(_deleted_rows(batch, target))
                    result.deleted += batch.num_rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _locate(*, new_parts: list[Part], previous_parts: list[Part], key: tuple[str, ...], compared: list[str],
            read_keys: pa.Table | None, deleted_keys: pa.Table | None, deletes: bool, scratch: Path
            ) -> tuple[Path, Path | None]:
    """The changed rows named by (part index from 1, row number, inserted), ordered by part and row: the new
    version's inserted and updated rows, and the previous version's deleted ones, each in a narrow Parquet
    file in ``scratch``. DuckDB's memory is given back before any row is read.

    Every join here carries keys, one hash and row numbers, never whole rows. A join that carried whole rows
    went over the budget and could not spill: DuckDB's estimate of a layered version's live rows is far too
    low, so it built its hash table on the old rows (a full refresh after some weeks of incremental runs failed
    that way), and a hash table that spilled took the wide rows probing it along (a source emptied at once
    failed so). One 64-bit hash of the compared columns stands for them: two different rows share a hash with
    a chance of about one in 2^64 per row."""
    connection = budget_connection(scratch)
    try:
        keys = [quoted(k) for k in key]
        on = " AND ".join(f"n.{k} = o.{k}" for k in keys)

        def narrow(alias: str) -> str:
            return ", ".join([*(f"{alias}.{k}" for k in keys), f"{row_digest(alias, compared)} AS __hash"])

        only_read = ""
        if read_keys is not None:  # only the keys read can have changed: both sides shrink to them first
            connection.register("read_keys", read_keys)
            only_read = " WHERE EXISTS (SELECT 1 FROM read_keys k WHERE " + \
                " AND ".join(f"k.{k} = x.{k}" for k in keys) + ")"
        # Each version's subquery once: the previous one's registers its deletion vectors on the connection.
        needed = [*key, *compared]  # wide decimals as text (pipeline.duckdb_parts): hashed exactly
        fresh = live_sql(readable_parts(new_parts, scratch=scratch / "fresh", columns=needed), connection,
                         positions=True)
        before = live_sql(readable_parts(previous_parts, scratch=scratch / "before", columns=needed), connection,
                          positions=True)
        upserts = located_file(connection, scratch / "located-upserts.parquet", (
            f"SELECT n.{PART_INDEX}, n.file_row_number, o.__present IS NULL AS inserted "
            f"FROM (SELECT {narrow('x')}, x.{PART_INDEX}, x.file_row_number FROM {fresh} x{only_read}) n "
            f"LEFT JOIN (SELECT {narrow('x')}, TRUE AS __present FROM {before} x{only_read}) o ON {on} "
            f"WHERE o.__present IS NULL OR {'n.__hash IS DISTINCT FROM o.__hash' if compared else 'FALSE'} "
            "ORDER BY 1, 2"))
        if deleted_keys is not None:
            connection.register("deleted_keys", deleted_keys)
            match = "SEMI JOIN deleted_keys d ON " + " AND ".join(f"d.{k} = o.{k}" for k in keys)
        else:
            match = f"ANTI JOIN (SELECT {', '.join(keys)} FROM {fresh}) n ON {on}"
        gone = located_file(connection, scratch / "located-deletes.parquet", (
            f"SELECT o.{PART_INDEX}, o.file_row_number, FALSE AS inserted FROM (SELECT {', '.join(keys)}, "
            f"{PART_INDEX}, file_row_number FROM {before}) o {match} ORDER BY 1, 2")) if deletes else None
    finally:
        connection.close()
    return upserts, gone


def located_file(connection, path: Path, query: str) -> Path:  # noqa: ANN001 - a duckdb connection
    """The query's rows (row numbers naming rows, not the rows) written to ``path`` batch by batch."""
    reader = connection.execute(query).fetch_record_batch(LOCATED_BATCH)
    with pq.ParquetWriter(path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return path


LOCATED_BATCH = 65_536  # changed rows named at once, then read: one row group of rows in flight
DENSE_ROWS = 4_096  # rows of a part named at once from which its row groups are decoded instead of its row store


def _located_rows(located: Path, parts: list[Part], columns: list[str]
                  ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """The rows that ``located`` names (part index from 1, row number, a flag; ordered by part and row), with
    their flags, in that order: the same every time for the same files. Memory: one batch of ``located`` and
    the rows it names (from a part's row store where it has one, else from the row groups that hold them)."""
    from pipeline.layer_changes import parquet_rows_at, rows_at

    for batch in pq.ParquetFile(located).iter_batches(batch_size=LOCATED_BATCH):
        indexes, rows, flags = (batch.column(i).to_numpy(zero_copy_only=False) for i in range(3))
        edges = np.flatnonzero(np.diff(indexes)) + 1
        for first, end in zip([0, *edges], [*edges, len(indexes)]):
            part, wanted = parts[int(indexes[first]) - 1], rows[first:end].astype(np.int64)
            read = rows_at if len(wanted) < DENSE_ROWS else parquet_rows_at
            found, chosen, done = read(part, wanted).select(columns), flags[first:end].astype(bool), 0
            for piece in found.to_batches():
                yield piece, chosen[done:done + piece.num_rows]
                done += piece.num_rows
            found = None  # mimalloc keeps freed pages: decoded row groups would stay in the process's memory
            pa.default_memory_pool().release_unused()


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
