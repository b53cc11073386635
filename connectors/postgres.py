"""PostgreSQL source: checked and discovered with psycopg2, read as Arrow through ADBC (binary COPY).

The plugin (its settings, connection and the Connector protocol) and which way each read goes. The parts live
beside it: the catalogue's queries in connectors/postgres_catalog.py, the driver's reads in
connectors/postgres_adbc.py, the fast full read in connectors/postgres_duckdb.py, key ranges in chunks in
connectors/postgres_keys.py, the types read as text in connectors/postgres_types.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

import psycopg2
import pyarrow as pa

from connectors.base import (
    ColumnInfo,
    Connector,
    ReadState,
    StreamSpec,
    TableInfo,
    payload_schema,
    quoted_names,
    refused,
)
from connectors.config import SourceConfig
from connectors.pgarrays import ArrayColumn
from connectors.postgres_adbc import read_batches
from connectors.postgres_catalog import declared_dims, primary_key, schema_tables, table_columns
from connectors.postgres_duckdb import can_scan, scan_table, unless_nan
from connectors.postgres_keys import KEY_CHUNK_BATCH_BYTES, chunk_bounds, chunk_keys, chunk_query, extent_query
from connectors.prefetch import prefetched
from connectors.time_range import flag_out_of_range
from core.errors import ConfigError


def _dollar_quoted(value: str) -> str:
    """A PostgreSQL dollar-quoted literal: no escaping to get wrong, whatever the server's string settings."""
    tag = "$gs$"
    while tag in value:
        tag = tag[:-1] + "x$"
    return f"{tag}{value}{tag}"


class PostgresConfig(SourceConfig):
    required = ("host", "dbname", "user")

    host: str | None = None
    port: int | None = None  # 5432
    dbname: str | None = None
    user: str | None = None
    connect_timeout: int | None = None  # seconds, 10
    reader: Literal["auto", "adbc"] = "auto"  # auto: DuckDB's scan for a full read of a table it reads faithfully


