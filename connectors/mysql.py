"""MySQL / MariaDB source: pymysql, streamed with an unbuffered server-side cursor (SSCursor + fetchmany).

Types come from information_schema (tables) or the result's field descriptors (queries), so a DECIMAL(p,s)
becomes decimal128(p,s) (decimal256 above 38 digits), never a float. TIMESTAMP columns are read with the
session time zone set to UTC and arrive as UTC instants; DATETIME has no zone, so it stays a wall-clock
timestamp unless the source config names the zone its values are written in (``datetime_timezone``, e.g.
``Asia/Shanghai``), in which case they become instants in that zone. Zero dates and other values the driver
cannot convert are flagged on their row (ROW_PROBLEM_COLUMN), not raised. Spatial columns (GEOMETRY, POINT,
...) are read as their WKT text (``ST_AsText``: 'POINT(1 2)'), not the driver's internal bytes. BIT(n) values
are text of n binary digits, as PostgreSQL's bit(n) are published ('1', '10101010'), not bytes (b'\x01').
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pymysql
import pymysql.cursors
from pydantic import field_validator
from pymysql.constants import FIELD_TYPE, FLAG

from connectors.arrowconv import decimal_type, rows_to_batch
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
from core.errors import ConfigError, RetriableError

# Server error codes that mean the configuration is wrong: retrying will not help.
LOGIN_ERRORS = {1044, 1045, 1049, 1227, 1698, 1251}
# A missing table or column, bad SQL: the stream's definition is wrong.
DEFINITION_ERRORS = {1054, 1064, 1146, 1142, 1143}
INTEGERS = {"tinyint": 8, "smallint": 16, "mediumint": 32, "int": 32, "integer": 32, "bigint": 64}
FIELD_INTEGERS = {FIELD_TYPE.TINY: 8, FIELD_TYPE.SHORT: 16, FIELD_TYPE.INT24: 32, FIELD_TYPE.LONG: 32,
                  FIELD_TYPE.LONGLONG: 64}
BINARY_CHARSET = 63


def _integer(bits: int, unsigned: bool) -> pa.DataType:
    return getattr(pa, f"{'u' if unsigned else ''}int{bits}")()


SPATIAL = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
           "geometrycollection", "geomcollection")


def _selected(column: ColumnInfo) -> str:
    """A table column in the read's select list: spatial values as WKT text (the catalogue declares text)."""
    name = "`" + column.name.replace("`", "``") + "`"
    return f"ST_AsText({name}) AS {name}" if column.source_type.lower() in SPATIAL else name


def _bit_width(source_type: str) -> int:
    """n of a BIT(n) column's type (BIT alone is BIT(1)); 0 for any other type."""
    kind = source_type.lower().replace(" ", "")
    if kind == "bit":
        return 1
    return int(kind[4:-1]) if kind.startswith("bit(") and kind.endswith(")") and kind[4:-1].isdigit() else 0


