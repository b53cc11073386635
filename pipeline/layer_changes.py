"""A layer's change file (变更集) and the published rows it carries: an update or delete names a row of the
previous version by its position, and the row is copied out of the part's row store or decoded from the row
groups that hold it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.changes import CHANGE_COLUMN, ChangeSet, change_schema
from pipeline.layers import Part
from pipeline.row_store import PrefetchedRows, RowStore
from pipeline.validate import key_array

DELETED_ROWS_AT_ONCE = 65_536  # deleted rows read and written to the change set at once


def rows_at(part: Part, positions: np.ndarray) -> pa.Table:
    """The rows of a file at some positions (ascending): copied out of the part's row store where the publish
    wrote one, else decoding only the row groups that hold them (rows spread over a whole table, such as
    random deletes, touch every row group: the whole part is decoded)."""
    stored = _stored_rows_at(part, positions)
    return stored if stored is not None else parquet_rows_at(part, positions)


def parquet_rows_at(part: Part, positions: np.ndarray) -> pa.Table:
    """The rows at some positions (ascending) decoded from the row groups that hold them: cheaper than the row
    store for rows that lie close together (a store's pages are read one at a time)."""
    parquet = pq.ParquetFile(part.path)
    starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    groups = np.searchsorted(starts, positions, side="right") - 1
    pieces = []
    for group in np.unique(groups):
        local = positions[groups == group] - starts[group]
        pieces.append(parquet.read_row_group(int(group)).take(pa.array(local)))
    return pa.concat_tables(pieces) if pieces else parquet.schema_arrow.empty_table()


def _stored_rows_at(part: Part, positions: np.ndarray) -> pa.Table | None:
    """The rows from the part's row store, or None when the part has none, or one that does not hold the part
    row for row (pipeline.row_store)."""
    store = RowStore.open(part)
    if store is None:
        return None
    try:
        return store.take(positions)
    finally:
        store.close()


class ChangeWriter:
    """A layer's change file: the delta's inserts and updates, then the deletes carrying their old rows."""

    def __init__(self, out: Path, *, schema: pa.Schema, since: int) -> None:
        self.target = change_schema(schema)
        self.result = ChangeSet(since_version=since, file=out.name)
        # No dictionaries: a layer's change file is small and written on every run, where they cost a third.
        self.writer = pq.ParquetWriter(out, self.target, compression="snappy", use_dictionary=False)

    def write_delta(self, delta: list[Path], key: tuple[str, ...], wanted: pa.Array, existed: np.ndarray,
                    unchanged: np.ndarray) -> None:
        target, result = self.target, self.result
        for path in delta:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                index = pc.index_in(key_array(batch, key), value_set=wanted).to_numpy(zero_copy_only=False)
                keep = ~unchanged[index]
                if not keep.any():
                    continue
                batch = batch.filter(pa.array(keep))
                updates = existed[index[keep]]
                kinds = pc.if_else(pa.array(updates), "update", "insert")
                arrays = [batch.column(f.name).cast(f.type) if f.name != CHANGE_COLUMN else kinds for f in target]
                self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=target))
                result.updated += int(updates.sum())
                result.inserted += int((~updates).sum())

    def write_deletes(self, deletes: list[tuple[Part, np.ndarray]], *,
                      prefetched: PrefetchedRows | None = None) -> None:
        """A delete carries the row as last published. The rows are read and written DELETED_ROWS_AT_ONCE at a
        time: a source that dropped most of a table must not bring every old row into memory at once.
        ``prefetched``: rows the key scan read as it found them (pipeline.row_store says why)."""
        for part, positions in deletes:
            positions = np.sort(positions)
            for first in range(0, len(positions), DELETED_ROWS_AT_ONCE):
                wanted = positions[first:first + DELETED_ROWS_AT_ONCE]
                rows = prefetched.rows_at(part, wanted) if prefetched is not None else None
                if rows is None:
                    rows = rows_at(part, wanted)
                kinds = pa.array(["delete"] * rows.num_rows, pa.string())
                arrays = [rows.column(f.name).cast(f.type) if f.name != CHANGE_COLUMN else kinds
                          for f in self.target]
                self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.target))
                self.result.deleted += rows.num_rows
                rows = arrays = None
                pa.default_memory_pool().release_unused()  # mimalloc would keep the decoded row groups' pages

    def close(self, *, deletes_detected: bool) -> dict:
        self.writer.close()
        self.result.deletes_detected = deletes_detected
        return self.result.summary()

    def abort(self) -> None:
        self.writer.close()
