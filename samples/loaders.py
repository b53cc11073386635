"""Stream the synthetic enterprise registry into real databases, one bounded batch at a time.

Each loader creates the table with the database's own types (unless ``drop_existing=False`` and it exists),
writes ``rows`` rows from ``samples.enterprises.iter_enterprise_batches`` and returns how many it wrote; the
whole table is never held in memory. ``start_id`` lets a later call append more rows of the same seed.

How each database keeps the values:
- SQLite: dates as ISO text, ``updated_at`` as ISO 8601 text with its ``+08:00`` offset, ``reg_capital`` in a
  NUMERIC column (SQLite keeps such decimals as REAL; every generated amount has at most 13 significant
  digits, so it reads back exactly once rounded to 2 places).
- PostgreSQL: ``numeric(18,2)``, ``date``, ``timestamptz``; loaded with ``COPY ... FROM STDIN`` (CSV).
- MySQL/MariaDB: ``DECIMAL(18,2)``, ``DATE``, ``DATETIME(6)`` holding Asia/Shanghai wall-clock time, because
  DATETIME has no time zone (the column comment says so).
"""

from __future__ import annotations

import io
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from samples.enterprises import (
    DISTRICTS,
    capital_array,
    enterprise_schema,
    iter_enterprise_batches,
    pick_addresses,
    pick_capital_cents,
    pick_statuses,
    weighted_pick,
)

COLUMNS = tuple(enterprise_schema().names)
DEFAULT_BATCH_ROWS = 100_000


def _column_labels() -> dict[str, str]:
    return {field.name: field.metadata[b"label"].decode() for field in enterprise_schema()}


def _python_columns(batch: pa.RecordBatch, *, timestamp_format: str) -> list[tuple[object, ...]]:
    """Rows of plain Python values (ints and strings): every driver binds them without adapters."""
    def as_python(name: str) -> list[object]:
        column = batch.column(name)
        if name == "updated_at":
            return pc.strftime(column, format=timestamp_format).to_pylist()
        if name in ("reg_capital", "established"):
            return pc.cast(column, pa.string()).to_pylist()  # exact decimal text, ISO date
        return column.to_pylist()

    return list(zip(*(as_python(name) for name in COLUMNS), strict=True))


# --- SQLite ---------------------------------------------------------------------------------------------------

