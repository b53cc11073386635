"""The scan of a source's keys (键扫描) for deletes: its result, the key stream a run can stop, the keys' form.

Shared by both ways of comparing the source's keys with the published ones (pipeline/deletes_merge.py for a
single integer key, the DuckDB anti-join in pipeline/deletes.py for any other) and by the change set, which
takes the deleted keys back to the key's columns (``key_table``). Separate so that the two comparisons and the
scan that chooses between them (pipeline/deletes.py) share these without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.row_store import PrefetchedRows


@dataclass
class KeyScan:
    deleted: pa.Array  # published keys the source no longer has (key_array's form)
    watched_gone: set[str] = field(default_factory=set)  # watched keys (text) the source no longer has
    source_keys: int = 0
    method: str = ""
    ranges: int = 1  # key ranges read at once (the merge of an integer key, where the source can)
    rows: PrefetchedRows | None = None  # the deleted keys' published rows, read as they were found


class Stopped(Exception):
    """The run that started the scan ended first."""


def until_stopped(batches: Iterator[pa.RecordBatch], stop: threading.Event | None) -> Iterator[pa.RecordBatch]:
    """The batches until ``stop`` is set (then Stopped); the stream is closed either way, and its connection
    with it."""
    try:
        for batch in batches:
            if stop is not None and stop.is_set():
                raise Stopped
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def without_keys(keys: pa.Array, exclude: pa.Array) -> pa.Array:
    """``keys`` less the ``exclude`` keys (those a run read: present at the source, so not deleted)."""
    if not len(keys) or not len(exclude):
        return keys
    if pa.types.is_null(exclude.type):
        return keys
    return keys.filter(pc.invert(pc.is_in(keys, value_set=exclude.cast(keys.type))))


def key_table(keys: pa.Array, key: tuple[str, ...], schema: pa.Schema) -> pa.Table:
    """key_array's form back to the key's columns (a composite key is joined text)."""
    if len(key) == 1:
        return pa.table({key[0]: keys.cast(schema.field(key[0]).type)})
    parts = pc.split_pattern(keys, "\x1f")
    return pa.table({name: pc.list_element(parts, i).cast(schema.field(name).type) for i, name in enumerate(key)})