def _bit_strings(rows: list[tuple], bits: dict[int, int]) -> list[tuple]:
    """BIT values (the driver's big-endian bytes) as text of their binary digits, n of them."""
    result = []
    for row in rows:
        values = list(row)
        for i, width in bits.items():
            if isinstance(values[i], bytes):
                values[i] = format(int.from_bytes(values[i], "big"), f"0{width}b")
        result.append(tuple(values))
    return result


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

    def _arrow_type(self, data_type: str, column_type: str, precision: int | None, scale: int | None) -> pa.DataType:
        data_type, unsigned = data_type.lower(), "unsigned" in column_type.lower()
        if data_type in ("decimal", "numeric"):
            return decimal_type(int(precision or 10), int(scale or 0))
        if data_type in INTEGERS:
            return _integer(INTEGERS[data_type], unsigned)
        simple = {"float": pa.float32(), "double": pa.float64(), "real": pa.float64(), "date": pa.date32(),
                  "timestamp": pa.timestamp("us", tz="UTC"), "time": pa.duration("us"), "year": pa.int16(),
                  "bit": pa.string()}
        if data_type == "datetime":
            return self._datetime_type()
        if data_type in simple:
            return simple[data_type]
        if "blob" in data_type or "binary" in data_type:
            return pa.binary()
        return pa.string()  # char, varchar, text, enum, set, json: utf8mb4 text

    def _columns(self, cursor: pymysql.cursors.Cursor, table: str) -> list[ColumnInfo]:
        cursor.execute(
            """SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE,
                      COLUMN_COMMENT
               FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
               ORDER BY ORDINAL_POSITION""", self._table_parts(table))
        rows = cursor.fetchall()
        if not rows:
            schema, name = self._table_parts(table)
            raise ConfigError(self.fail(f"table {schema}.{name} does not exist or is not visible to this user"))
        return [ColumnInfo(name=name, source_type=column_type, nullable=nullable == "YES",
                           arrow_type=self._arrow_type(data_type, column_type, precision, scale), comment=comment or "")
                for name, data_type, column_type, precision, scale, nullable, comment in rows]

    def _query_columns(self, cursor: pymysql.cursors.Cursor, query: str) -> list[ColumnInfo]:
        """A query's column types from the result's field descriptors (no view needed, no write privilege)."""
        cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
        columns = []
        for f in cursor._result.fields:  # the descriptors carry flags and charset, PEP 249's description does not
            unsigned = bool(f.flags & FLAG.UNSIGNED)
            if f.type_code in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
                # the wire length counts the sign and the decimal point, not only digits
                precision = f.length - (1 if f.scale else 0) - (0 if unsigned else 1)
                arrow = decimal_type(max(precision, 1), f.scale)
            elif f.type_code in FIELD_INTEGERS:
                arrow = _integer(FIELD_INTEGERS[f.type_code], unsigned)
            else:
                arrow = {FIELD_TYPE.FLOAT: pa.float32(), FIELD_TYPE.DOUBLE: pa.float64(),
                         FIELD_TYPE.DATE: pa.date32(), FIELD_TYPE.NEWDATE: pa.date32(),
                         FIELD_TYPE.TIMESTAMP: pa.timestamp("us", tz="UTC"), FIELD_TYPE.DATETIME: self._datetime_type(),
                         FIELD_TYPE.TIME: pa.duration("us"), FIELD_TYPE.YEAR: pa.int16(),
                         FIELD_TYPE.BIT: pa.string()}.get(f.type_code)
                if arrow is None:
                    arrow = pa.binary() if f.charsetnr == BINARY_CHARSET and f.type_code != FIELD_TYPE.JSON else pa.string()
            source_type = f"bit({f.length})" if f.type_code == FIELD_TYPE.BIT else f"mysql type {f.type_code}"
            columns.append(ColumnInfo(name=f.name, source_type=source_type, arrow_type=arrow,
                                      nullable=not f.flags & FLAG.NOT_NULL))
        return columns

    def check(self, stream: StreamSpec | None = None) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                if stream and stream.table:
                    self._columns(cursor, stream.table)
                elif stream and stream.query:
                    self._query_columns(cursor, stream.query)
        except pymysql.MySQLError as exc:
            raise self._error(exc, "check failed") from None
        finally:
            connection.close()

    def discover(self) -> list[TableInfo]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                database = self._resolved()[0]["database"]
                cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY 1",
                               (database,))
                names = [r[0] for r in cursor.fetchall()]
                tables = []
                for name in names:
                    key = _primary_key(cursor, database, name)
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
                key = _primary_key(cursor, database, name)
                try:
                    columns = self._columns(cursor, f"{database}.{name}")
                except ConfigError:
                    return None
                return TableInfo(name=name, columns=columns, primary_key=key)
        except pymysql.MySQLError as exc:
            raise self._error(exc, "discover failed") from None
        finally:
            connection.close()

    def _cursor_param(self, value: str, column: ColumnInfo) -> Any:
        """The saved cursor text as the column's own kind of value, in the zone the server compares in."""
        if not pa.types.is_timestamp(column.arrow_type):
            return value
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment
        # DATETIME in a declared zone compares as wall-clock time there; TIMESTAMP in the UTC session.
        return moment.astimezone(ZoneInfo(column.arrow_type.tz)).replace(tzinfo=None)

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:  # buffered: the metadata queries
                if stream.table:
                    columns = self._columns(cursor, stream.table)
                    select = f"SELECT {', '.join(_selected(c) for c in columns)} FROM {self._quoted(stream.table)}"
                else:
                    columns = self._query_columns(cursor, stream.query)
                    select = f"SELECT * FROM ({stream.query}) AS q"
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
                    params = (self._cursor_param(state.cursor_value, cursor_info),)
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
        bits = {i: width for i, c in enumerate(columns) if (width := _bit_width(c.source_type))}
        stream_cursor = None
        try:
            stream_cursor = connection.cursor(pymysql.cursors.SSCursor)
            stream_cursor.execute(select, params or None)
            yielded = False
            while rows := stream_cursor.fetchmany(batch_rows):
                yielded = True
                if bits:
                    rows = _bit_strings(rows, bits)
                yield rows_to_batch(names, types, self._localized(rows, zoned, types) if zoned else rows)
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

    @staticmethod
    def _localized(rows: list[tuple], zoned: list[int], types: list[pa.DataType]) -> list[tuple]:
        """Naive driver datetimes get their zone; Arrow would otherwise take them as UTC."""
        zones = {i: timezone.utc if types[i].tz == "UTC" else ZoneInfo(types[i].tz) for i in zoned}
        result = []
        for row in rows:
            values = list(row)
            for i, zone in zones.items():
                if isinstance(values[i], datetime):
                    values[i] = values[i].replace(tzinfo=zone)
            result.append(tuple(values))
        return result


def _primary_key(cursor, database: str, table: str) -> list[str]:  # noqa: ANN001 - a pymysql cursor
    """The table's primary key columns, in the key's order."""
    cursor.execute("""SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s
                      AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION""",
                   (database, table))
    return [r[0] for r in cursor.fetchall()]
