"""Any database SQLAlchemy reaches through a URL (Oracle, DM, SQL Server, ... with the driver an agency installs).

The URL in the config carries no password; the password lives in the encrypted secret and is set on the URL
object only when connecting. Column types come from SQLAlchemy's inspector and map to Arrow by their generic
type (Numeric(p, s) -> decimal128(p, s), DateTime(timezone=True) -> UTC timestamps, ...). Rows stream with a
server-side cursor (``stream_results`` + ``yield_per``) where the dialect has one. Raw driver values are
converted by ``rows_to_batch``, so a value that does not fit its column is flagged on its row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from pydantic import field_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from connectors.arrowconv import DEFAULT_DECIMAL, decimal_type, rows_to_batch
from connectors.base import ColumnInfo, Connector, ReadState, StreamSpec, TableInfo
from connectors.config import SourceConfig
from connectors.credentials import CONN_ID_KEY, airflow_credentials
from connectors.sqlalchemy_pg import TextColumns, text_columns
from core.errors import ConfigError, RetriableError

# Driver messages that mean the login or the database name is wrong: retrying will not help.
LOGIN_WORDS = ("password", "authentication", "access denied", "login failed", "does not exist", "unknown database",
               "ora-01017")


def arrow_type_for_sqlalchemy(sql_type: sa.types.TypeEngine) -> pa.DataType:
    """A reflected SQLAlchemy type to the Arrow type that keeps its values exactly."""
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.Float):  # Float subclasses Numeric: test it first
        return pa.float64()
    if isinstance(sql_type, sa.Numeric):
        precision, scale = sql_type.precision, sql_type.scale
        if precision is None:
            return DEFAULT_DECIMAL  # unconstrained NUMERIC: as the PostgreSQL connector does
        return decimal_type(precision, scale or 0)
    if isinstance(sql_type, sa.Integer) and getattr(sql_type, "unsigned", False):  # MySQL's UNSIGNED
        return pa.uint64()
    if isinstance(sql_type, sa.SmallInteger):
        return pa.int16()
    if isinstance(sql_type, sa.Integer):  # Integer and BigInteger: int64 holds both
        return pa.int64()
    if isinstance(sql_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC") if sql_type.timezone else pa.timestamp("us")
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    if isinstance(sql_type, sa.Time):
        # MySQL's TIME is a duration (-838:59:59 to 838:59:59), as the mysql connector reads it
        return pa.duration("us") if type(sql_type).__module__.startswith("sqlalchemy.dialects.mysql") \
            else pa.time64("us")
    if isinstance(sql_type, sa.Interval):
        return pa.duration("us")
    if isinstance(sql_type, sa.LargeBinary | sa.types._Binary):
        return pa.binary()
    return pa.string()  # String, Text, Unicode, Enum, JSON, UUID and dialect types without a generic base


def _raw_value(column: sa.Column) -> sa.ColumnElement:
    """What a read selects of ``column``: the driver's raw value, or for JSON the server's own text. Drivers
    parse JSON into Python floats (psycopg2 json/jsonb: 1.10 became 1.1, 12345678901234567890.5 was rounded),
    and written back it was not what the source holds; the PostgreSQL connector publishes the server's text too."""
    if isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text)
    return sa.type_coerce(column, sa.types.NullType())


class SQLAlchemyConfig(SourceConfig):
    required = ("url",)
    airflow_fields: ClassVar[dict[str, str]] = {"url": "uri"}  # an Airflow connection gives the whole address (see `_url`)

    url: str | None = None  # dialect+driver://user@host/db, without the password
    dialect: str | None = None  # with an Airflow connection: the dialect when its conn_type is not one
    connect_args: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _plain_url(cls, url: str | None) -> str | None:
        if url:
            try:
                parsed = make_url(url)
            except sa_exc.ArgumentError:
                raise ValueError(f"{url!r} is not a SQLAlchemy URL (dialect+driver://user@host/db)") from None
            if parsed.password:
                raise ValueError("put the password in the source's secret (--password-env), not in the URL")
        return url


