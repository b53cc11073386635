"""A layer's change file (变更集) and the published rows it carries: an update or delete names a row of the
previous version by its position, and the row is copied out of the part's row store or decoded from the row
groups that hold it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.changes import CHANGE_COLUMN, ChangeSet, change_schema
from pipeline.layers import Part
from pipeline.validate import key_array

DELETED_ROWS_AT_ONCE = 65_536  # deleted rows read and written to the change set at once
ROW_READERS = 8  # record batches of a row store read at once when rows are taken from it (I/O overlapped)


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
    """The rows from the part's row store (pipeline.lookup_index: uncompressed Arrow, memory-mapped, so a row
    costs a copy of its values), or None when the part has none, or one that does not hold the part row
    for row."""
    from pipeline.lookup_index import published_stem, row_store_path

    name = part.entry.get("path")
    if not name:
        return None
    path = row_store_path(published_stem(Path(str(part.path)[: -len(name)].rstrip("/")), name))
    if not path.is_file():
        return None
    import mmap

    # Pages mapped count in the process's resident memory, and the kernel maps whole neighbourhoods (large
    # folios) of a touched page: rows spread over the file would map most of it. So no read-ahead, and the
    # pages are given back after each round of record batches (they stay in the page cache). A row's values
    # sit on pages of their own in every column: where the file has left the page cache, each is a read from
    # disk, so the batches of a round are taken in threads (their reads overlap; take releases the GIL).
    with path.open("rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    mapping.madvise(mmap.MADV_RANDOM)
    try:
        reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        if sum(b.num_rows for b in batches) != part.rows or not batches \
                or batches[0].schema.names != pq.read_schema(part.path).names:
            return None
        starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]])
        which = np.searchsorted(starts, positions, side="right") - 1
        jobs = [(batches[b], pa.array(positions[which == b] - starts[b])) for b in np.unique(which)]
        taken = []
        with ThreadPoolExecutor(max_workers=ROW_READERS, thread_name_prefix="govshare-rows") as pool:
            for first in range(0, len(jobs), ROW_READERS):
                taken += pool.map(lambda job: job[0].take(job[1]), jobs[first:first + ROW_READERS])
                mapping.madvise(mmap.MADV_DONTNEED)
        return pa.Table.from_batches(taken, schema=batches[0].schema) if taken else \
            batches[0].schema.empty_table()  # take copies: nothing returned points into the mapping
    finally:
        reader = batches = None
        try:
            mapping.close()
        except BufferError:  # a buffer of it still lives: the mapping goes with it
            pass


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

    def write_deletes(self, deletes: list[tuple[Part, np.ndarray]]) -> None:
        """A delete carries the row as last published. The rows are read and written DELETED_ROWS_AT_ONCE at a
        time: a source that dropped most of a table must not bring every old row into memory at once."""
        for part, positions in deletes:
            positions = np.sort(positions)
            for first in range(0, len(positions), DELETED_ROWS_AT_ONCE):
                wanted = positions[first:first + DELETED_ROWS_AT_ONCE]
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
