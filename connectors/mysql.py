"""MySQL / MariaDB source: pymysql, streamed with an unbuffered server-side cursor (SSCursor + fetchmany).

The connector connects (a UTC session), tells a wrong configuration from a passing failure by the server's
error code, and streams a table's, a query's or the keys' rows as Arrow batches. Zero dates and other values
the driver cannot convert are flagged on their row (ROW_PROBLEM_COLUMN), not raised. Parts beside it: the
catalogue's queries and the columns' Arrow types (connectors/mysql_catalog.py: DECIMAL(p,s) is decimal128(p,s),
never a float), and the values' published forms (connectors/mysql_forms.py: TIMESTAMP and DATETIME zones,
spatial values as WKT text, BIT(n) as binary digits, FLOAT as its stored value).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pymysql
import pymysql.cursors
from pydantic import field_validator

from connectors.arrowconv import rows_to_batch
from connectors.base import (
    ColumnInfo,
    Connector,
    ReadState,
    StreamSpec,
    TableInfo,
    quoted_names,
)
from connectors.config import SourceConfig
from connectors.credentials import overlay, uses_airflow_connection
from connectors.mysql_catalog import database_tables, primary_key, query_columns, table_columns
from connectors.mysql_forms import bit_strings, bit_width, cursor_param, localized, needs_form, selected
from core.errors import ConfigError, RetriableError

# Server error codes that mean the configuration is wrong: retrying will not help.
LOGIN_ERRORS = {1044, 1045, 1049, 1227, 1698, 1251}
# A missing table or column, bad SQL: the stream's definition is wrong.
DEFINITION_ERRORS = {1054, 1064, 1146, 1142, 1143}


class MySQLConfig(SourceConfig):
    required = ("host", "database", "user")
    airflow_fields: ClassVar[dict[str, str]] = {"host": "host", "port": "port", "user": "login", "database": "schema"}

    host: str | None = None
    port: int | None = None  # 3306
    database: str | None = None
    user: str | None = None
    connect_timeout: int | None = None
    read_timeout: int | None = None
    datetime_timezone: str | None = None  # the zone DATETIME values are written in at the source

    @field_validator("datetime_timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{zone!r} is not a known time zone (e.g. Asia/Shanghai)") from None
        return zone


class MySQLConnector(Connector):
    kind = "mysql"
    title = "MySQL / MariaDB 数据库"
    config_model = MySQLConfig
    capabilities = frozenset({"incremental", "key_scan"})
    secret_fields = ("password",)

    def describe(self) -> str:
        c = self.config
        if uses_airflow_connection(c) and not c.get("host"):
            return f"Airflow connection {c['airflow_conn_id']}"
        return f"{c.get('user', '?')}@{c.get('host')}:{c.get('port', 3306)}/{c.get('database', '?')}"

    def _resolved(self) -> tuple[dict[str, Any], dict[str, Any]]:
        # Resolved at the first connection, never at construction: the Airflow lookup may need the network.
        if not hasattr(self, "_resolved_cache"):
            self._resolved_cache = overlay(self.config, self.secret, source=self.name, mapping=self.config_model.airflow_fields)
        return self._resolved_cache

    def _connect(self) -> pymysql.connections.Connection:
        config, secret = self._resolved()
        try:
            return pymysql.connect(
                host=config["host"], port=int(config.get("port") or 3306), user=config["user"],
                password=secret.get("password") or "", database=config["database"], charset="utf8mb4",
                connect_timeout=int(config.get("connect_timeout", 10)),
                read_timeout=int(config.get("read_timeout", 600)),
                # UTC session: TIMESTAMP values arrive as UTC instants. A long net_write_timeout: while the
                # pipeline writes a batch the server waits on its unbuffered result, and must not give up.
                init_command="SET time_zone = '+00:00', net_write_timeout = 3600")
        except pymysql.MySQLError as exc:
            raise self._error(exc, "cannot connect") from None

    def _error(self, exc: BaseException, doing: str) -> ConfigError | RetriableError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = " ".join(str(exc.args[1] if len(exc.args) > 1 else exc).split())
        if code in LOGIN_ERRORS:
            return ConfigError(self.fail(f"cannot log in: {reason}"))
        if code in DEFINITION_ERRORS or isinstance(exc, pymysql.ProgrammingError):
            return ConfigError(self.fail(f"{doing}: {reason}"))
        # 2003 refused, 2006 gone away, 2013 lost connection mid-read: transient, the pipeline retries.
        return RetriableError(self.fail(f"{doing}: {reason} (MySQL error {code})"))

    def _table_parts(self, table: str) -> tuple[str, str]:
        schema, _, name = table.rpartition(".")
        return schema or self._resolved()[0]["database"], name

    def _quoted(self, table: str) -> str:
        schema, name = self._table_parts(table)
        return f"`{schema}`.`{name}`"

    def _datetime_type(self) -> pa.DataType:
        return pa.timestamp("us", tz=self.config.get("datetime_timezone") or None)

    def _columns(self, cursor: pymysql.cursors.Cursor, table: str) -> list[ColumnInfo]:
        schema, name = self._table_parts(table)
        columns = table_columns(cursor, schema, name, datetime_type=self._datetime_type())
        if not columns:
            raise ConfigError(self.fail(f"table {schema}.{name} does not exist or is not visible to this user"))
        return columns

    def _query_columns(self, cursor: pymysql.cursors.Cursor, query: str) -> list[ColumnInfo]:
        return query_columns(cursor, query, datetime_type=self._datetime_type())

    def check(self, stream: StreamSpec | None = None) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                if stream and stream.table:
                    self.refuse_reserved([c.name for c in self._columns(cursor, stream.table)])
                elif stream and stream.query:
                    self.refuse_reserved([c.name for c in self._query_columns(cursor, stream.query)])
        except pymysql.MySQLError as exc:
            raise self._error(exc, "check failed") from None
        finally:
            connection.close()

    def discover(self) -> list[TableInfo]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                database = self._resolved()[0]["database"]
                tables = []
                for name in database_tables(cursor, database):
                    key = primary_key(cursor, database, name)
                    tables.append(TableInfo(name=name, columns=self._columns(cursor, name), primary_key=key))
                return tables
        except pymysql.MySQLError as exc:
            raise self._error(exc, "discover failed") from None
        finally:
            connection.close()

    def table_info(self, table: str) -> TableInfo | None:
        database, name = self._table_parts(table)
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                key = primary_key(cursor, database, name)
                try:
                    columns = self._columns(cursor, f"{database}.{name}")
                except ConfigError:
                    return None
                return TableInfo(name=name, columns=columns, primary_key=key)
        except pymysql.MySQLError as exc:
            raise self._error(exc, "discover failed") from None
        finally:
            connection.close()

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:  # buffered: the metadata queries
                if stream.table:
                    columns = self._columns(cursor, stream.table)
                    select = f"SELECT {', '.join(selected(c) for c in columns)} FROM {self._quoted(stream.table)}"
                else:
                    columns = self._query_columns(cursor, stream.query)
                    # by name only where a column needs its published form (a query's names are unique)
                    listed = ", ".join(selected(c, source="q.") for c in columns) \
                        if any(needs_form(c) for c in columns) else "*"
                    select = f"SELECT {listed} FROM ({stream.query}) AS q"
                self.refuse_reserved([c.name for c in columns])
                params: tuple = ()
                if stream.cursor_column and state.cursor_value is not None:
                    cursor_info = next((c for c in columns if c.name == stream.cursor_column), None)
                    if cursor_info is None:
                        raise ConfigError(self.fail(f"cursor column {stream.cursor_column!r} is not in {stream.label}"))
                    # >= not >: rows tied with the last cursor value are read again and merged by key.
                    # A row without a cursor value cannot be placed after the watermark: read every time.
                    # With a parameter the driver %-formats the statement: a % of a column name (`占比%`) or of a
                    # query (LIKE '%公司') is written %%; it failed every incremental run as an internal error.
                    select = select.replace("%", "%%")
                    select += f" WHERE (`{stream.cursor_column}` >= %s OR `{stream.cursor_column}` IS NULL)"
                    params = (cursor_param(state.cursor_value, cursor_info),)
                if stream.cursor_column:
                    select += f" ORDER BY `{stream.cursor_column}`"
        except pymysql.MySQLError as exc:
            self._close(connection)
            raise self._error(exc, "read failed") from None
        except BaseException:
            self._close(connection)
            raise
        yield from self._stream(connection, select, params, columns, stream.batch_rows, doing="read failed",
                                always=True)


    def read_keys(self, stream: StreamSpec, *, ordered: bool) -> Iterator[pa.RecordBatch]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                columns = self._columns(cursor, stream.table) if stream.table else \
                    self._query_columns(cursor, stream.query)
        except pymysql.MySQLError as exc:
            self._close(connection)
            raise self._error(exc, "reading the keys failed") from None
        except BaseException:
            self._close(connection)
            raise
        found = {c.name: c for c in columns}
        missing = [k for k in stream.primary_key if k not in found]
        if missing:
            self._close(connection)
            raise ConfigError(self.fail(f"key column(s) {', '.join(missing)} not in {stream.label}"))
        keys = quoted_names(stream.primary_key, "`")
        source = self._quoted(stream.table) if stream.table else f"({stream.query}) AS q"
        yield from self._stream(connection, f"SELECT {keys} FROM {source}" + (f" ORDER BY {keys}" if ordered else ""),
                                (), [found[k] for k in stream.primary_key], stream.batch_rows,
                                doing="reading the keys failed", always=False)

    def _stream(self, connection: pymysql.Connection, select: str, params: tuple, columns: list[ColumnInfo],
                batch_rows: int, *, doing: str, always: bool) -> Iterator[pa.RecordBatch]:
        """An unbuffered read: rows come off the socket batch by batch, the table is never held in memory.
        The cursor is not closed explicitly: SSCursor.close() would drain every remaining row of an abandoned
        read, and fails on a dropped connection; closing the connection ends both."""
        names, types = [c.name for c in columns], [c.arrow_type for c in columns]
        zoned = [i for i, t in enumerate(types) if pa.types.is_timestamp(t) and t.tz]
        bits = {i: width for i, c in enumerate(columns) if (width := bit_width(c.source_type))}
        stream_cursor = None
        try:
            stream_cursor = connection.cursor(pymysql.cursors.SSCursor)
            stream_cursor.execute(select, params or None)
            yielded = False
            while rows := stream_cursor.fetchmany(batch_rows):
                yielded = True
                if bits:
                    rows = bit_strings(rows, bits)
                yield rows_to_batch(names, types, localized(rows, zoned, types) if zoned else rows)
            if always and not yielded:  # an empty table still tells its schema
                yield rows_to_batch(names, types, [])
        except pymysql.MySQLError as exc:
            raise self._error(exc, doing) from None
        finally:
            self._abandon(stream_cursor)
            self._close(connection)

    @staticmethod
    def _close(connection: pymysql.Connection) -> None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - closing a connection the server already dropped
            pass

    @staticmethod
    def _abandon(cursor: pymysql.cursors.SSCursor | None) -> None:
        """Forget an unfinished unbuffered result, so that neither the cursor's nor the result's finaliser
        tries to drain it from a socket that is closed (pymysql would raise inside __del__)."""
        result = getattr(cursor, "_result", None)
        if result is not None:
            result.unbuffered_active = False
            cursor._result = None
