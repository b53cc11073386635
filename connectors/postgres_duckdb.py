"""Fast full-table reads from PostgreSQL through DuckDB's postgres scanner (parallel, binary COPY based).

Used by the postgresql connector for full reads of tables whose column types it maps faithfully; the
scanner comes from the PyPI package duckdb-ext-postgres, loaded from its file (no download at run time).
Unconstrained `numeric` would arrive as double there, so such tables keep the ADBC path; so do tables with an
array column (connectors.pgarrays reads every array the same way, from its text). A numeric 'NaN' the scanner
reads as 0: a table holding one is read by the driver instead (unless_nan).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

FAITHFUL_TYPES = ("smallint", "integer", "bigint", "real", "double precision", "boolean", "date", "text",
                  "character varying", "character", "timestamp without time zone", "timestamp with time zone",
                  "numeric(")


@lru_cache(maxsize=1)
def scanner_extension() -> Path | None:
    """The postgres_scanner extension file shipped by duckdb-ext-postgres, if installed."""
    import duckdb

    root = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    matches = sorted(root.glob(f"duckdb_ext/extensions/v{duckdb.__version__}/*/postgres_scanner.duckdb_extension"))
    return matches[0] if matches else None


def _faithful(source_type: str) -> bool:
    if source_type.endswith("[]"):
        # Arrays are read by the driver, as their text, on every path (connectors.pgarrays): the scanner failed
        # the whole read on a 2-D value in a column declared 1-D (retried forever), dropped char(n)'s padding
        # where the other reads kept it, and named the list's field and timestamptz's zone its own way
        return False
    if source_type.startswith("numeric("):
        # DuckDB's decimals stop at 38 digits; wider ones would come back as double.
        return int(source_type[8:].split(",")[0].rstrip(")")) <= 38
    return source_type.startswith(FAITHFUL_TYPES)


def can_scan(source_types: list[str]) -> bool:
    return scanner_extension() is not None and all(_faithful(t) for t in source_types)


def _libpq(config: dict, password: str | None) -> str:
    parts = {"host": config["host"], "port": int(config.get("port", 5432)), "dbname": config["dbname"],
             "user": config["user"], "application_name": "govshare"}
    if password:
        parts["password"] = password
    return " ".join(f"{k}='{str(v).replace(chr(39), chr(92) + chr(39))}'" for k, v in parts.items())


def scan_table(*, config: dict, password: str | None, schema: str, table: str, columns: list[str],
               batch_rows: int) -> Iterator[pa.RecordBatch]:
    import duckdb

    threads = max(1, min(4, os.cpu_count() or 1))
    connection = duckdb.connect(config={"threads": str(threads), "memory_limit": "128MB"})
    try:
        connection.execute(f"LOAD '{scanner_extension()}'")
        # ATTACH takes no bound parameters: the connection string is a literal, its quotes doubled.
        literal = _libpq(config, password).replace("'", "''")
        connection.execute(f"ATTACH '{literal}' AS source (TYPE postgres, READ_ONLY)")
        quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        reader = connection.execute(f'SELECT {quoted} FROM source."{schema}"."{table}"').fetch_record_batch(batch_rows)
        yielded = False
        for batch in reader:
            yielded = True
            yield _utc(batch)
        if not yielded:  # an empty table still tells its schema
            yield _utc(pa.RecordBatch.from_pylist([], schema=reader.schema))
    finally:
        connection.close()


def _utc(batch: pa.RecordBatch) -> pa.RecordBatch:
    """DuckDB labels UTC timestamps 'Etc/UTC'; the hub's schemas say 'UTC', so versions compare equal."""
    if not any(pa.types.is_timestamp(f.type) and f.type.tz == "Etc/UTC" for f in batch.schema):
        return batch
    fields = [pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable)
              if pa.types.is_timestamp(f.type) and f.type.tz == "Etc/UTC" else f for f in batch.schema]
    return batch.cast(pa.schema(fields))


def unless_nan(scan: Iterator[pa.RecordBatch], has_nan: Callable[[], bool],
               exact: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """The scan, unless a numeric column holds 'NaN': the scanner reads it as 0 (a wrong amount, published as
    if true), where the driver's read quarantines it. The check (``has_nan``) runs on the server beside the
    scan's start, and nothing of the scan is passed on before its answer: on NaN the scan is dropped and
    the table read by the driver instead (``exact``)."""
    found: list[object] = []

    def probe() -> None:
        try:
            found.append(has_nan())
        except BaseException as exc:  # noqa: BLE001 - raised in the reading thread
            found.append(exc)

    checker = threading.Thread(target=probe, name="govshare-nan-check", daemon=True)
    checker.start()
    first = next(scan, None)  # the scan gets going meanwhile
    checker.join()
    if isinstance(found[0], BaseException):
        scan.close()
        raise found[0]
    if found[0]:
        scan.close()
        yield from exact()
        return
    if first is not None:
        yield first
    yield from scan
