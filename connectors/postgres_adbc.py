"""Reading PostgreSQL as Arrow through the ADBC driver (binary COPY), and making its batches publishable.

Every read but a full read that DuckDB's scanner takes (connectors/postgres_duckdb.py) comes this way:
incremental reads, queries, key scans, and a full read the scanner would get wrong. Apart from the connector
(connectors/postgres.py) because this is the driver's side: one ADBC database kept per server, the statement's
options, and what its batches need before they are published (numeric as exact decimals, arrays in their
published form, char(n) without its padding, times out of Arrow's range flagged). The connector says what to
read and what a failure means to the source's owner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.arrowconv import cast_opaque_numeric, with_flags
from connectors.pgarrays import ArrayColumn, listed_arrays
from connectors.pgarrays import convert as convert_arrays
from connectors.postgres_catalog import decimal_from_typmod
from connectors.postgres_types import ARRAY_TEXT, array_columns, converted_select
from connectors.time_range import flag_out_of_range

_DATABASES: dict[str, Any] = {}
_DATABASES_LOCK = threading.Lock()


def _adbc_database(uri: str):  # noqa: ANN202 - adbc_driver_manager.AdbcDatabase
    """One ADBC database per server and credentials, kept for the process: opening one loads the server's
    type catalogue (about 30 ms), which a worker running many small incremental reads should pay once.
    Each read still opens a connection of its own."""
    import adbc_driver_postgresql

    with _DATABASES_LOCK:
        if uri not in _DATABASES:
            _DATABASES[uri] = adbc_driver_postgresql.connect(uri)
        return _DATABASES[uri]


def read_batches(uri: str, select: str, *, batch_rows: int, batch_bytes: int = 16 << 20, convert: bool = False,
                 declared_dims: Callable[[], dict[str, int]] | None = None,
                 told: Callable[[list[str]], None] | None = None) -> Iterator[pa.RecordBatch]:
    """The query's rows in batches of at most ``batch_rows``, made faithful. ``convert``: columns the driver
    cannot deliver publishably are converted by the server (connectors.postgres_types; their result types are
    asked first, no row read). ``declared_dims``: a table's arrays' declared dimensions
    (connectors.postgres_catalog), asked only when the read has an array column; a query's arrays have none.
    ``told`` (with ``convert``): given the names of the query's own columns, before the conversion adds any and
    before any row is read; it may refuse them.
    The driver's errors (adbc_driver_manager.Error) are the caller's to tell."""
    # The low-level ADBC API: its DB-API layer imports pandas, which alone costs more than a small
    # incremental read (about 0.15 s per process).
    import adbc_driver_manager

    database = _adbc_database(uri)
    connection = adbc_driver_manager.AdbcConnection(database)
    try:
        yield from _read(connection, select, batch_rows=batch_rows, batch_bytes=batch_bytes, convert=convert,
                         declared_dims=declared_dims, told=told)
    finally:
        _close(uri, database, connection)


def _close(uri: str, database: Any, connection: Any) -> None:
    """Close the read's connection. The driver closes the server connection first and then counts it off its
    database; once that count went wrong ("Open connection count underflowed", seen once in a whole test run,
    cause not found), every later close on that database failed too and every PostgreSQL read of the process
    after it. The read itself was whole, so it stands; the database is dropped and the next read opens another."""
    import adbc_driver_manager

    try:
        connection.close()
    except adbc_driver_manager.InternalError as exc:
        if "connection count underflowed" not in str(exc):
            raise
        with _DATABASES_LOCK:
            if _DATABASES.get(uri) is database:
                del _DATABASES[uri]


def _read(connection: Any, select: str, *, batch_rows: int, batch_bytes: int, convert: bool,
          declared_dims: Callable[[], dict[str, int]] | None,
          told: Callable[[list[str]], None] | None) -> Iterator[pa.RecordBatch]:
    import adbc_driver_manager

    with adbc_driver_manager.AdbcStatement(connection) as statement:
        statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_bytes)})
        statement.set_sql_query(select)
        arrays: dict[str, ArrayColumn] = {}
        if convert:
            handle = statement.execute_schema()  # kept alive until imported
            described = pa.Schema._import_from_c(handle.address)
            if told is not None:
                told(described.names)
            if array_columns(described):  # their form depends on their declared dimensions
                arrays = array_columns(described, declared_dims() if declared_dims else None)
            converted = converted_select(select, described, arrays)
            if converted is not None:
                statement.set_sql_query(converted)
        handle, _ = statement.execute_query()
        reader = pa.RecordBatchReader._import_from_c(handle.address)
        yielded = False
        for batch in reader:
            for offset in range(0, batch.num_rows, batch_rows):
                yielded = True
                yield faithful(batch.slice(offset, batch_rows), arrays)
        if not yielded:  # an empty table still tells its schema
            yield faithful(pa.RecordBatch.from_pylist([], schema=reader.schema), arrays)


def faithful(batch: pa.RecordBatch, array_forms: dict[str, ArrayColumn] | None = None) -> pa.RecordBatch:
    """Numeric arrives as text from the driver; make it exact decimals with the column's precision and scale.
    Arrays (``array_forms``) arrive as the driver's lists, with their odd rows' text beside them, or as their
    text: connectors.pgarrays makes them their published form."""
    arrays, fields = [], []
    problems: dict[int, list[str]] = {}
    raw: dict[int, dict[str, str]] = {}
    for field, column in zip(batch.schema, batch.columns):
        metadata = field.metadata or {}
        postgres_type = metadata.get(b"POSTGRESQL:type")
        if field.name.startswith(ARRAY_TEXT):
            continue
        if array_forms and field.name in array_forms:
            spec = array_forms[field.name]
            odd = ARRAY_TEXT + field.name
            if spec.listed:
                column, found, values = listed_arrays(field.name, column, spec, batch.column(odd)
                                                      if odd in batch.schema.names else None)
            else:
                column, found, values = convert_arrays(field.name, column.to_pylist(), spec)
            for row, problem in found.items():
                problems.setdefault(row, []).append(problem)
            for row, value in values.items():
                raw.setdefault(row, {})[field.name] = value
            field = pa.field(field.name, column.type)
        if postgres_type == b"bpchar":
            # char(n)'s padding is not part of the value (PostgreSQL ignores it when comparing and drops it
            # in a cast to text, and the full read's scanner drops it): kept here, an incremental read gave
            # every such value, a key too, another form than the full read had published
            column = pc.utf8_rtrim(column, characters=" ")
        if postgres_type == b"numeric":
            target = decimal_from_typmod(int(metadata.get(b"POSTGRESQL:typmod", b"-1")))
            column, found, values = cast_opaque_numeric(column, target, field.name)
            for row, problem in found.items():
                problems.setdefault(row, []).append(problem)
            for row, value in values.items():
                raw.setdefault(row, {})[field.name] = value
            field = pa.field(field.name, target)
        arrays.append(column)
        fields.append(pa.field(field.name, field.type, field.nullable))
    result = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
    if problems:
        result = with_flags(result, problems, raw)
    return flag_out_of_range(result)  # infinity and the like: see connectors.time_range
