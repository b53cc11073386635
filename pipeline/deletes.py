"""Deletes in every incremental run (删除检测): the source's key column, streamed, against the published keys.

A cursor read cannot see a deleted row. So an incremental run of a keyed database stream also reads the key
columns alone (``Connector.read_keys``) and compares them with the live keys of the version it builds on:
a published key the source no longer has, and the run did not just read, was deleted. Memory stays bounded
whatever the table's size:

- a single integer key, sorted by the source (``ORDER BY`` the primary key's index) and located in every
  published part (pipeline/locator.py: sorted keys, memory-mapped), is compared by a streaming merge: each
  batch of source keys is checked against the slice of every part's sorted keys it covers, with NumPy;
- any other key (text, composite, or a source that did not sort as published, e.g. integer ids kept as text)
  is written to a Parquet file in the run's scratch folder and anti-joined with the published keys by DuckDB,
  under a memory limit with spill.

The scan runs beside the cursor read (``BackgroundScan``, which says why that is as exact as after it). Keys
of open quarantine records (``watch``) are checked too: one the source no longer has closes its records as
deleted.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import Connector, StreamSpec
from pipeline.duckdb_parts import readable_parts, readable_schema
from pipeline.layers import Part, deleted_positions, is_dead, live_sql
from pipeline.locator import Mapped
from pipeline.locator import _files as locator_files
from pipeline.locator import supports as locator_supports
from pipeline.quarantine import seen_keys
from pipeline.row_store import PrefetchReader, PrefetchedRows
from pipeline.validate import key_array


@dataclass
class KeyScan:
    deleted: pa.Array  # published keys the source no longer has (key_array's form)
    watched_gone: set[str] = field(default_factory=set)  # watched keys (text) the source no longer has
    source_keys: int = 0
    method: str = ""
    ranges: int = 1  # key ranges read at once (the merge of an integer key, where the source can)
    rows: PrefetchedRows | None = None  # the deleted keys' published rows, read as they were found


class _Unordered(Exception):
    """The source's keys did not come sorted as integers: the merge cannot be used."""


def scan_deletes(*, connector: Connector, stream: StreamSpec, parts: list[Part], key: tuple[str, ...],
                 schema: pa.Schema, exclude: pa.Array, watch: list[str], scratch: Path,
                 stop: threading.Event | None = None) -> KeyScan:
    """Find the published keys the source no longer has (except the ``exclude`` keys the run just read).
    ``stop``: set by another thread to end the scan early (it then raises _Stopped)."""
    watch_set = pa.array(sorted(set(watch)), pa.string())
    mergeable = (locator_supports(schema, key) and parts
                 and all(p.locator is not None and all(f.is_file() for f in locator_files(p.locator)) for p in parts))
    if mergeable:
        try:
            scan = _merge(_ranges(connector, stream, parts, stop), parts, key, watch_set)
            scan.deleted = _without(scan.deleted, exclude)
            return scan
        except _Unordered:
            pass  # read again, unordered, and let DuckDB compare
    return _anti_join(_until(connector.read_keys(stream, ordered=False), stop), parts, key, schema, exclude,
                      watch_set, scratch)


class _Stopped(Exception):
    """The run that started the scan ended first."""


def _until(batches: Iterator[pa.RecordBatch], stop: threading.Event | None) -> Iterator[pa.RecordBatch]:
    try:
        for batch in batches:
            if stop is not None and stop.is_set():
                raise _Stopped
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


class BackgroundScan:
    """The key scan run beside the cursor read, in a thread of its own: the source's key stream (the database
    server's work, most of the scan's time) overlaps the run's own reading, checks and writing.

    Why starting it before the cursor read is as exact as after: a published key is taken for deleted only if
    the key scan did not see it *and* the cursor read did not read it (``result(exclude=...)``). A row deleted
    after the key scan saw it is found by the next run; one deleted after the cursor read read it is kept, with
    the values read, and found by the next run; a row inserted while the two reads run is not a published key,
    so it is never taken for a delete, and the cursor reads it (now or next run)."""

    def __init__(self, **scan: object) -> None:
        self._stop = threading.Event()
        self._result: KeyScan | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, kwargs=scan, name="govshare-key-scan", daemon=True)
        self._thread.start()

    def _run(self, **scan: object) -> None:
        try:
            self._result = scan_deletes(**scan, exclude=pa.array([], pa.int64()), stop=self._stop)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised in the run's thread by result()
            self._error = exc
        finally:
            self.seconds = time.monotonic() - self._started

    def result(self, *, exclude: pa.Array) -> KeyScan:
        """Wait for the scan; the deletes without the ``exclude`` keys (the keys the run read)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        scan = self._result
        scan.deleted = _without(scan.deleted, exclude)
        return scan

    def cancel(self) -> None:
        """The run failed or took another path: end the scan (its connection closes with its stream). A
        source that hangs is left to its daemon thread after a while: the run's own error matters more."""
        self._stop.set()
        self._thread.join(timeout=60)


