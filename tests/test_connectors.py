"""Source connectors against real databases: one-line errors naming the source, discovery with Arrow types and
keys, bounded batches, the entry-point lookup, and source passwords encrypted at rest."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from connectors.base import Connector, ReadState, StreamSpec
from core.errors import ConfigError, RetriableError
from samples.loaders import load_postgres, load_sqlite
from tests.helpers import PROVIDER, ensure_agency, pg_execute, pg_scratch_schema, pg_source_config
from tests.services import require_postgres

PASSWORD = "Zq8-密码-never-shown"
ROWS = 700


@pytest.fixture
def pg_source() -> Iterator[tuple[str, str]]:
    """(dsn, schema) with the enterprises table loaded in a scratch schema."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=31, schema=schema)
        yield dsn, schema


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Path:
    path = tmp_path / "business.db"
    load_sqlite(path, rows=ROWS, seed=32)
    return path


def _pg(dsn: str, schema: str, *, name: str = "scjg-pg", password: str | None = PASSWORD, **overrides):  # noqa: ANN003, ANN202
    from connectors.postgres import PostgresConnector

    config, _ = pg_source_config(dsn, schema=schema)
    config.update(connect_timeout=3, **overrides)
    return PostgresConnector(name=name, config=config, secret={"password": password} if password else None)


def _sqlite(path: Path, *, name: str = "scjg-lite"):  # noqa: ANN202
    from connectors.sqlite import SQLiteConnector

    return SQLiteConnector(name=name, config={"path": str(path)})


def _assert_one_line_error(raised: pytest.ExceptionInfo, source_name: str, *, must_say: str) -> None:
    message = str(raised.value)
    assert isinstance(raised.value, (ConfigError, RetriableError))
    assert f"source {source_name!r}" in message
    assert "\n" not in message and "Traceback" not in message
    assert PASSWORD not in message
    assert must_say.lower() in message.lower(), message


# --- check() ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "stream_table", "expected_type", "must_say"), [
    ({"port": 1}, None, RetriableError, "port 1"),
    ({"dbname": "no_such_database_gs"}, None, ConfigError, 'database "no_such_database_gs" does not exist'),
    ({"user": "no_such_role_gs"}, None, ConfigError, 'role "no_such_role_gs" does not exist'),
    ({}, "no_such_table", ConfigError, "no_such_table does not exist"),
], ids=["wrong-port", "wrong-database", "wrong-user", "missing-table"])
def test_postgres_check_reports_one_line_naming_the_source(pg_source: tuple[str, str], overrides: dict,
                                                           stream_table: str | None, expected_type: type,
                                                           must_say: str) -> None:
    dsn, schema = pg_source
    connector = _pg(dsn, schema, **overrides)
    with pytest.raises(expected_type) as raised:
        connector.check(StreamSpec(table=stream_table) if stream_table else None)
    _assert_one_line_error(raised, "scjg-pg", must_say=must_say)


def test_postgres_check_passes_for_a_good_source(pg_source: tuple[str, str]) -> None:
    dsn, schema = pg_source
    _pg(dsn, schema).check(StreamSpec(table="enterprises"))
    _pg(dsn, schema).check(StreamSpec(query=f'SELECT id, name FROM "{schema}".enterprises WHERE id < 10'))


@pytest.mark.parametrize(("case", "expected_type", "must_say"), [
    ("missing-file", ConfigError, "does not exist"),
    ("missing-table", ConfigError, "'no_such_table' does not exist"),
    ("not-a-database", ConfigError, "file is not a database"),
])
def test_sqlite_check_reports_one_line_naming_the_source(sqlite_source: Path, tmp_path: Path, case: str,
                                                         expected_type: type, must_say: str) -> None:
    path = sqlite_source
    stream = None
    if case == "missing-file":
        path = tmp_path / "elsewhere" / "business.db"
    elif case == "missing-table":
        stream = StreamSpec(table="no_such_table")
    else:
        path = tmp_path / "garbage.db"
        path.write_bytes(b"this is not a SQLite database file, just text" * 50)
    with pytest.raises(expected_type) as raised:
        _sqlite(path).check(stream)
    _assert_one_line_error(raised, "scjg-lite", must_say=must_say)