def _sqlite_name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def load_sqlite(path: str | Path, *, table: str = "enterprises", rows: int, seed: int = 0, start_id: int = 1,
                batch_rows: int = DEFAULT_BATCH_ROWS, drop_existing: bool = True) -> int:
    """Load into a SQLite file inside one transaction; returns the number of rows written."""
    name = _sqlite_name(table)
    # one transaction: commits on success, rolls back the whole load on error
    with closing(sqlite3.connect(path)) as conn, conn:
        if drop_existing:
            conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {name} (
            id INTEGER PRIMARY KEY, uscc TEXT NOT NULL, name TEXT NOT NULL, legal_rep TEXT NOT NULL,
            legal_rep_id TEXT NOT NULL, reg_capital NUMERIC(18, 2) NOT NULL, established TEXT NOT NULL,
            status TEXT NOT NULL, address TEXT NOT NULL, industry TEXT NOT NULL, updated_at TEXT NOT NULL)""")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {_sqlite_name(table + '_updated_at_idx')} "
                     f"ON {name} (updated_at)")
        insert = f"INSERT INTO {name} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        written = 0
        for batch in iter_enterprise_batches(rows=rows, seed=seed, batch_rows=batch_rows, start_id=start_id):
            # SQLite's date functions want "+08:00", Arrow's %z gives "+0800"
            values = _python_columns(batch, timestamp_format="%Y-%m-%dT%H:%M:%S%z")
            conn.executemany(insert, [row[:-1] + (row[-1][:-2] + ":" + row[-1][-2:],) for row in values])
            written += batch.num_rows
    return written


# --- PostgreSQL -----------------------------------------------------------------------------------------------

_POSTGRES_COLUMN_TYPES = {
    "id": "bigint PRIMARY KEY", "uscc": "varchar(18) NOT NULL", "name": "text NOT NULL",
    "legal_rep": "varchar(32) NOT NULL", "legal_rep_id": "varchar(18) NOT NULL",
    "reg_capital": "numeric(18,2) NOT NULL", "established": "date NOT NULL", "status": "varchar(8) NOT NULL",
    "address": "text NOT NULL", "industry": "text NOT NULL", "updated_at": "timestamptz NOT NULL",
}


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, so one COPY can stream every batch."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _prefetch(items: Iterator[bytes], *, depth: int = 2) -> Iterator[bytes]:
    """Produce the next items in a thread while the caller consumes: generation overlaps the COPY.

    The bounded queue keeps at most ``depth`` chunks in memory.
    """
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                handoff.put(("item", item))
            handoff.put(("done", None))
        except BaseException as error:  # noqa: BLE001 - re-raised in the consuming thread
            handoff.put(("error", error))

    worker = threading.Thread(target=produce, name="govshare-sample-csv", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "error":
                raise value  # type: ignore[misc]
            if kind == "done":
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def _csv_chunks(batches: Iterator[pa.RecordBatch], counter: list[int]) -> Iterator[bytes]:
    options = pa_csv.WriteOptions(include_header=False)  # strings quoted, timestamps written with +0800
    for batch in batches:
        sink = io.BytesIO()
        pa_csv.write_csv(batch, sink, options)
        counter[0] += batch.num_rows
        yield sink.getvalue()


def load_postgres(dsn: str, *, table: str = "enterprises", rows: int, seed: int = 0, schema: str = "public",
                  start_id: int = 1, batch_rows: int = DEFAULT_BATCH_ROWS, drop_existing: bool = True) -> int:
    """Load with a single streamed ``COPY ... FROM STDIN`` in one transaction; returns the rows written."""
    import psycopg2
    from psycopg2 import sql

    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    labels = _column_labels()
    counter = [0]
    with closing(psycopg2.connect(dsn)) as conn:
        with conn, conn.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            if drop_existing:
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            cursor.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(target, sql.SQL(", ").join(
                sql.SQL("{} " + _POSTGRES_COLUMN_TYPES[name]).format(sql.Identifier(name)) for name in COLUMNS)))
            for name in COLUMNS:
                cursor.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS %s").format(target, sql.Identifier(name)),
                               (labels[name],))
            copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(target, columns).as_string(conn)
            batches = iter_enterprise_batches(rows=rows, seed=seed, batch_rows=batch_rows, start_id=start_id)
            chunks = _prefetch(_csv_chunks(batches, counter))
            try:
                cursor.copy_expert(copy, _ChunkReader(chunks), size=1 << 20)
            finally:
                chunks.close()  # stops the producer thread if the COPY failed half way
            # built after the data: one sort is much cheaper than maintaining the index row by row
            cursor.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (updated_at)").format(
                sql.Identifier(f"{table}_updated_at_idx"), target))
        conn.autocommit = True  # ANALYZE outside the load transaction, so the planner sees the new rows
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("ANALYZE {}").format(target))
    return counter[0]


def mutate_postgres(dsn: str, table: str, *, changed: int, seed: int, schema: str = "public",
                    one_by_one: bool = False) -> int:
    """Give ``changed`` random existing rows a new status, capital and address, and ``updated_at = now()``
    (one instant, as one batch job writes them), or with ``one_by_one`` each its own instant
    (``clock_timestamp()``, as separate transactions over time write them).

    Rows are chosen deterministically from ``seed`` among the ids present (gaps allowed); returns the number
    of rows changed, which is ``min(changed, row count)``.
    """
    import psycopg2
    from psycopg2 import sql

    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    rng = np.random.default_rng(seed)
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*), min(id), max(id) FROM {}").format(target))
        row_count, min_id, max_id = cursor.fetchone()
        changed = min(changed, row_count)
        if changed <= 0:
            return 0
        if max_id - min_id + 1 == row_count:  # dense ids: no need to fetch them
            ids = min_id + rng.choice(row_count, size=changed, replace=False)
        else:
            cursor.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(target))
            ids = rng.choice(np.fromiter((r[0] for r in cursor), dtype=np.int64, count=row_count),
                             size=changed, replace=False)
        district = weighted_pick(rng.random(changed), [d[2] for d in DISTRICTS])
        changes = pa.record_batch({
            "id": pa.array(np.sort(ids), pa.int64()),
            "status": pick_statuses(rng.random(changed)),
            "reg_capital": capital_array(pick_capital_cents(rng.random(changed), rng.random(changed),
                                                            rng.random(changed))),
            "address": pick_addresses(district, rng.random(changed), rng.random(changed)),
        })
        cursor.execute("CREATE TEMP TABLE govshare_sample_changes (id bigint PRIMARY KEY, status text, "
                       "reg_capital numeric(18,2), address text) ON COMMIT DROP")
        sink = io.BytesIO()
        pa_csv.write_csv(changes, sink, pa_csv.WriteOptions(include_header=False))
        sink.seek(0)
        cursor.copy_expert("COPY govshare_sample_changes FROM STDIN WITH (FORMAT csv)", sink)
        cursor.execute(sql.SQL(
            "UPDATE {} AS t SET status = c.status, reg_capital = c.reg_capital, address = c.address, "
            "updated_at = {} FROM govshare_sample_changes AS c WHERE t.id = c.id").format(
                target, sql.SQL("clock_timestamp()" if one_by_one else "now()")))
        return cursor.rowcount


def churn_postgres(dsn: str, table: str, *, deleted: int, inserted: int, seed: int, schema: str = "public") -> None:
    """Delete ``deleted`` random existing rows and insert ``inserted`` new enterprises after the highest id, each
    stamped ``updated_at = clock_timestamp()`` (written now, as a business system would)."""
    import psycopg2
    from psycopg2 import sql

    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    rng = np.random.default_rng(seed)
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(target))
        ids = np.fromiter((r[0] for r in cursor), dtype=np.int64)
        gone = rng.choice(ids, size=min(deleted, len(ids)), replace=False)
        cursor.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(target), (gone.tolist(),))
        first_new = int(ids.max()) + 1 if len(ids) else 1
    load_postgres(dsn, table=table, rows=inserted, seed=seed, schema=schema, start_id=first_new,
                  drop_existing=False)
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("UPDATE {} SET updated_at = clock_timestamp() WHERE id >= %s").format(target),
                       (first_new,))


# --- MySQL / MariaDB ------------------------------------------------------------------------------------------

def _mysql_name(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def load_mysql(host: str, port: int, user: str, password: str, database: str, *, table: str = "enterprises",
               rows: int, seed: int = 0, start_id: int = 1, batch_rows: int = DEFAULT_BATCH_ROWS,
               drop_existing: bool = True) -> int:
    """Load with batched ``executemany`` (pymysql folds it into multi-row INSERTs); returns rows written.

    The connection arguments match ``tests.services.require_mysql()``, so ``load_mysql(**kwargs, rows=...)``.
    """
    import pymysql

    name = _mysql_name(table)
    labels = _column_labels()
    column_types = {
        "id": "BIGINT NOT NULL PRIMARY KEY", "uscc": "CHAR(18) NOT NULL", "name": "VARCHAR(255) NOT NULL",
        "legal_rep": "VARCHAR(32) NOT NULL", "legal_rep_id": "CHAR(18) NOT NULL",
        "reg_capital": "DECIMAL(18,2) NOT NULL", "established": "DATE NOT NULL", "status": "VARCHAR(8) NOT NULL",
        "address": "VARCHAR(255) NOT NULL", "industry": "VARCHAR(64) NOT NULL", "updated_at": "DATETIME(6) NOT NULL",
    }
    comments = {**labels, "updated_at": labels["updated_at"] + " (Asia/Shanghai local time)"}
    definitions = ", ".join(f"{_mysql_name(c)} {column_types[c]} COMMENT '{comments[c]}'" for c in COLUMNS)
    insert = f"INSERT INTO {name} ({', '.join(map(_mysql_name, COLUMNS))}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    written = 0
    with closing(pymysql.connect(host=host, port=port, user=user, password=password, database=database,
                                 charset="utf8mb4", autocommit=False)) as conn:
        with conn.cursor() as cursor:
            if drop_existing:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
            index = _mysql_name(table + "_updated_at_idx")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} ({definitions}, KEY {index} (updated_at)) "
                           "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
            for batch in iter_enterprise_batches(rows=rows, seed=seed, batch_rows=batch_rows, start_id=start_id):
                # Arrow's strftime renders the column's own zone (Asia/Shanghai): DATETIME gets the wall clock
                cursor.executemany(insert, _python_columns(batch, timestamp_format="%Y-%m-%d %H:%M:%S"))
                written += batch.num_rows
        conn.commit()
    return written


__all__ = ["COLUMNS", "load_mysql", "load_postgres", "load_sqlite", "mutate_postgres"]
