"""SQLite source: a database file read with the standard library driver."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from connectors.arrowconv import arrow_type_for_declared, rows_to_batch
from connectors.base import (
    ColumnInfo,
    Connector,
    ReadState,
    StreamSpec,
    TableInfo,
    quoted_names,
)
from connectors.config import SourceConfig
from core.errors import ConfigError, RetriableError


class SQLiteConfig(SourceConfig):
    required = ("path",)

    path: str | None = None  # the database file


class SQLiteConnector(Connector):
    kind = "sqlite"
    title = "SQLite 数据库文件"
    config_model = SQLiteConfig
    capabilities = frozenset({"incremental", "key_scan"})

    def describe(self) -> str:
        return str(self.config["path"])

    def _failed(self, exc: sqlite3.Error, *, zh: str, en: str) -> ConfigError | RetriableError:
        """A failed call as the run records it, in Chinese with the English: a file that is not a database or a
        query the file cannot answer is the source's configuration (retrying will not help); anything else (a
        locked file, a read error) may pass."""
        reason = " ".join(str(exc).split())
        if "file is not a database" in reason or "malformed" in reason:
            return ConfigError(self.fail(f"该文件不是可读的 SQLite 数据库 / not a readable SQLite database ({reason}); "
                                         f"check the source's path (`govshare source edit {self.name}`)"))
        if isinstance(exc, sqlite3.OperationalError) and reason.startswith(("no such", "near ")):
            return ConfigError(self.fail(f"{zh}，数据库无法执行该查询 / {en}: {reason}; check the stream's table, "
                                         "columns and cursor column"))
        return RetriableError(self.fail(f"{zh} / {en}: {reason}"))

    def _connect(self) -> sqlite3.Connection:
        path = Path(self.config["path"])
        if not path.is_file():
            raise ConfigError(self.fail(f"数据库文件 {path} 不存在 / database file {path} does not exist; check the "
                                        f"source's path (`govshare source edit {self.name}`)"))
        try:
            # Read-only: a source is never written by the hub.
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise self._failed(exc, zh="无法打开数据库文件", en="cannot open") from exc

    def _columns(self, connection: sqlite3.Connection, table: str) -> list[ColumnInfo]:
        rows = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
        if not rows:
            raise ConfigError(self.fail(f"表 {table} 不存在 / table {table!r} does not exist"))
        return [ColumnInfo(name=r[1], source_type=r[2], arrow_type=arrow_type_for_declared(r[2]), nullable=not r[3])
                for r in rows]

    def check(self, stream: StreamSpec | None = None) -> None:
        connection = self._connect()
        try:
            # Reads the schema, so a file that is not a SQLite database fails here, not at the first sync.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if stream and stream.table:
                self.refuse_reserved([c.name for c in self._columns(connection, stream.table)])
            elif stream and stream.query:
                described = connection.execute(f"SELECT * FROM ({stream.query}) LIMIT 0").description
                self.refuse_reserved([d[0] for d in described])
        except sqlite3.Error as exc:
            raise ConfigError(self.fail(f"读取数据库结构失败 / reading the schema failed: {exc}")) from exc
        finally:
            connection.close()

    def discover(self) -> list[TableInfo]:
        connection = self._connect()
        try:
            names = [r[0] for r in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            tables = []
            for name in names:
                info = connection.execute(f'PRAGMA table_info("{name}")').fetchall()
                key = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
                tables.append(TableInfo(name=name, columns=self._columns(connection, name), primary_key=key))
            return tables
        finally:
            connection.close()


    def read_keys(self, stream: StreamSpec, *, ordered: bool) -> Iterator[pa.RecordBatch]:
        connection = self._connect()
        try:
            source = f'"{stream.table}"' if stream.table else f"({stream.query})"
            columns = {c.name: c for c in self._columns(connection, stream.table)} if stream.table else {}
            keys = quoted_names(stream.primary_key)
            cursor = connection.execute(f"SELECT {keys} FROM {source}" + (f" ORDER BY {keys}" if ordered else ""))
            names = list(stream.primary_key)
            types = [columns[n].arrow_type if n in columns else pa.string() for n in names]
            while rows := cursor.fetchmany(stream.batch_rows):
                yield rows_to_batch(names, types, rows)
        except sqlite3.Error as exc:
            raise self._failed(exc, zh="读取主键失败", en="reading the keys failed") from exc
        finally:
            connection.close()

    def stream_schema(self, stream: StreamSpec) -> pa.Schema:
        connection = self._connect()
        try:
            if stream.table:
                columns = self._columns(connection, stream.table)
            else:
                connection.execute(f"CREATE TEMP VIEW govshare_stream AS {stream.query}")
                columns = self._columns(connection, "govshare_stream")
            self.refuse_reserved([c.name for c in columns])
            return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
        except sqlite3.Error as exc:
            raise ConfigError(self.fail(f"读取数据库结构失败 / reading the schema failed: {exc}")) from exc
        finally:
            connection.close()

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        connection = self._connect()
        try:
            if stream.table:
                columns = self._columns(connection, stream.table)
                sql = f'SELECT {", ".join(chr(34) + c.name + chr(34) for c in columns)} FROM "{stream.table}"'
            else:
                # A temporary view carries the declared types of the query's columns through to PRAGMA.
                connection.execute(f"CREATE TEMP VIEW govshare_stream AS {stream.query}")
                columns = self._columns(connection, "govshare_stream")
                sql = "SELECT * FROM govshare_stream"
            self.refuse_reserved([c.name for c in columns])
            params: tuple = ()
            if stream.cursor_column and state.cursor_value is not None:
                # >= not >: rows tied with the last cursor value are read again and merged by key. A row without
                # a cursor value cannot be placed after the watermark: it is read every time (connectors.base).
                sql += f' WHERE ("{stream.cursor_column}" >= ? OR "{stream.cursor_column}" IS NULL)'
                params = (state.cursor_value,)
            if stream.cursor_column:
                sql += f' ORDER BY "{stream.cursor_column}"'
            cursor = connection.execute(sql, params)
            names = [c.name for c in columns]
            types = [c.arrow_type for c in columns]
            yielded = False
            while rows := cursor.fetchmany(stream.batch_rows):
                yielded = True
                yield rows_to_batch(names, types, rows)
            if not yielded:  # an empty table still tells its schema
                yield rows_to_batch(names, types, [])
        except sqlite3.Error as exc:
            raise self._failed(exc, zh="读取数据失败", en="read failed") from exc
        finally:
            connection.close()