def test_sqlite_check_passes_for_a_good_source(sqlite_source: Path) -> None:
    _sqlite(sqlite_source).check(StreamSpec(table="enterprises"))


def test_cli_source_check_prints_one_line(hub_home: Path, pg_source: tuple[str, str]) -> None:
    """`govshare source check` on an unreachable server: one line naming the source, the retriable status."""
    from cli.main import app
    from registry.db import session_scope
    from registry.catalog.sources import add_source

    dsn, schema = pg_source
    config, _ = pg_source_config(dsn, schema=schema)
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        add_source(session, name="down-pg", agency=PROVIDER[0], kind="postgresql",
                   config={**config, "port": 1, "connect_timeout": 3}, secret={"password": PASSWORD})
    result = CliRunner().invoke(app, ["source", "check", "down-pg"], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "source 'down-pg'" in lines[0] and "Traceback" not in result.output and PASSWORD not in result.output


# --- discover() and read() -------------------------------------------------------------------------------------

def _by_name(tables):  # noqa: ANN001, ANN202
    return {t.name: t for t in tables}


def test_postgres_discover_lists_tables_types_and_keys(pg_source: tuple[str, str]) -> None:
    dsn, schema = pg_source
    pg_execute(dsn, f'CREATE TABLE "{schema}".licences (enterprise_id bigint, seq int, issued date, '
                    f'fee numeric(10, 3), note text, PRIMARY KEY (seq, enterprise_id))')  # not the columns' order
    tables = _by_name(_pg(dsn, schema).discover())
    assert set(tables) == {"enterprises", "licences"}

    enterprises = tables["enterprises"]
    assert enterprises.primary_key == ["id"]
    types = {c.name: c.arrow_type for c in enterprises.columns}
    assert [c.name for c in enterprises.columns] == ["id", "uscc", "name", "legal_rep", "legal_rep_id", "reg_capital",
                                                     "established", "status", "address", "industry", "updated_at"]
    assert types["id"] == pa.int64()
    assert types["reg_capital"] == pa.decimal128(18, 2)
    assert types["established"] == pa.date32()
    assert types["updated_at"] == pa.timestamp("us", tz="UTC")
    assert types["name"] == pa.string()
    assert {c.name: c.source_type for c in enterprises.columns}["reg_capital"] == "numeric(18,2)"

    licences = tables["licences"]
    # the key's own order, as table_info gives it (a resource registered from either names the same key)
    assert licences.primary_key == ["seq", "enterprise_id"] == _pg(dsn, schema).table_info("licences").primary_key
    assert {c.name: c.arrow_type for c in licences.columns}["fee"] == pa.decimal128(10, 3)


def test_sqlite_discover_lists_tables_types_and_keys(sqlite_source: Path) -> None:
    with closing(sqlite3.connect(sqlite_source)) as conn, conn:
        conn.execute("CREATE TABLE licences (enterprise_id INTEGER, seq INTEGER, issued DATE, fee DECIMAL(10,3), "
                     "PRIMARY KEY (enterprise_id, seq))")
    tables = _by_name(_sqlite(sqlite_source).discover())
    assert set(tables) == {"enterprises", "licences"}
    types = {c.name: c.arrow_type for c in tables["enterprises"].columns}
    assert tables["enterprises"].primary_key == ["id"]
    assert types["id"] == pa.int64() and types["reg_capital"] == pa.decimal128(18, 2)
    assert types["name"] == pa.string()
    assert tables["licences"].primary_key == ["enterprise_id", "seq"]
    licence_types = {c.name: c.arrow_type for c in tables["licences"].columns}
    assert licence_types["issued"] == pa.date32() and licence_types["fee"] == pa.decimal128(10, 3)


def _read_all(connector: Connector, stream: StreamSpec, state: ReadState = ReadState()) -> list[pa.RecordBatch]:
    return list(connector.read(stream, state))


@pytest.mark.parametrize("batch_rows", [1, 97, 10_000])
def test_postgres_read_yields_bounded_batches(pg_source: tuple[str, str], batch_rows: int) -> None:
    dsn, schema = pg_source
    batches = _read_all(_pg(dsn, schema), StreamSpec(table="enterprises", batch_rows=batch_rows))
    assert all(b.num_rows <= batch_rows for b in batches)
    assert sum(b.num_rows for b in batches) == ROWS
    ids = pa.Table.from_batches(batches).column("id").to_pylist()
    assert sorted(ids) == list(range(1, ROWS + 1))
    assert batches[0].schema.field("reg_capital").type == pa.decimal128(18, 2)


@pytest.mark.parametrize("batch_rows", [1, 97, 10_000])
def test_sqlite_read_yields_bounded_batches(sqlite_source: Path, batch_rows: int) -> None:
    batches = _read_all(_sqlite(sqlite_source), StreamSpec(table="enterprises", batch_rows=batch_rows))
    assert all(b.num_rows <= batch_rows for b in batches)
    assert sum(b.num_rows for b in batches) == ROWS
    assert sorted(pa.Table.from_batches(batches).column("id").to_pylist()) == list(range(1, ROWS + 1))


def test_postgres_read_from_a_cursor_returns_rows_at_or_after_it(pg_source: tuple[str, str]) -> None:
    """An incremental read compares the saved cursor text with a timestamptz column, in the database."""
    dsn, schema = pg_source
    (cut,) = pg_execute(dsn, f'SELECT updated_at FROM "{schema}".enterprises ORDER BY updated_at DESC '
                             f"OFFSET 49 LIMIT 1")[0]
    (expected,) = pg_execute(dsn, f'SELECT count(*) FROM "{schema}".enterprises WHERE updated_at >= %s', (cut,))[0]
    stream = StreamSpec(table="enterprises", cursor_column="updated_at", primary_key=("id",), batch_rows=16)
    batches = _read_all(_pg(dsn, schema), stream, ReadState(cursor_value=str(cut)))
    assert sum(b.num_rows for b in batches) == expected >= 50
    assert all(b.num_rows <= 16 for b in batches)
    assert min(pa.Table.from_batches(batches).column("updated_at").to_pylist()) == cut

    query = StreamSpec(query=f'SELECT id, updated_at FROM "{schema}".enterprises', cursor_column="updated_at")
    assert sum(b.num_rows for b in _read_all(_pg(dsn, schema), query, ReadState(cursor_value=str(cut)))) == expected


def test_postgres_incremental_read_quotes_the_cursor_and_reports_a_wrong_column_as_configuration(
        pg_source: tuple[str, str]) -> None:
    dsn, schema = pg_source
    wrong = StreamSpec(table="enterprises", cursor_column="no_such_column")
    with pytest.raises(ConfigError, match="no_such_column") as raised:
        _read_all(_pg(dsn, schema), wrong, ReadState(cursor_value="2020-01-01"))
    assert not isinstance(raised.value, RetriableError)  # retrying a wrong column cannot help
    # The saved value is a literal, never SQL: quotes and dollar signs in it are compared, not run.
    hostile = "$gs$'; DROP TABLE enterprises; --"
    by_name = StreamSpec(table="enterprises", cursor_column="name")
    (expected,) = pg_execute(dsn, f'SELECT count(*) FROM "{schema}".enterprises WHERE name >= %s', (hostile,))[0]
    assert sum(b.num_rows for b in _read_all(_pg(dsn, schema), by_name, ReadState(cursor_value=hostile))) == expected
    assert pg_execute(dsn, f'SELECT count(*) FROM "{schema}".enterprises')[0][0] == ROWS


def test_read_of_an_empty_table_still_tells_the_schema(pg_source: tuple[str, str], sqlite_source: Path) -> None:
    dsn, schema = pg_source
    pg_execute(dsn, f'CREATE TABLE "{schema}".empty_t (id bigint PRIMARY KEY, amount numeric(12,4))')
    batches = _read_all(_pg(dsn, schema), StreamSpec(table="empty_t"))
    assert sum(b.num_rows for b in batches) == 0
    assert batches[0].schema.field("amount").type == pa.decimal128(12, 4)

    with closing(sqlite3.connect(sqlite_source)) as conn, conn:
        conn.execute("CREATE TABLE empty_t (id INTEGER PRIMARY KEY, amount NUMERIC(12,4))")
    batches = _read_all(_sqlite(sqlite_source), StreamSpec(table="empty_t"))
    assert sum(b.num_rows for b in batches) == 0
    assert batches[0].schema.field("amount").type == pa.decimal128(12, 4)


# --- the kind lookup ------------------------------------------------------------------------------------------

def test_connector_kinds_come_from_entry_points() -> None:
    from connectors.postgres import PostgresConnector
    from connectors.kinds import available_kinds, connector_class
    from connectors.sqlite import SQLiteConnector

    assert connector_class("postgresql") is PostgresConnector
    assert connector_class("sqlite") is SQLiteConnector
    assert {"postgresql", "sqlite"} <= set(available_kinds())


def test_unknown_kind_is_a_clear_error(hub_home: Path) -> None:
    from connectors.kinds import connector_class
    from registry.db import session_scope
    from registry.catalog.sources import add_source

    with pytest.raises(ConfigError) as raised:
        connector_class("oracle")
    message = str(raised.value)
    assert "unknown source kind 'oracle'" in message and "postgresql" in message and "sqlite" in message

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        with pytest.raises(ConfigError, match="unknown source kind 'oracle'"):
            add_source(session, name="legacy", agency=PROVIDER[0], kind="oracle", config={"host": "10.0.0.9"})


def test_missing_configuration_is_named(hub_home: Path) -> None:
    from registry.db import session_scope
    from registry.catalog.sources import add_source

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        with pytest.raises(ConfigError, match="needs dbname, user"):
            add_source(session, name="half", agency=PROVIDER[0], kind="postgresql", config={"host": "127.0.0.1"})


# --- secrets at rest ------------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def keyed_hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub home with a real (non-placeholder) secret key, registry in SQLite or PostgreSQL."""
    from core.settings import reset_settings

    home = request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    monkeypatch.setenv("GOVSHARE_SECRET_KEY", "k" * 24 + "-test-secret-key")
    monkeypatch.delenv("GOVSHARE_DEMO")
    reset_settings()
    return home


def test_source_password_is_encrypted_at_rest(keyed_hub: Path, pg_source: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings
    from registry.db import get_engine, session_scope
    from registry.catalog.sources import add_source, get_source, open_connector

    dsn, schema = pg_source
    config, _ = pg_source_config(dsn, schema=schema)
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        add_source(session, name="scjg-pg", agency=PROVIDER[0], kind="postgresql", config=config,
                   secret={"password": PASSWORD})

    # The plaintext is nowhere in the registry's tables that hold sources and their history.
    with get_engine().connect() as connection:
        for table in ("sources", "audit_events"):
            dumped = json.dumps([list(row) for row in connection.execute(text(f"SELECT * FROM {table}"))],
                                ensure_ascii=False, default=str)
            assert PASSWORD not in dumped, f"password in clear in {table}"
            assert "never-shown" not in dumped
        sealed = connection.execute(text("SELECT secret_encrypted FROM sources WHERE name = 'scjg-pg'")).scalar_one()
        audit = connection.execute(text("SELECT detail FROM audit_events WHERE action = 'source.add'")).scalar_one()
    assert sealed and PASSWORD not in sealed
    assert "password" in str(audit)  # the audit names the secret field, not its value

    # The source still connects: the secret is decrypted when the connector is opened.
    with session_scope() as session:
        connector = open_connector(get_source(session, name="scjg-pg"))
    assert connector.secret == {"password": PASSWORD}
    assert PASSWORD not in repr(connector)
    connector.check(StreamSpec(table="enterprises"))

    # With another key the credential cannot be opened, and the error says what to do.
    monkeypatch.setenv("GOVSHARE_SECRET_KEY", "another-key-" + "x" * 20)
    reset_settings()
    with session_scope() as session:
        with pytest.raises(ConfigError, match="GOVSHARE_SECRET_KEY differs") as raised:
            open_connector(get_source(session, name="scjg-pg"))
    assert PASSWORD not in str(raised.value)
