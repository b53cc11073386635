"""A database column named like the hub's own row flags (__govshare_row_problem, __govshare_row_raw, ...) is
refused with the column's name, as a file heading of that name is (tests/test_hostile_files.py): read, its
values became the reasons rows were quarantined, and the column was never published."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from connectors.base import Connector, ReadState, StreamSpec
from core.errors import ConfigError
from tests.helpers import latest, pg_execute, pg_scratch_schema, pg_source_config, register_resource
from tests.services import require_mysql, require_postgres

FLAG = "__govshare_row_problem"


def _stream(source: Connector, how: str) -> StreamSpec:
    table = f'"{source.config["schema"]}".people' if source.kind == "postgresql" else "people"
    return {"table": StreamSpec(table="people", primary_key=("id",)),
            "incremental": StreamSpec(table="people", primary_key=("id",), cursor_column="id"),
            "query": StreamSpec(query=f"SELECT id, {FLAG} FROM {table}", primary_key=("id",))}[how]


def _sqlite(tmp_path: Path) -> Connector:
    from connectors.sqlite import SQLiteConnector

    path = tmp_path / "people.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE people (id INTEGER PRIMARY KEY, {FLAG} TEXT)")
        conn.executemany("INSERT INTO people VALUES (?, ?)", [(1, "张三"), (2, None)])
    return SQLiteConnector(name="人员库", config={"path": str(path)})


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connector]:
    """A people table (id, __govshare_row_problem) with two rows, in each kind of database."""
    if request.param == "sqlite":
        yield _sqlite(tmp_path)
    elif request.param == "postgresql":
        from connectors.postgres import PostgresConnector

        dsn = require_postgres()
        with pg_scratch_schema(dsn) as schema:
            pg_execute(dsn, f'CREATE TABLE "{schema}".people (id bigint PRIMARY KEY, {FLAG} text)')
            pg_execute(dsn, f"INSERT INTO \"{schema}\".people VALUES (1, '张三'), (2, NULL)")
            config, secret = pg_source_config(dsn, schema=schema)
            yield PostgresConnector(name="人员库", config=config, secret=secret)
    else:
        import pymysql

        from connectors.mysql import MySQLConnector

        kwargs = require_mysql()
        database = f"gs_t_{uuid.uuid4().hex[:10]}"
        with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE TABLE `{database}`.people (id BIGINT PRIMARY KEY, {FLAG} TEXT)")
            cursor.execute(f"INSERT INTO `{database}`.people VALUES (1, '张三'), (2, NULL)")
        try:
            yield MySQLConnector(name="人员库", config={"host": kwargs["host"], "port": kwargs["port"],
                                                      "database": database, "user": kwargs["user"]},
                                 secret={"password": kwargs.get("password") or ""})
        finally:
            with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")


def _assert_refused(raised: pytest.ExceptionInfo) -> None:
    message = str(raised.value)
    assert FLAG in message and "保留" in message and "人员库" in message


@pytest.mark.parametrize("how", ["table", "incremental", "query"])
def test_a_column_named_like_the_hubs_row_flag_is_refused_when_read(source: Connector, how: str) -> None:
    with pytest.raises(ConfigError) as refused:
        list(source.read(_stream(source, how), ReadState(cursor_value="0" if how == "incremental" else None)))
    _assert_refused(refused)


@pytest.mark.parametrize("how", ["table", "query"])
def test_a_column_named_like_the_hubs_row_flag_is_refused_when_the_resource_is_checked(source: Connector,
                                                                                       how: str) -> None:
    """What `resource add` and `resource edit` ask the source (registry.exchange.streams.verify_stream)."""
    with pytest.raises(ConfigError) as refused:
        source.stream_schema(_stream(source, how))
    _assert_refused(refused)
    with pytest.raises(ConfigError) as refused:
        source.check(_stream(source, how))
    _assert_refused(refused)


def test_other_tables_of_the_database_are_still_listed(tmp_path: Path) -> None:
    """Only a stream reading the column is refused: discover lists the table with its columns as they are."""
    assert [c.name for c in _sqlite(tmp_path).discover()[0].columns] == ["id", FLAG]


def test_a_sync_of_such_a_table_publishes_nothing(hub_home: Path, tmp_path: Path) -> None:
    from pipeline.sync import sync_resource

    connector = _sqlite(tmp_path)
    hub = register_resource(kind="sqlite", config=connector.config, table="people", cursor=None)
    with pytest.raises(ConfigError) as refused:
        sync_resource(resource_code=hub.resource_code)
    assert FLAG in str(refused.value) and "保留" in str(refused.value)
    assert latest(hub.resource_code) is None