class PostgresConnector(Connector):
    kind = "postgresql"
    title = "PostgreSQL 数据库"
    config_model = PostgresConfig
    secret_fields = ("password",)
    capabilities = frozenset({"incremental", "key_scan", "cdc"})

    def describe(self) -> str:
        c = self.config
        return f"{c['user']}@{c['host']}:{c.get('port', 5432)}/{c['dbname']}"

    def _dsn_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"host": c["host"], "port": int(c.get("port", 5432)), "dbname": c["dbname"], "user": c["user"],
                "password": self.secret.get("password"), "connect_timeout": int(c.get("connect_timeout", 10)),
                "application_name": "govshare"}

    def _uri(self) -> str:
        c = self.config
        password = self.secret.get("password")
        auth = quote(c["user"]) + (":" + quote(password, safe="") if password else "")
        # Dates in ISO whatever the source's DateStyle (a database or role may say 'SQL, DMY'): the text published
        # of a composite value, a range or an array read as text holds dates ('(01/03/2026,x)'), and the change
        # capture and psycopg2's sessions write them in ISO. Only the output style: the order reading them stays.
        return (f"postgresql://{auth}@{c['host']}:{int(c.get('port', 5432))}/{quote(c['dbname'])}"
                f"?application_name=govshare&options={quote('-c DateStyle=ISO', safe='')}")

    def _connect(self):  # noqa: ANN202 - psycopg2 connection
        try:
            return psycopg2.connect(**self._dsn_kwargs())
        except psycopg2.OperationalError as exc:
            raise self.error(str(exc), doing="cannot connect", sqlstate=exc.pgcode) from exc

    def _table_parts(self, table: str) -> tuple[str, str]:
        schema, _, name = table.rpartition(".")
        return schema or self.config.get("schema", "public"), name

    def _columns(self, cursor, table: str) -> list[ColumnInfo]:  # noqa: ANN001
        return [column for column, _array in self._catalogue(cursor, table)]

    def _catalogue(self, cursor, table: str) -> list[tuple[ColumnInfo, ArrayColumn | None]]:  # noqa: ANN001
        """Each column, and for an array column its element type and declared dimensions (connectors.pgarrays)."""
        schema, name = self._table_parts(table)
        columns = table_columns(cursor, schema, name)
        if not columns:
            raise ConfigError(self.fail(f"table {schema}.{name} does not exist or is not visible to "
                                        f"{self.config['user']}"))
        return columns

    def check(self, stream: StreamSpec | None = None) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                if stream and stream.table:
                    self.refuse_reserved([c.name for c in self._columns(cursor, stream.table)])
                elif stream and stream.query:
                    cursor.execute(f"SELECT * FROM ({stream.query}) AS q LIMIT 0")
                    self.refuse_reserved([d.name for d in cursor.description])
        except psycopg2.Error as exc:
            raise ConfigError(self.fail(" ".join(str(exc).split()))) from exc
        finally:
            connection.close()

    def discover(self) -> list[TableInfo]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                schema = self.config.get("schema", "public")
                tables = []
                for name in schema_tables(cursor, schema):
                    key = primary_key(cursor, schema, name)
                    tables.append(TableInfo(name=name, columns=self._columns(cursor, f"{schema}.{name}"),
                                            primary_key=key))
                return tables
        finally:
            connection.close()

    def table_info(self, table: str) -> TableInfo | None:
        schema, name = self._table_parts(table)
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                key = primary_key(cursor, schema, name)
                try:
                    columns = self._columns(cursor, f"{schema}.{name}")
                except ConfigError:
                    return None
                return TableInfo(name=name, columns=columns, primary_key=key)
        finally:
            connection.close()

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        incremental = bool(stream.cursor_column and state.cursor_value is not None)
        columns: list[ColumnInfo] = []
        if stream.table and not incremental:
            connection = self._connect()
            try:
                with connection.cursor() as cursor:
                    columns = self._columns(cursor, stream.table)
            finally:
                connection.close()
            self.refuse_reserved([c.name for c in columns])
        if stream.table and not incremental and self.config.get("reader", "auto") != "adbc" \
                and can_scan([c.source_type for c in columns]):
            batches = self._scan(stream, columns)
            numeric = [c.name for c in columns
                       if c.source_type.startswith("numeric") and not c.source_type.endswith("[]")]
            if numeric:
                batches = self._unless_nan(batches, stream, numeric, lambda: self._read_adbc(
                    f"SELECT {quoted_names([c.name for c in columns])} FROM {self._from(stream)}", stream,
                    convert=True))
        else:
            if stream.table:
                schema, name = self._table_parts(stream.table)
                listed = ", ".join(chr(34) + c.name + chr(34) for c in columns) if columns else "*"
                select = f'SELECT {listed} FROM "{schema}"."{name}"'
            else:
                select = f"SELECT * FROM ({stream.query}) AS q"
            if incremental:
                # >= not >: rows tied with the last cursor value are read again and merged by key. The saved
                # value goes in as an untyped literal, which PostgreSQL reads as the cursor column's own type;
                # a query without bound parameters is read through COPY, twice as fast, and an incremental
                # read needs no catalogue lookup first (a wrong column is reported from the query's error).
                # A row without a cursor value cannot be placed after the watermark: it is read every time.
                select += (f' WHERE ("{stream.cursor_column}" >= {_dollar_quoted(str(state.cursor_value))} '
                           f'OR "{stream.cursor_column}" IS NULL)')
            batches = self._read_adbc(select, stream, convert=True)
        # Fetching runs ahead in a thread while the pipeline checks and writes the previous batches; two batches
        # ahead are enough now that parts are written in threads of their own (and each holds 13 MB or so).
        yield from prefetched(batches, depth=2)


    def _from(self, stream: StreamSpec) -> str:
        if stream.table:
            schema, name = self._table_parts(stream.table)
            return f'"{schema}"."{name}"'
        return f"({stream.query}) AS q"

    def read_keys(self, stream: StreamSpec, *, ordered: bool) -> Iterator[pa.RecordBatch]:
        keys = quoted_names(stream.primary_key)
        # Ordered by the primary key's index: an index-only scan where the table is vacuumed.
        select = f"SELECT {keys} FROM {self._from(stream)}" + (f" ORDER BY {keys}" if ordered else "")
        yield from prefetched(self._read_adbc(select, stream, convert=True))  # keys as the rows' read gives them

    reads_key_ranges = True

    def read_key_range(self, stream: StreamSpec, *, low: int | None, high: int | None,
                       splits: Sequence[int] = ()) -> Iterator[pa.RecordBatch]:
        key = quoted_names(stream.primary_key[:1])
        # Chunks only over a key index: a query stream, or a table without one, would be scanned once per chunk.
        if splits and stream.table:
            indexed, lowest, highest = self._key_extent(stream)
            if indexed:
                # Several ranges are read at once: each keeps little in flight (about 4 MB a batch, two ahead).
                bounds = chunk_bounds(low=low, high=high, splits=splits, source_min=lowest, source_max=highest)
                yield from prefetched(self._key_chunks(stream, key, bounds), depth=2)
                return
        bounds = [f"{key} >= {int(low)}" if low is not None else "", f"{key} < {int(high)}" if high is not None else ""]
        where = " AND ".join(b for b in bounds if b)
        select = f"SELECT {key} FROM {self._from(stream)}" + (f" WHERE {where}" if where else "") + f" ORDER BY {key}"
        yield from prefetched(self._read_adbc(select, stream))

    def _key_extent(self, stream: StreamSpec) -> tuple[bool, int | None, int | None]:
        """Whether a B-tree index leads with the key, and then the key's lowest and highest values."""
        query = extent_query(key=quoted_names(stream.primary_key[:1]), column=stream.primary_key[0],
                             relation=self._from(stream))
        indexed, lowest, highest = next(self._read_adbc(query, stream)).to_pylist()[0].values()
        return bool(indexed), lowest, highest

    def _key_chunks(self, stream: StreamSpec, key: str, bounds: list[tuple[int, int]]) -> Iterator[pa.RecordBatch]:
        """The range's keys sent as sorted arrays, one row per chunk (connectors.postgres_keys says why)."""
        name = stream.primary_key[0]
        for batch in self._read_adbc(chunk_query(key=key, relation=self._from(stream), bounds=bounds), stream,
                                     batch_bytes=KEY_CHUNK_BATCH_BYTES):
            keys = chunk_keys(batch.column(0))
            if len(keys):
                yield pa.RecordBatch.from_arrays([pa.array(keys)], names=[name])

    def stream_schema(self, stream: StreamSpec) -> pa.Schema:
        if stream.table:
            connection = self._connect()
            try:
                with connection.cursor() as cursor:
                    columns = self._columns(cursor, stream.table)
            finally:
                connection.close()
            self.refuse_reserved([c.name for c in columns])
            return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
        batch = next(self._read_adbc(f"SELECT * FROM ({stream.query}) AS q LIMIT 0", stream, convert=True))
        return payload_schema(batch.schema)

    def _unless_nan(self, scan: Iterator[pa.RecordBatch], stream: StreamSpec, numeric: list[str],
                    exact: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
        """The DuckDB scan, unless a numeric column holds 'NaN' (connectors.postgres_duckdb.unless_nan says why);
        the check asks the server whether one does."""
        condition = " OR ".join(f"{quoted_names([name])} = 'NaN'::numeric" for name in numeric)

        def has_nan() -> bool:
            try:
                connection = self._connect()
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {self._from(stream)} WHERE {condition})")
                        return bool(cursor.fetchone()[0])
                finally:
                    connection.close()
            except psycopg2.Error as exc:
                raise self.error(str(exc), doing="checking numeric columns for NaN", sqlstate=exc.pgcode) from exc

        yield from unless_nan(scan, has_nan, exact)

    def _scan(self, stream: StreamSpec, columns: list[ColumnInfo]) -> Iterator[pa.RecordBatch]:
        """Full table read through DuckDB's parallel postgres scanner."""
        import duckdb

        schema, name = self._table_parts(stream.table)
        try:
            for batch in scan_table(config=self.config, password=self.secret.get("password"), schema=schema,
                                    table=name, columns=[c.name for c in columns], batch_rows=stream.batch_rows):
                yield flag_out_of_range(batch)
        except duckdb.Error as exc:
            raise self.error(str(exc), doing="read failed") from exc

    def _read_adbc(self, select: str, stream: StreamSpec, *, batch_bytes: int = 16 << 20,
                   convert: bool = False) -> Iterator[pa.RecordBatch]:
        """Read through the ADBC driver (connectors.postgres_adbc, which says what ``convert`` does); the driver's
        errors become the source's ConfigError or RetriableError."""
        import adbc_driver_manager

        try:
            yield from read_batches(self._uri(), select, batch_rows=stream.batch_rows, batch_bytes=batch_bytes,
                                    convert=convert, told=self.refuse_reserved,
                                    declared_dims=partial(self._declared_dims, stream) if stream.table else None)
        except adbc_driver_manager.Error as exc:
            problem = " ".join(str(exc).split())
            sqlstate = getattr(exc, "sqlstate", None) or ""
            if refused(problem, sqlstate):
                raise self.error(problem, doing="read failed", sqlstate=sqlstate) from exc
            if sqlstate[:2] in ("42", "22"):  # the query itself: retrying won't help
                raise ConfigError(self.fail(f"the query was refused ({problem}); check the stream's table, "
                                            f"columns and cursor column ({stream.cursor_column})")) from exc
            raise self.error(problem, doing="read failed", sqlstate=sqlstate) from exc

    def _declared_dims(self, stream: StreamSpec) -> dict[str, int]:
        """Each column's declared array dimensions (connectors.postgres_catalog): they decide an array's form."""
        schema, name = self._table_parts(stream.table)
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                return declared_dims(cursor, schema, name)
        finally:
            connection.close()
