"""Rows without a cursor value (NULL updated_at: a legacy row never touched since a migration, a writer that
forgets the column) cannot be placed after any watermark. An incremental read used to skip them for good: a
row inserted or changed without one waited for the next full read while the run said "+0 ~0 -0". Every
database connector now reads them in every incremental run, and a re-read row that did not change makes no
version."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.base import ReadState, StreamSpec
from tests.helpers import (
    latest,
    pg_execute,
    pg_rows,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
)
from tests.services import require_mysql, require_postgres

STREAM = StreamSpec(table="t", primary_key=("id",), cursor_column="updated_at", batch_rows=10)
ROWS = [(1, "a", "2026-01-01 08:00:00"), (2, "b", None), (3, "c", "2026-01-03 08:00:00"), (4, "d", None)]
SINCE = "2026-01-02 00:00:00"


def _ids(batches: Iterator[pa.RecordBatch]) -> list[int]:
    return sorted(row["id"] for batch in batches for row in batch.to_pylist())


def test_sqlite_and_sqlalchemy_read_rows_without_a_cursor_value(tmp_path: Path) -> None:
    from connectors.sqlalchemy_url import SQLAlchemyConnector
    from connectors.sqlite import SQLiteConnector

    path = tmp_path / "source.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", ROWS)
    for connector in (SQLiteConnector(name="s", config={"path": str(path)}),
                      SQLAlchemyConnector(name="a", config={"url": f"sqlite:///{path}"})):
        assert _ids(connector.read(STREAM, ReadState(cursor_value=SINCE))) == [2, 3, 4], connector.kind


def test_mysql_reads_rows_without_a_cursor_value() -> None:
    import pymysql

    from connectors.mysql import MySQLConnector

    kwargs = require_mysql()
    database = f"gs_nc_{uuid.uuid4().hex[:10]}"
    with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
        cursor.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, name TEXT, updated_at DATETIME NULL)")
        cursor.executemany(f"INSERT INTO `{database}`.t VALUES (%s, %s, %s)", ROWS)
    try:
        connector = MySQLConnector(name="m", config={"host": kwargs["host"], "port": kwargs["port"],
                                                     "database": database, "user": kwargs["user"]},
                                   secret={"password": kwargs.get("password") or ""})
        assert _ids(connector.read(STREAM, ReadState(cursor_value=SINCE))) == [2, 3, 4]
    finally:
        with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{database}`")


@pytest.fixture
def pg_source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE "{schema}".t (id int PRIMARY KEY, name text, updated_at timestamptz)')
        pg_execute(dsn, f'INSERT INTO "{schema}".t SELECT g, \'n\' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE '
                        f"timestamptz '2026-01-01 08:00:00+08' + g * interval '1 minute' END "
                        f"FROM generate_series(1, 100) AS g")
        yield dsn, schema


def test_an_incremental_run_publishes_rows_without_a_cursor_value(hub_home: Path,
                                                                  pg_source: tuple[str, str]) -> None:
    from pipeline.sync import sync_resource

    dsn, schema = pg_source
    table = f'"{schema}".t'
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret, table="t").resource_code
    assert sync_resource(resource_code=code).version == 1
    pg_execute(dsn, f"INSERT INTO {table} VALUES (101, 'new, without a cursor value', NULL)")
    pg_execute(dsn, f"UPDATE {table} SET name = 'changed' WHERE id = 20")  # its cursor value stays NULL
    report = sync_resource(resource_code=code)
    assert report.mode == "incremental" and report.version == 2
    changes = latest(code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 1, 0)
    published = {r["id"]: r["name"] for r in read_version(latest(code)).to_pylist()}
    assert published == dict(pg_rows(dsn, table, columns=("id", "name")))
    # read again, unchanged: no version, no notice
    quiet = sync_resource(resource_code=code)
    assert quiet.mode == "incremental" and quiet.version is None and latest(code).number == 2
