"""Deletes in every incremental run (删除检测): the source's key column, streamed, against the published keys.

A cursor read cannot see a deleted row. So an incremental run of a keyed database stream also reads the key
columns alone (``Connector.read_keys``) and compares them with the live keys of the version it builds on:
a published key the source no longer has, and the run did not just read, was deleted. Memory stays bounded
whatever the table's size:

- a single integer key, sorted by the source (``ORDER BY`` the primary key's index) and located in every
  published part (pipeline/locator.py: sorted keys, memory-mapped), is compared by a streaming merge: each
  batch of source keys is checked against the slice of every part's sorted keys it covers, with NumPy
  (pipeline/deletes_merge.py);
- any other key (text, composite, or a source that did not sort as published, e.g. integer ids kept as text)
  is written to a Parquet file in the run's scratch folder and anti-joined with the published keys by DuckDB,
  under a memory limit with spill (here).

Both give a ``KeyScan`` (pipeline/key_scan.py). The scan runs beside the cursor read (``BackgroundScan``,
which says why that is as exact as after it). Keys of open quarantine records (``watch``) are checked too:
one the source no longer has closes its records as deleted.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import Connector, StreamSpec
from pipeline.deletes_merge import Unordered, key_range_streams, merge_key_streams
from pipeline.duckdb_parts import readable_parts, readable_schema
from pipeline.key_scan import KeyScan, Stopped, until_stopped, without_keys
from pipeline.layers import Part, live_sql
from pipeline.locator import _files as locator_files
from pipeline.locator import supports as locator_supports
from pipeline.quarantine import seen_keys
from pipeline.validate import key_array


def scan_deletes(*, connector: Connector, stream: StreamSpec, parts: list[Part], key: tuple[str, ...],
                 schema: pa.Schema, exclude: pa.Array, watch: list[str], scratch: Path,
                 stop: threading.Event | None = None) -> KeyScan:
    """Find the published keys the source no longer has (except the ``exclude`` keys the run just read).
    ``stop``: set by another thread to end the scan early (it then raises Stopped)."""
    watch_set = pa.array(sorted(set(watch)), pa.string())
    mergeable = (locator_supports(schema, key) and parts
                 and all(p.locator is not None and all(f.is_file() for f in locator_files(p.locator)) for p in parts))
    if mergeable:
        try:
            scan = merge_key_streams(key_range_streams(connector, stream, parts, stop), parts, key, watch_set)
            scan.deleted = without_keys(scan.deleted, exclude)
            return scan
        except Unordered:
            pass  # read again, unordered, and let DuckDB compare
    return _anti_join(until_stopped(connector.read_keys(stream, ordered=False), stop), parts, key, schema, exclude,
                      watch_set, scratch)


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
        except Stopped:
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
        scan.deleted = without_keys(scan.deleted, exclude)
        return scan

    def cancel(self) -> None:
        """The run failed or took another path: end the scan (its connection closes with its stream). A
        source that hangs is left to its daemon thread after a while: the run's own error matters more."""
        self._stop.set()
        self._thread.join(timeout=60)


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
    return KeyScan(deleted=without_keys(deleted, exclude), watched_gone=set(watch.to_pylist()) - seen,
                   source_keys=count, method="anti-join")


def _key_type(schema: pa.Schema, key: tuple[str, ...]) -> pa.DataType:
    return schema.field(key[0]).type if len(key) == 1 else pa.string()
