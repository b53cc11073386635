"""A part's row store read row by row (行存储): the rows a change set carries for its deletes and updates.

The row store (pipeline.lookup_index: the part's rows in file order as uncompressed Arrow, written at publish
time for key lookups) is memory-mapped, so a row costs a copy of its values rather than the decoding of the
row groups that hold it.

Why the key scan prefetches the deleted rows (``PrefetchedRows``): a delete carries the row as last
published, and a run knows its deletes only as the key scan finds them. Read after the scan, those rows were
on the run's critical path: about 0.15-0.3 s for 1,000 scattered deletes on the bench's machine (a page fault
for each value of each row, 2 us each in its virtual machine, and disk reads where the file had left the page
cache), a fifth of the incremental run. The scan's threads mostly wait for the source's next keys, so each
reads the rows of the deletes it has just found meanwhile. The change set then takes the rows the run counts
as deleted from them (a key the cursor read read again is not deleted: its prefetched row is not used). At
most PREFETCH_ROWS rows are kept, so memory stays bounded: a source that dropped most of a table has the rest
read after the scan, DELETED_ROWS_AT_ONCE at a time (pipeline.layer_changes), as before. Parts without a row
store are not prefetched: a few rows at a time would decode the same row groups again and again.
"""

from __future__ import annotations

import mmap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.layers import Part
from pipeline.lookup_index import published_stem, row_store_path

ROW_READERS = 8  # record batches of a row store read at once when rows are taken from it (I/O overlapped)
PREFETCH_ROWS = 65_536  # deleted rows the key scan reads ahead of the change set, at most


class RowStore:
    """One part's row store, open: rows taken by position (ascending), copied out of the mapping."""

    def __init__(self, mapping: mmap.mmap, batches: list[pa.RecordBatch]) -> None:
        self._mapping = mapping
        self._batches = batches
        self._starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]])

    @classmethod
    def open(cls, part: Part) -> RowStore | None:
        """The part's row store, or None when it has none, or one that does not hold the part row for row."""
        name = part.entry.get("path")
        if not name:
            return None
        path = row_store_path(published_stem(Path(str(part.path)[: -len(name)].rstrip("/")), name))
        if not path.is_file():
            return None
        # Pages mapped count in the process's resident memory, and the kernel maps whole neighbourhoods (large
        # folios) of a touched page: rows spread over the file would map most of it. So no read-ahead, and the
        # pages are given back after each round of record batches (they stay in the page cache).
        with path.open("rb") as handle:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        mapping.madvise(mmap.MADV_RANDOM)
        reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        if batches and sum(b.num_rows for b in batches) == part.rows \
                and batches[0].schema.names == pq.read_schema(part.path).names:
            return cls(mapping, batches)
        reader = batches = None
        _close(mapping)
        return None

    def take(self, positions: np.ndarray, *, threads: int = ROW_READERS) -> pa.Table:
        """The rows at ``positions`` (ascending). A row's values sit on pages of their own in every column:
        where the file has left the page cache, each is a read from disk, so with ``threads`` the batches of
        a round are taken at once (their reads overlap; take releases the GIL)."""
        which = np.searchsorted(self._starts, positions, side="right") - 1
        jobs = [(self._batches[b], pa.array(positions[which == b] - self._starts[b])) for b in np.unique(which)]
        taken: list[pa.RecordBatch] = []
        if threads <= 1:  # beside other readers (the key scan's threads): each batch's pages go back at once
            for batch, local in jobs:
                taken.append(batch.take(local))
                self._mapping.madvise(mmap.MADV_DONTNEED)
        else:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="govshare-rows") as pool:
                for first in range(0, len(jobs), threads):
                    taken += pool.map(lambda job: job[0].take(job[1]), jobs[first:first + threads])
                    self._mapping.madvise(mmap.MADV_DONTNEED)
        schema = self._batches[0].schema
        # take copies: nothing returned points into the mapping
        return pa.Table.from_batches(taken, schema=schema) if taken else schema.empty_table()

    def close(self) -> None:
        self._batches = []
        _close(self._mapping)


def _close(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:  # a buffer of it still lives: the mapping goes with it
        pass


class PrefetchedRows:
    """Rows of published parts read ahead by the key scan's threads, by part and position."""

    def __init__(self, *, limit: int | None = None) -> None:
        self._limit = PREFETCH_ROWS if limit is None else limit
        self._kept = 0
        self._lock = threading.Lock()
        self._rows: dict[str, list[tuple[np.ndarray, pa.Table]]] = {}
        self._joined: dict[str, tuple[np.ndarray, np.ndarray, pa.Table]] = {}

    def reader(self) -> PrefetchReader:
        """A reader for one thread: it keeps the row stores it opens until it is closed."""
        return PrefetchReader(self)

    def _reserve(self, rows: int) -> bool:
        with self._lock:
            if self._kept + rows > self._limit:
                return False
            self._kept += rows
            return True

    def _keep(self, part: Part, positions: np.ndarray, table: pa.Table) -> None:
        with self._lock:
            self._rows.setdefault(str(part.path), []).append((positions, table))
            self._joined.pop(str(part.path), None)

    def rows_at(self, part: Part, positions: np.ndarray) -> pa.Table | None:
        """The prefetched rows at ``positions`` (ascending), or None unless every one of them was read."""
        with self._lock:
            name = str(part.path)
            if name not in self._rows or not len(positions):
                return None
            if name not in self._joined:
                pieces = self._rows[name]
                read = np.concatenate([p for p, _ in pieces])
                order = np.argsort(read, kind="stable")
                self._joined[name] = (read[order], order, pa.concat_tables([t for _, t in pieces]))
            read, order, table = self._joined[name]
        index = np.searchsorted(read, positions)
        if int(index[-1]) >= len(read) or not np.array_equal(read[index], positions):
            return None
        return table.take(pa.array(order[index]))


class PrefetchReader:
    def __init__(self, rows: PrefetchedRows) -> None:
        self._rows = rows
        self._stores: dict[str, RowStore | None] = {}

    def read(self, part: Part, positions: np.ndarray) -> None:
        """Read the rows at ``positions`` (any order) ahead, where the part has a row store and room is left."""
        if not len(positions):
            return
        name = str(part.path)
        try:
            if name not in self._stores:
                self._stores[name] = RowStore.open(part)
            store = self._stores[name]
            if store is None or not self._rows._reserve(len(positions)):
                return
            positions = np.sort(positions)
            self._rows._keep(part, positions, store.take(positions, threads=1))
        except (OSError, ValueError, pa.ArrowException):
            # Only a read ahead: the change set reads what it needs after the scan, and fails there with the
            # error if the rows are needed (a key the cursor read read again needs none).
            if (broken := self._stores.get(name)) is not None:
                broken.close()
            self._stores[name] = None

    def close(self) -> None:
        for store in self._stores.values():
            if store is not None:
                store.close()
        self._stores = {}