def _without(keys: pa.Array, exclude: pa.Array) -> pa.Array:
    if not len(keys) or not len(exclude):
        return keys
    if pa.types.is_null(exclude.type):
        return keys
    return keys.filter(pc.invert(pc.is_in(keys, value_set=exclude.cast(keys.type))))


# --- a single integer key: streaming merge against the locators ----------------------------------------------

KEY_RANGES = 4  # ranges of an integer key read at once, each over its own connection, where the source can


def _ranges(connector: Connector, stream: StreamSpec, parts: list[Part],
            stop: threading.Event | None) -> list[tuple[Iterator[pa.RecordBatch], int | None, int | None]]:
    """The sorted key streams to merge, with the key range each covers: KEY_RANGES ranges split at the
    published keys' quantiles where the source reads key ranges of an integer column, else one stream."""
    whole = [(_until(connector.read_keys(stream, ordered=True), stop), None, None)]
    if not connector.reads_key_ranges or KEY_RANGES < 2:
        return whole
    try:
        source_type = connector.stream_schema(stream).field(stream.primary_key[0]).type
    except (KeyError, NotImplementedError):
        return whole
    if not pa.types.is_integer(source_type):
        return whole
    # Cuts where the source may send a chunk of keys at once (about CHUNK_KEYS published keys apart); every
    # so many of them also bound the ranges.
    splits = _quantiles(parts, max(KEY_RANGES, sum(p.rows for p in parts) // CHUNK_KEYS))
    bounds = sorted({splits[len(splits) * i // KEY_RANGES] for i in range(1, KEY_RANGES)}) if splits else []
    if not bounds:
        return whole
    edges = [None, *bounds, None]
    return [(_until(connector.read_key_range(stream, low=low, high=high, splits=splits), stop), low, high)
            for low, high in zip(edges[:-1], edges[1:])]


CHUNK_KEYS = 65_536  # keys a source may send in one row of its key range (connectors.postgres_keys)


def _quantiles(parts: list[Part], count: int) -> list[int]:
    """Keys splitting the published keys into ``count`` ranges of about as many keys (from a sample)."""
    samples, total, wanted = [], max(sum(p.rows for p in parts), 1), max(256, 4 * count)
    for part in parts:
        mapped = Mapped(locator_files(part.locator)[0], random=True)
        try:
            keys = mapped.array
            if len(keys):
                samples.append(keys[np.linspace(0, len(keys) - 1, max(2, wanted * len(keys) // total))
                                    .astype(np.int64)])
        finally:
            keys = None
            mapped.close()
    if not samples:
        return []
    sample = np.sort(np.concatenate(samples))
    return sorted({int(sample[len(sample) * i // count]) for i in range(1, count)} - {int(sample[0])})


@dataclass
class _Sorted:
    mapped: Mapped  # the part's keys, sorted (memory-mapped, read front to back)
    positions: Mapped  # their row positions (read where a key is missing)
    dead: np.ndarray  # the part's deleted positions, sorted
    at: int = 0  # how far the merge has come
    stop: int = 0  # where its key range ends

    def missing(self, upto: int | None, present: _Present) -> tuple[np.ndarray, np.ndarray]:
        """Live keys of this part up to ``upto`` (all that remain in its range: None) not in ``present``, and
        their row positions."""
        keys = self.mapped.array
        end = self.stop if upto is None else \
            self.at + int(np.searchsorted(keys[self.at:self.stop], upto, side="right"))
        segment = keys[self.at:end]
        rows = self.positions.array[self.at:end]
        self.mapped.release(self.at)  # the keys passed are not read again
        self.at = end
        if not len(segment):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        absent = present.absent(segment)
        gone, positions = np.asarray(segment[absent]), np.asarray(rows[absent])
        # Copied: the positions' pages passed go back too. Absent keys (deletes, and the rows earlier layers
        # marked dead) lie all over the file, so over a scan they touched nearly every page of it.
        self.positions.release(end)
        if len(self.dead) and len(gone):
            live = ~is_dead(self.dead, positions)  # a dead row is not a published key
            gone, positions = gone[live], positions[live]
        return gone, positions


DENSE_SPAN = 8  # a presence table up to this many slots (a byte each) per key read beats bisection


class _Present:
    """A batch of the source's sorted keys, asked which of a part's keys it holds. Where the keys are dense
    (ids), one presence table over the batch's range answers every part in linear time; bisection, which
    cost a search per published key, was the largest share of the hub's work in a key scan."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self.table = None
        if len(keys):
            self.low, span = int(keys[0]), int(keys[-1]) - int(keys[0]) + 1
            if span <= DENSE_SPAN * len(keys):
                self.table = np.zeros(span, dtype=bool)
                self.table[keys - self.low] = True

    def absent(self, segment: np.ndarray) -> np.ndarray:
        """Which of the sorted ``segment`` keys (none above the batch's last key) the batch does not hold."""
        keys = self.keys
        if not len(keys):
            return np.ones(len(segment), dtype=bool)
        if self.table is not None:
            absent = np.ones(len(segment), dtype=bool)
            below = int(np.searchsorted(segment, self.low, side="left"))
            absent[below:] = ~self.table[segment[below:] - self.low]
            return absent
        index = np.minimum(np.searchsorted(keys, segment), len(keys) - 1)
        return keys[index] != segment


def _merge(streams: list[tuple[Iterator[pa.RecordBatch], int | None, int | None]], parts: list[Part],
           key: tuple[str, ...], watch: pa.Array) -> KeyScan:
    """Each key range's stream merged against the slice of every part's sorted keys it covers; the ranges
    at once, each in a thread of its own (the first in this one)."""
    results: list[KeyScan | BaseException | None] = [None] * len(streams)
    dead = [deleted_positions(part) for part in parts]  # the same for every range
    rows = PrefetchedRows()

    def merge_range(index: int) -> None:
        batches, low, high = streams[index]
        sorted_parts = []
        reader = rows.reader()
        try:
            for part, part_dead in zip(parts, dead):
                keys_file, rows_file = locator_files(part.locator)
                mapped = Mapped(keys_file, random=False)
                keys = mapped.array
                start = 0 if low is None else int(np.searchsorted(keys, low, side="left"))
                stop = len(keys) if high is None else int(np.searchsorted(keys, high, side="left"))
                keys = None
                sorted_parts.append(_Sorted(mapped, Mapped(rows_file, random=True), part_dead, at=start, stop=stop))
            results[index] = _merged(batches, sorted_parts, parts, key, watch, reader)
        except BaseException as exc:  # noqa: BLE001 - raised by the caller
            results[index] = exc
        finally:
            reader.close()
            for part in sorted_parts:
                part.mapped.close()
                part.positions.close()
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    others = [threading.Thread(target=merge_range, args=(i,), name="govshare-key-range", daemon=True)
              for i in range(1, len(streams))]
    for thread in others:
        thread.start()
    merge_range(0)
    for thread in others:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    scans = [r for r in results if isinstance(r, KeyScan)]
    watched = set(watch.to_pylist())
    return KeyScan(deleted=pa.concat_arrays([s.deleted for s in scans]).sort() if len(scans) > 1
                   else scans[0].deleted,
                   watched_gone=watched - set().union(*(watched - s.watched_gone for s in scans)),
                   source_keys=sum(s.source_keys for s in scans), method="merge", ranges=len(scans), rows=rows)


def _merged(batches: Iterator[pa.RecordBatch], sorted_parts: list[_Sorted], parts: list[Part],
            key: tuple[str, ...], watch: pa.Array, reader: PrefetchReader) -> KeyScan:
    found: list[np.ndarray] = []
    seen: set[str] = set()
    count, last = 0, None
    for batch in batches:
        column = batch.column(0)
        if column.null_count:
            column = column.drop_null()
        if not pa.types.is_integer(column.type):  # e.g. ids kept as text, published as integers by a contract
            try:                                  # (the source sorts them as text: the order check says so)
                column = column.cast(pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise _Unordered from None
        values = column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if not len(values):
            continue
        if (last is not None and values[0] < last) or (len(values) > 1 and bool(np.any(values[1:] < values[:-1]))):
            raise _Unordered
        last = int(values[-1])
        count += len(values)
        seen.update(seen_keys(batch, key, watch))
        present = _Present(values)
        found += _found(sorted_parts, parts, last, present, reader)
    found += _found(sorted_parts, parts, None, _Present(np.empty(0, np.int64)), reader)
    deleted = np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)
    return KeyScan(deleted=pa.array(deleted).cast(pq.read_schema(parts[0].path).field(key[0]).type),
                   watched_gone=set(watch.to_pylist()) - seen, source_keys=count, method="merge")


def _found(sorted_parts: list[_Sorted], parts: list[Part], upto: int | None, present: _Present,
           reader: PrefetchReader) -> list[np.ndarray]:
    """The keys missing up to ``upto`` in every part; their rows are read meanwhile (pipeline.row_store)."""
    found = []
    for sorted_part, part in zip(sorted_parts, parts):
        keys, positions = sorted_part.missing(upto, present)
        reader.read(part, positions)
        found.append(keys)
    return found


# --- any key: DuckDB anti-join, spilling to the scratch folder -------------------------------------------------

def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _anti_join(batches: Iterator[pa.RecordBatch], parts: list[Part], key: tuple[str, ...], schema: pa.Schema,
               exclude: pa.Array, watch: pa.Array, scratch: Path) -> KeyScan:
    import duckdb

    scratch.mkdir(parents=True, exist_ok=True)
    target = pa.schema([schema.field(name) for name in key])
    # wide decimal keys go to DuckDB as exact text, on both sides (pipeline.duckdb_parts)
    readable = readable_schema(target)
    source = scratch / "source_keys.parquet"
    seen: set[str] = set()
    count = 0
    try:
        with pq.ParquetWriter(source, readable) as writer:
            for batch in batches:
                batch = pa.RecordBatch.from_arrays([batch.column(n).cast(target.field(n).type) for n in key],
                                                   schema=target)
                count += batch.num_rows
                seen.update(seen_keys(batch, key, watch))
                writer.write_batch(batch.cast(readable))
        parts = readable_parts(parts, scratch=scratch / "parts", columns=list(key))
        connection = duckdb.connect(config={"threads": "2", "memory_limit": "96MB", "temp_directory": str(scratch),
                                            "preserve_insertion_order": False})
        try:
            columns = ", ".join(_quoted(n) for n in key)
            on = " AND ".join(f"s.{_quoted(n)} = p.{_quoted(n)}" for n in key)
            query = (f"SELECT {', '.join('p.' + _quoted(n) for n in key)} FROM (SELECT {columns} FROM "
                     f"{live_sql(parts, connection)}) p WHERE NOT EXISTS (SELECT 1 FROM read_parquet('"
                     + str(source).replace("'", "''") + f"') s WHERE {on})")
            found = connection.execute(query).fetch_arrow_table()
        finally:
            connection.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    deleted = key_array(found.cast(target), key) if found.num_rows else pa.array([], _key_type(target, key))
    return KeyScan(deleted=_without(deleted, exclude), watched_gone=set(watch.to_pylist()) - seen,
                   source_keys=count, method="anti-join")


def _key_type(schema: pa.Schema, key: tuple[str, ...]) -> pa.DataType:
    return schema.field(key[0]).type if len(key) == 1 else pa.string()


def key_table(keys: pa.Array, key: tuple[str, ...], schema: pa.Schema) -> pa.Table:
    """key_array's form back to the key's columns (a composite key is joined text)."""
    if len(key) == 1:
        return pa.table({key[0]: keys.cast(schema.field(key[0]).type)})
    parts = pc.split_pattern(keys, "\x1f")
    return pa.table({name: pc.list_element(parts, i).cast(schema.field(name).type) for i, name in enumerate(key)})
