"""A single integer key's deletes (删除检测): the source's sorted keys merged against the published sorted keys.

Where the key is a single integer column, sorted by the source (``ORDER BY`` the primary key's index) and
located in every published part (pipeline/locator.py: sorted keys, memory-mapped), each batch of source keys
is checked against the slice of every part's sorted keys it covers, with NumPy, and the published rows of
the keys found missing are read meanwhile (pipeline/row_store.py). Where the source reads key ranges, the
keys are read as ``KEY_RANGES`` ranges at once, each merged in a thread of its own. A source whose keys do not
come sorted as integers raises ``Unordered``: pipeline/deletes.py then compares them by a DuckDB anti-join.
Separate from that choice and from the anti-join: this is the fast path, and all its NumPy work is here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import Connector, StreamSpec
from pipeline.key_scan import KeyScan, until_stopped
from pipeline.layers import Part, deleted_positions, is_dead
from pipeline.locator import Mapped
from pipeline.locator import _files as locator_files
from pipeline.quarantine import seen_keys
from pipeline.row_store import PrefetchReader, PrefetchedRows


class Unordered(Exception):
    """The source's keys did not come sorted as integers: the merge cannot be used."""


KEY_RANGES = 4  # ranges of an integer key read at once, each over its own connection, where the source can


def key_range_streams(connector: Connector, stream: StreamSpec, parts: list[Part],
                      stop: threading.Event | None) -> list[tuple[Iterator[pa.RecordBatch], int | None, int | None]]:
    """The sorted key streams to merge, with the key range each covers: KEY_RANGES ranges split at the
    published keys' quantiles where the source reads key ranges of an integer column, else one stream."""
    whole = [(until_stopped(connector.read_keys(stream, ordered=True), stop), None, None)]
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
    return [(until_stopped(connector.read_key_range(stream, low=low, high=high, splits=splits), stop), low, high)
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


def merge_key_streams(streams: list[tuple[Iterator[pa.RecordBatch], int | None, int | None]], parts: list[Part],
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
                raise Unordered from None
        values = column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if not len(values):
            continue
        if (last is not None and values[0] < last) or (len(values) > 1 and bool(np.any(values[1:] < values[:-1]))):
            raise Unordered
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