class SQLAlchemyConnector(Connector):
    kind = "sqlalchemy"
    title = "SQLAlchemy URL 数据库（Oracle、达梦、SQL Server 等）"
    config_model = SQLAlchemyConfig
    secret_fields = ("password",)
    capabilities = frozenset({"incremental", "key_scan"})

    def describe(self) -> str:
        if not self.config.get("url"):
            return f"Airflow connection {self.config[CONN_ID_KEY]}"
        return make_url(self.config["url"]).render_as_string(hide_password=True)

    def _url(self) -> URL:
        if self.config.get("url"):
            url = make_url(self.config["url"])
            password = self.secret.get("password")
            return url.set(password=password) if password else url
        # an Airflow connection: its URI, with the password only from the connection itself
        creds = airflow_credentials(str(self.config[CONN_ID_KEY]), source=self.name)
        dialect = self.config.get("dialect") or creds.conn_type or ""
        return URL.create(dialect, username=creds.login, password=creds.password, host=creds.host,
                          port=creds.port, database=creds.schema)

    def _engine(self) -> Engine:
        # Built at the first use, never at construction; the pool holds at most the one connection in use.
        if getattr(self, "_engine_cache", None) is None:
            try:
                self._engine_cache = sa.create_engine(self._url(), poolclass=sa.pool.NullPool,
                                                      connect_args=self.config.get("connect_args", {}))
            except (sa_exc.NoSuchModuleError, ImportError) as exc:
                raise ConfigError(self.fail(f"the driver is not installed: {exc}")) from None
            except sa_exc.ArgumentError as exc:
                raise ConfigError(self.fail(f"bad URL: {exc}")) from None
        return self._engine_cache

    def _error(self, exc: BaseException, doing: str) -> ConfigError | RetriableError:
        # str(exc) of a DBAPIError carries the SQL and its parameters; the driver's own message is enough.
        original = getattr(exc, "orig", None) or exc
        reason = " ".join(str(original).split())[:500]
        password = self.secret.get("password")
        if password:
            reason = reason.replace(password, "***")
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return RetriableError(self.fail(f"{doing}: connection lost: {reason}"))
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            if doing == "cannot connect" and any(word in reason.lower() for word in LOGIN_WORDS):
                return ConfigError(self.fail(f"cannot log in: {reason}"))
            return self.error(reason, doing=doing, sqlstate=getattr(original, "pgcode", None))
        if isinstance(exc, sa_exc.NoSuchTableError):
            return ConfigError(self.fail(f"{doing}: table {exc} does not exist"))
        return ConfigError(self.fail(f"{doing}: {reason}"))

    def _connect(self) -> sa.Connection:
        try:
            return self._engine().connect()
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(exc, "cannot connect") from None

    def _table(self, connection: sa.Connection, table: str) -> tuple[sa.Table, list[ColumnInfo], TextColumns | None]:
        """The reflected table, its columns as published, and (PostgreSQL) those read as their text."""
        schema, _, name = table.rpartition(".")
        reflected = sa.Table(name, sa.MetaData(), schema=schema or self.config.get("schema"), autoload_with=connection)
        columns = [ColumnInfo(name=c.name, source_type=str(c.type), nullable=bool(c.nullable),
                              arrow_type=arrow_type_for_sqlalchemy(c.type)) for c in reflected.columns]
        texts = text_columns(connection, reflected)
        return reflected, [texts.described(c) for c in columns] if texts else columns, texts

    def check(self, stream: StreamSpec | None = None) -> None:
        with self._connect() as connection:
            try:
                connection.execute(sa.select(sa.literal(1))).scalar()
                if stream and stream.table:
                    self.refuse_reserved([c.name for c in self._table(connection, stream.table)[1]])
                elif stream and stream.query:
                    connection.execute(sa.select(sa.text("*")).select_from(
                        sa.text(f"({stream.query}) AS q")).limit(0)).fetchall()
            except sa_exc.SQLAlchemyError as exc:
                raise self._error(exc, "check failed") from None

    def discover(self) -> list[TableInfo]:
        with self._connect() as connection:
            try:
                inspector = sa.inspect(connection)
                schema = self.config.get("schema")
                tables = []
                for name in sorted(inspector.get_table_names(schema=schema)):
                    key = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
                    _, columns, _ = self._table(connection, f"{schema}.{name}" if schema else name)
                    tables.append(TableInfo(name=name, columns=columns, primary_key=list(key)))
                return tables
            except sa_exc.SQLAlchemyError as exc:
                raise self._error(exc, "discover failed") from None

    def table_info(self, table: str) -> TableInfo | None:
        schema, _, name = table.rpartition(".")
        schema = schema or self.config.get("schema")
        with self._connect() as connection:
            try:
                inspector = sa.inspect(connection)
                if not inspector.has_table(name, schema=schema):
                    return None
                key = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
                _, columns, _ = self._table(connection, f"{schema}.{name}" if schema else name)
                return TableInfo(name=name, columns=columns, primary_key=list(key))
            except sa_exc.SQLAlchemyError as exc:
                raise self._error(exc, "discover failed") from None

    @staticmethod
    def _cursor_value(text: str, target: pa.DataType, dialect: str) -> Any:
        """The saved cursor text as a driver value of the column's kind (aware datetimes keep their offset)."""
        if dialect == "sqlite":
            return text  # SQLite stores dates as text: compare text with text, as the sqlite connector does
        try:
            if pa.types.is_timestamp(target):
                return datetime.fromisoformat(text)
            if pa.types.is_date(target):
                return date.fromisoformat(text[:10])
            if pa.types.is_decimal(target):
                return Decimal(text)
            if pa.types.is_integer(target):
                return int(text)
        except ValueError:
            pass  # a cursor saved before the column changed type: let the database compare the text
        return text


    def read_keys(self, stream: StreamSpec, *, ordered: bool) -> Iterator[pa.RecordBatch]:
        if not stream.table:
            raise ConfigError(self.fail("a sqlalchemy source reads tables; declare a view for a query"))
        connection = self._connect()
        try:
            table, columns, texts = self._table(connection, stream.table)
            types = {c.name: c.arrow_type for c in columns}
            names = list(stream.primary_key)
            # read as the rows' read reads them: a time key of 24:00 was 00:00 (psycopg2's), where it is flagged
            keys = [(texts.selected(table.c[k]) if texts and k in texts else _raw_value(table.c[k])).label(k)
                    for k in names]
            select = sa.select(*keys, *(texts.beside(table, names) if texts else ()))
            if ordered:
                select = select.order_by(*(table.c[k] for k in stream.primary_key))
            to_batch = texts.batch if texts else rows_to_batch
            result = connection.execution_options(stream_results=True, yield_per=stream.batch_rows).execute(select)
            for rows in result.partitions(stream.batch_rows):
                yield to_batch(names, [types[n] for n in names], [tuple(row) for row in rows])
        except (sa_exc.SQLAlchemyError, KeyError) as exc:
            raise self._error(exc, "reading the keys failed") from None
        finally:
            try:
                connection.close()
            except sa_exc.SQLAlchemyError:
                pass

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        if not stream.table:
            raise ConfigError(self.fail("a sqlalchemy source reads tables; declare a view for a query"))
        connection = self._connect()
        try:
            table, columns, texts = self._table(connection, stream.table)
            self.refuse_reserved([c.name for c in columns])
            # Raw driver values (type_coerce to NullType): SQLAlchemy's own result processors would parse
            # e.g. SQLite text dates themselves and raise on one bad value; rows_to_batch flags it instead.
            raw = [(texts.selected(table.c[c.name]) if texts and c.name in texts else _raw_value(table.c[c.name]))
                   .label(c.name) for c in columns]
            select = sa.select(*raw, *(texts.beside(table, [c.name for c in columns]) if texts else ()))
            if stream.cursor_column and state.cursor_value is not None:
                if stream.cursor_column not in table.c:
                    raise ConfigError(self.fail(f"cursor column {stream.cursor_column!r} is not in {stream.label}"))
                # >= not >: rows tied with the last cursor value are read again and merged by key.
                target = next(c.arrow_type for c in columns if c.name == stream.cursor_column)
                value = self._cursor_value(state.cursor_value, target, connection.dialect.name)
                column = table.c[stream.cursor_column]  # a row without a cursor value: read every time
                select = select.where(sa.or_(column >= sa.literal(value, sa.types.NullType()), column.is_(None)))
            if stream.cursor_column:
                select = select.order_by(table.c[stream.cursor_column])
            names, types = [c.name for c in columns], [c.arrow_type for c in columns]
            to_batch = texts.batch if texts else rows_to_batch
            result = connection.execution_options(stream_results=True, yield_per=stream.batch_rows).execute(select)
            yielded = False
            for rows in result.partitions(stream.batch_rows):
                yielded = True
                yield to_batch(names, types, [tuple(row) for row in rows])
            if not yielded:  # an empty table still tells its schema
                yield to_batch(names, types, [])
        except sa_exc.SQLAlchemyError as exc:
            raise self._error(exc, "read failed") from None
        finally:
            try:
                connection.close()
            except sa_exc.SQLAlchemyError:  # closing a connection the server already dropped
                pass
