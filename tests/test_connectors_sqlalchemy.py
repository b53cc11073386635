"""The sqlalchemy connector against real SQLite files, a real PostgreSQL and a real MariaDB (for a login)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from contextlib import closing
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2
import pyarrow as pa
import pytest

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN, ReadState, StreamSpec
from connectors.sqlalchemy_url import SQLAlchemyConnector
from core.errors import ConfigError, RetriableError
from tests.helpers import pg_execute, pg_scratch_schema
from tests.services import require_mysql, require_postgres

SHANGHAI = ZoneInfo("Asia/Shanghai")
PG_TABLE = """CREATE TABLE {schema}.people (
    id bigint PRIMARY KEY, name text NOT NULL, capital numeric(18,2), huge numeric(40,5), loose numeric,
    born date, updated_at timestamptz NOT NULL, local_ts timestamp, active boolean, note varchar(20))"""
PG_ROWS = [
    (1, "上海市浦东新区", Decimal("12345678901234.56"), Decimal("123456789012345678901234567890123.12345"),
     Decimal("3.14159"), date(1990, 1, 31), datetime(2026, 1, 2, 8, 0, 0, 123456, tzinfo=SHANGHAI),
     datetime(2026, 1, 2, 8, 0), True, "备注"),
    (2, "李雷", Decimal("-0.01"), None, None, None, datetime(2026, 1, 3, 9, 30, tzinfo=SHANGHAI), None, None, None),
    (3, "韩梅梅", Decimal("0.00"), Decimal("0.00001"), Decimal("1e-10"), date(2000, 2, 29),
     datetime(2026, 1, 4, 23, 59, 59, tzinfo=SHANGHAI), datetime(2026, 1, 4), False, ""),
]


def _sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "业务库.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("""CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, capital NUMERIC(18, 2),
                        born DATE, updated_at TEXT NOT NULL, note TEXT)""")
        conn.executemany("INSERT INTO people VALUES (?,?,?,?,?,?)", [
            (1, "张三", "1234.56", "1990-01-31", "2026-01-02T08:00:00+08:00", "中文备注"),
            (2, "李四", None, None, "2026-01-03T09:30:00+08:00", None),
            (3, "王五", "abc", "2000-02-30", "2026-01-04T10:00:00+08:00", ""),
        ])
    return path


def _read(connector: SQLAlchemyConnector, *, batch_rows: int = 2, cursor: str | None = "updated_at",
          since: str | None = None, table: str = "people") -> pa.Table:
    stream = StreamSpec(table=table, primary_key=("id",), cursor_column=cursor, batch_rows=batch_rows)
    batches = list(connector.read(stream, ReadState(cursor_value=since)))
    assert all(b.num_rows <= batch_rows for b in batches)
    # only batches with a problem carry the flag column: unify for the comparison
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="default")


def test_sqlite_url_discover_read_and_flag(tmp_path: Path) -> None:
    path = _sqlite_file(tmp_path)
    connector = SQLAlchemyConnector(name="区县库", config={"url": f"sqlite:///{path}"})
    connector.check(StreamSpec(table="people"))
    [info] = connector.discover()
    assert info.primary_key == ["id"]
    assert {c.name: c.arrow_type for c in info.columns} == {
        "id": pa.int64(), "name": pa.string(), "capital": pa.decimal128(18, 2), "born": pa.date32(),
        "updated_at": pa.string(), "note": pa.string()}
    table = _read(connector)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows[1]["capital"] == Decimal("1234.56") and rows[1]["note"] == "中文备注"
    assert rows[1]["born"] == date(1990, 1, 31)
    assert rows[2]["capital"] is None and rows[2]["note"] is None
    # 'abc' in a decimal column and 30 February are problems of row 3, not a crashed read
    assert rows[1][ROW_PROBLEM_COLUMN] is None and rows[2][ROW_PROBLEM_COLUMN] is None
    assert "capital='abc'" in rows[3][ROW_PROBLEM_COLUMN] and "born='2000-02-30'" in rows[3][ROW_PROBLEM_COLUMN]
    # beside the problems, the values as read: the quarantined row keeps them for the provider to correct
    assert json.loads(rows[3][ROW_RAW_COLUMN]) == {"capital": "abc", "born": "2000-02-30"}
    assert rows[1][ROW_RAW_COLUMN] is None
    assert _read(connector, since="2026-01-03T09:30:00+08:00").column("id").to_pylist() == [2, 3]


def test_sqlite_missing_table_is_one_line_naming_the_source(tmp_path: Path) -> None:
    connector = SQLAlchemyConnector(name="区县库", config={"url": f"sqlite:///{_sqlite_file(tmp_path)}"})
    with pytest.raises(ConfigError) as caught:
        connector.check(StreamSpec(table="no_such_table"))
    assert "'区县库'" in str(caught.value) and "no_such_table" in str(caught.value) and "\n" not in str(caught.value)


def test_password_belongs_in_the_secret_not_the_url() -> None:
    with pytest.raises(ConfigError, match="secret"):
        SQLAlchemyConnector(name="x", config={"url": "postgresql://u:hunter2@db/x"})
    with pytest.raises(ConfigError, match="not a SQLAlchemy URL"):
        SQLAlchemyConnector(name="x", config={"url": "not a url"})


@pytest.fixture
def pg_people() -> tuple[str, str]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, PG_TABLE.format(schema=schema))
        for row in PG_ROWS:
            pg_execute(dsn, f"INSERT INTO {schema}.people VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", row)
        yield dsn, schema


def _pg_connector(dsn: str, schema: str, **config: object) -> SQLAlchemyConnector:
    url = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    return SQLAlchemyConnector(name="税务库", config={"url": url, "schema": schema, **config})


def test_postgresql_url_types_values_and_incremental(pg_people: tuple[str, str]) -> None:
    dsn, schema = pg_people
    connector = _pg_connector(dsn, schema)
    connector.check(StreamSpec(table="people"))
    [info] = connector.discover()
    assert info.name == "people" and info.primary_key == ["id"]
    assert {c.name: c.arrow_type for c in info.columns} == {
        "id": pa.int64(), "name": pa.string(), "capital": pa.decimal128(18, 2), "huge": pa.decimal256(40, 5),
        "loose": pa.decimal128(38, 10), "born": pa.date32(), "updated_at": pa.timestamp("us", tz="UTC"),
        "local_ts": pa.timestamp("us"), "active": pa.bool_(), "note": pa.string()}
    table = _read(connector, batch_rows=2)
    assert ROW_PROBLEM_COLUMN not in table.column_names
    rows = table.to_pylist()
    for got, want in zip(rows, PG_ROWS, strict=True):
        assert (got["id"], got["name"], got["capital"], got["huge"], got["born"], got["active"], got["note"]) == \
            (want[0], want[1], want[2], want[3], want[5], want[8], want[9])
        assert got["updated_at"] == want[6] and got["local_ts"] == want[7]
    assert rows[0]["updated_at"] == datetime(2026, 1, 2, 0, 0, 0, 123456, tzinfo=timezone.utc)
    assert rows[2]["loose"] == Decimal("1e-10")
    since = str(datetime(2026, 1, 3, 9, 30, tzinfo=SHANGHAI))
    assert _read(connector, since=since).column("id").to_pylist() == [2, 3]


def test_postgresql_wrong_port_and_database(pg_people: tuple[str, str]) -> None:
    dsn, schema = pg_people
    wrong_port = _pg_connector(dsn.replace(":5432/", ":1/"), schema)
    with pytest.raises(RetriableError, match="'税务库'"):
        wrong_port.check()
    no_db = _pg_connector(dsn.rsplit("/", 1)[0] + "/gs_no_such_db", schema)
    with pytest.raises(ConfigError, match="cannot log in.*gs_no_such_db"):
        no_db.check()
    with pytest.raises(ConfigError, match="'税务库'.*nope"):
        _pg_connector(dsn, schema).check(StreamSpec(table="nope"))


def test_postgresql_connection_dropped_mid_read_is_retriable(pg_people: tuple[str, str]) -> None:
    dsn, schema = pg_people
    pg_execute(dsn, f"INSERT INTO {schema}.people (id, name, updated_at) "
                    "SELECT g, 'n' || g, now() FROM generate_series(10, 20000) AS g")
    application = f"gs_drop_{uuid.uuid4().hex[:8]}"
    connector = _pg_connector(dsn, schema, connect_args={"application_name": application})
    reader = connector.read(StreamSpec(table="people", batch_rows=500), ReadState())
    assert next(reader).num_rows == 500
    pg_execute(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
               (application,))
    with pytest.raises(RetriableError) as caught:
        for _ in reader:
            pass
    assert "'税务库'" in str(caught.value) and "\n" not in str(caught.value)


def test_mysql_url_wrong_password_hides_the_secret() -> None:
    import pymysql

    kwargs = require_mysql()
    user, password = f"gs_u_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT SELECT ON `{kwargs['database']}`.* TO '{user}'@'%'")
    try:
        url = f"mysql+pymysql://{user}@{kwargs['host']}:{kwargs['port']}/{kwargs['database']}"
        SQLAlchemyConnector(name="市场库", config={"url": url}, secret={"password": password}).check()
        wrong = SQLAlchemyConnector(name="市场库", config={"url": url}, secret={"password": password + "x"})
        with pytest.raises(ConfigError) as caught:
            wrong.check()
        message = str(caught.value)
        assert "'市场库'" in message and "cannot log in" in message and password not in message
        assert password not in repr(wrong) and password not in wrong.describe()
    finally:
        with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_mysql_url_times_unsigned_and_odd_values_read_without_failing() -> None:
    """Through a MariaDB URL: a negative TIME failed the whole read (the driver's duration was cast to a time of
    day); it is a duration, as the mysql connector reads it. BIGINT UNSIGNED holds 2**64-1 (uint64); a zero
    date is flagged on its row. A value of a kind no conversion knows is flagged, not a failed read."""
    import pymysql

    from connectors.arrowconv import to_arrow_column

    kwargs = require_mysql()
    table = f"gs_sa_{uuid.uuid4().hex[:8]}"
    with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, span TIME(3), big BIGINT UNSIGNED, born DATE) "
                       "CHARSET utf8mb4")
        cursor.execute("SET SESSION sql_mode = ''")
        cursor.execute(f"INSERT INTO {table} VALUES (1, '-12:30:00.5', 18446744073709551615, '2024-02-29'), "
                       "(2, '838:59:59', 0, '0000-00-00')")
    try:
        url = f"mysql+pymysql://{kwargs['user']}@{kwargs['host']}:{kwargs['port']}/{kwargs['database']}"
        connector = SQLAlchemyConnector(name="市场库", config={"url": url}, secret={"password": kwargs.get("password")})
        rows = pa.Table.from_batches(list(connector.read(StreamSpec(table=table, primary_key=("id",)),
                                                         ReadState()))).sort_by("id").to_pylist()
        assert rows[0]["span"] == -timedelta(hours=12, minutes=30, milliseconds=500)
        assert rows[0]["big"] == 2**64 - 1 and rows[0][ROW_PROBLEM_COLUMN] is None
        assert rows[1]["span"] == timedelta(hours=838, minutes=59, seconds=59)
        assert rows[1]["born"] is None and "born='0000-00-00'" in rows[1][ROW_PROBLEM_COLUMN]
    finally:
        with closing(pymysql.connect(**kwargs, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")

    array, problems = to_arrow_column("tags", [[1, 2], "x", None], pa.list_(pa.int64()))
    assert array.to_pylist() == [[1, 2], None, None] and list(problems) == [1]
    assert problems[1] == "tags='x': cannot be read as list<item: int64>"


def test_postgresql_url_arrays_are_lists_and_json_is_json() -> None:
    """json/jsonb the driver parses are text columns: published as JSON (they were Python's repr, {'k': 1},
    which no consumer can parse). Arrays are published as the PostgreSQL connector publishes them (they were
    JSON text): a text[] a list, a numeric[] PostgreSQL's text, exact."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.licences (id int PRIMARY KEY, tags text[], amounts numeric[], "
                        "doc jsonb, j json)")
        pg_execute(dsn, f"INSERT INTO {schema}.licences VALUES (1, ARRAY['食品', NULL, 'a\"b,c'], "
                        """ARRAY[1.10, 2], '{"中": "值", "n": [1, true, null], "x": 2.5}', '{"a": 3}')""")
        rows = _read(_pg_connector(dsn, schema), table="licences", cursor=None).to_pylist()
    assert rows[0]["tags"] == ["食品", None, 'a"b,c']
    assert rows[0]["amounts"] == "{1.10,2}"
    assert json.loads(rows[0]["doc"]) == {"中": "值", "n": [1, True, None], "x": 2.5}
    assert json.loads(rows[0]["j"]) == {"a": 3}


def test_postgresql_url_json_is_published_as_the_server_writes_it() -> None:
    """A json or jsonb value is the server's own text: the driver parsed it into Python floats, so 1.10 came out
    as 1.1 and a number beyond a float's digits was rounded. The PostgreSQL connector publishes the same text."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.filings (id int PRIMARY KEY, doc jsonb, j json)")
        value = '{"price": 1.10, "big": 12345678901234567890.5, "键": ["值", 2.50e3]}'
        pg_execute(dsn, f"INSERT INTO {schema}.filings VALUES (1, %s, %s), (2, NULL, NULL)", (value, value))
        rows = _read(_pg_connector(dsn, schema), table="filings", cursor=None).sort_by("id").to_pylist()
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT doc::text, j::text FROM {schema}.filings WHERE id = 1")
            doc_text, json_text_ = cursor.fetchone()
        conn.close()
    assert json_text_ == value  # json keeps its input text, spacing and all
    assert (rows[0]["doc"], rows[0]["j"]) == (doc_text, json_text_)
    assert "1.10" in rows[0]["doc"] and "12345678901234567890.5" in rows[0]["doc"]
    assert (rows[1]["doc"], rows[1]["j"]) == (None, None)


def _native_read(dsn: str, schema: str, table: str, *, reader: str = "auto") -> pa.Table:
    from connectors.postgres import PostgresConnector
    from tests.helpers import pg_source_config

    config, secret = pg_source_config(dsn, schema=schema)
    config = {**config, "reader": reader}
    stream = StreamSpec(table=table, primary_key=("id",), batch_rows=100)
    batches = list(PostgresConnector(name="税务库", config=config, secret=secret).read(stream, ReadState()))
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="default")


def test_postgresql_url_publishes_arrays_and_24_00_as_the_postgresql_connector_does() -> None:
    """The same PostgreSQL table read through a SQLAlchemy URL publishes what the PostgreSQL connector does:
    arrays were JSON text ('["a", null]') where the PostgreSQL connector publishes a list (or PostgreSQL's text
    for a 2-D or numeric array), and psycopg2 turned a time of '24:00:00' (an office's closing time) into 00:00,
    the start of the day, published silently; the PostgreSQL connector quarantines it with what to store."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"""CREATE TABLE {schema}.offices (id int PRIMARY KEY, closes time, words text[],
            ints int[], grid int[][], codes char(4)[], amounts numeric(8,2)[], moments timestamptz[])""")
        pg_execute(dsn, f"""INSERT INTO {schema}.offices VALUES
            (1, '24:00:00', ARRAY['食品', NULL, 'x,y', 'NULL', ''], '{{1,NULL,3}}', '{{{{1,2}},{{3,NULL}}}}',
             '{{ab,NULL}}', '{{1.5,NULL}}', ARRAY['2026-03-01 08:00:00+08'::timestamptz, NULL]),
            (2, '23:59:59.999999', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}'),
            (3, NULL, NULL, '{{{{5,6}},{{7,8}}}}', NULL, NULL, NULL, NULL)""")
        native = _native_read(dsn, schema, "offices").sort_by("id")
        connector = _pg_connector(dsn, schema)
        through_url = _read(connector, table="offices", cursor=None, batch_rows=100).sort_by("id")
        described = {c.name: c.arrow_type for c in connector.table_info("offices").columns}
    assert through_url.to_pylist() == native.to_pylist()
    published = {f.name: f.type for f in native.schema if f.name != "id"}  # integers: int64 on this path
    assert {f.name: f.type for f in through_url.schema if f.name != "id"} == published
    assert {name: kind for name, kind in described.items() if name != "id"} == \
        {name: kind for name, kind in published.items() if name in described}
    first, _, third = through_url.to_pylist()
    assert first["closes"] is None and "closes=24:00:00" in first[ROW_PROBLEM_COLUMN]
    assert first["words"] == ["食品", None, "x,y", "NULL", ""] and first["grid"] == "{{1,2},{3,NULL}}"
    assert third["ints"] is None and "ints={{5,6},{7,8}}" in third[ROW_PROBLEM_COLUMN]


def test_postgresql_url_quarantines_infinity_and_keeps_timetz_offsets_as_the_postgresql_connector_does() -> None:
    """psycopg2 gives PostgreSQL's infinity as 9999-12-31 (-infinity as 0001-01-01), which was published as a
    true date with no flag where the PostgreSQL connector quarantines it with the source's text; a year BC or
    after 9999 failed the whole read. A timetz lost its offset ('10:00+08' published as 10:00): the PostgreSQL
    connector publishes its text. Both connectors now publish the same rows, flags and all."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.licences (id int PRIMARY KEY, valid_to date, issued timestamp, "
                        "checked timestamptz, opens timetz)")
        pg_execute(dsn, f"""INSERT INTO {schema}.licences VALUES
            (1, 'infinity', '-infinity', 'infinity', '10:00+08'),
            (2, '-infinity', 'infinity', '-infinity', '10:00:00.5-03:30'),
            (3, '9999-12-31', '0001-01-01 00:00', '2026-01-01 09:00+08', '23:59:59.999999+00'),
            (4, '0001-01-01 BC', '10000-01-01 00:00', NULL, NULL)""")
        scanned = _native_read(dsn, schema, "licences").sort_by("id").to_pylist()
        driven = _native_read(dsn, schema, "licences", reader="adbc").sort_by("id")
        connector = _pg_connector(dsn, schema)
        through_url = _read(connector, table="licences", cursor=None, batch_rows=100).sort_by("id")
        described = {c.name: c.arrow_type for c in connector.table_info("licences").columns}
    assert through_url.to_pylist()[:3] == driven.to_pylist()[:3] == scanned[:3]
    assert {f.name: f.type for f in through_url.schema if f.name != "id"} == \
        {f.name: f.type for f in driven.schema if f.name != "id"}
    assert described["opens"] == pa.string()
    first, second, third, fourth = through_url.to_pylist()
    assert (first["valid_to"], first["issued"], first["checked"]) == (None, None, None)
    assert json.loads(first[ROW_RAW_COLUMN]) == {"valid_to": "infinity", "issued": "-infinity", "checked": "infinity"}
    assert "valid_to=infinity: 超出日期范围" in first[ROW_PROBLEM_COLUMN]
    assert (first["opens"], second["opens"]) == ("10:00:00+08", "10:00:00.5-03:30")
    assert third[ROW_PROBLEM_COLUMN] is None and third["valid_to"] == date(9999, 12, 31)
    assert (fourth["valid_to"], fourth["issued"]) == (None, None)
    assert "valid_to=0001-01-01 BC: 超出日期范围" in fourth[ROW_PROBLEM_COLUMN] and "issued=10000-01-01" in \
        fourth[ROW_PROBLEM_COLUMN]


def test_postgresql_url_publishes_money_char_ranges_intervals_and_time_keys_as_the_postgresql_connector_does() -> None:
    """psycopg2's forms were published where the PostgreSQL connector publishes the source's: money as locale
    text ('$12.34', not a number), char(n) with its padding, a range and an interval in Python's spelling
    ('[1, 5)', '1 day, 2:00:00'); and the key scan read a time key of 24:00 as 00:00, the start of the day."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.fees (id int PRIMARY KEY, fee money, code char(6), ages int4range, "
                        "span interval, during tstzrange)")
        pg_execute(dsn, f"""INSERT INTO {schema}.fees VALUES
            (1, '12.34', 'ab', '[1,5)', '1 day 2 hours', '[2026-03-01 08:00+08,infinity)'),
            (2, '-1234.5', 'abcdef', 'empty', '-3 hours 5 minutes', NULL),
            (3, NULL, NULL, NULL, '1 mon 3 days', '(,)')""")
        pg_execute(dsn, f"CREATE TABLE {schema}.shifts (id time PRIMARY KEY, staff int)")
        pg_execute(dsn, f"INSERT INTO {schema}.shifts VALUES ('24:00', 1), ('08:30', 2)")
        native = _native_read(dsn, schema, "fees", reader="adbc").sort_by("id")
        connector = _pg_connector(dsn, schema)
        through_url = _read(connector, table="fees", cursor=None, batch_rows=100).sort_by("id")
        described = {c.name: c.arrow_type for c in connector.table_info("fees").columns}
        keys = pa.Table.from_batches(list(connector.read_keys(StreamSpec(table="shifts", primary_key=("id",)),
                                                              ordered=True)))
    assert through_url.to_pylist() == native.to_pylist()
    published = {f.name: f.type for f in native.schema if f.name != "id"}
    assert {f.name: f.type for f in through_url.schema if f.name != "id"} == published
    assert {name: kind for name, kind in described.items() if name != "id"} == published
    first, second, _ = through_url.to_pylist()
    assert (first["fee"], first["code"], first["ages"], first["span"]) == \
        (Decimal("12.34"), "ab", "[1,5)", "1 day 02:00:00")
    assert (second["fee"], second["span"]) == (Decimal("-1234.5"), "-02:55:00")
    assert keys.column("id").to_pylist() == [time(8, 30), None]  # ordered: 24:00 is the day's last
    assert "id=24:00:00: 超出一天的时间范围" in keys.column(ROW_PROBLEM_COLUMN)[1].as_py()


def test_a_year_bc_is_quarantined_in_postgresqls_own_text_on_every_path() -> None:
    """A year BC was quarantined as numpy wrote it by the PostgreSQL connector's reads ('-043-03-15' for 44 BC,
    '0000-01-01' for 1 BC, timestamps with a 'T'), as PostgreSQL's text in an array ('0044-03-15 BC') and through
    a SQLAlchemy URL ('0001-01-01 BC'): the provider saw three spellings, none of them the source's for the
    scalars. Every path now gives PostgreSQL's own text (the session here in UTC, as the hub reads instants)."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.dated (id int PRIMARY KEY, day date, at timestamp, "
                        "checked timestamptz, days date[])")
        pg_execute(dsn, f"""INSERT INTO {schema}.dated VALUES
            (1, '0044-03-15 BC', '0044-03-15 12:00:00.5 BC', '0001-01-01 00:00+00 BC', NULL),
            (2, '0001-01-01 BC', '10000-01-01 00:00', '10000-01-01 08:00+00', '{{0044-03-15 BC,2026-01-01}}'),
            (3, '2026-01-01', '2026-01-01', NULL, NULL)""")
        paths = {"scan": _native_read(dsn, schema, "dated"), "adbc": _native_read(dsn, schema, "dated", reader="adbc"),
                 "url": _read(_pg_connector(dsn, schema), table="dated", cursor=None, batch_rows=100)}
    flagged = {name: [(json.loads(r[ROW_RAW_COLUMN]), r[ROW_PROBLEM_COLUMN]) for r in table.sort_by("id").to_pylist()
                      if r[ROW_PROBLEM_COLUMN]] for name, table in paths.items()}
    assert flagged["scan"] == flagged["adbc"] == flagged["url"]
    first, second = flagged["scan"]
    assert first[0] == {"day": "0044-03-15 BC", "at": "0044-03-15 12:00:00.5 BC", "checked": "0001-01-01 00:00:00+00 BC"}
    assert second[0]["day"] == "0001-01-01 BC" and second[0]["at"] == "10000-01-01 00:00:00"
    assert "day=0044-03-15 BC: 超出日期范围" in first[1]


def test_timestamptz_through_a_url_is_published_as_the_postgresql_connector_does_in_any_session_zone(
        pg_database: str) -> None:
    """A database whose TimeZone is Asia/Shanghai (ALTER DATABASE ... SET TimeZone, as many agencies' are): the
    SQLAlchemy URL path wrote a timestamptz it publishes as text in that zone ('10000-01-01 16:00:00+08') where
    the PostgreSQL connector writes it in UTC. Both connectors' output on one table must be the same."""
    pg_execute(pg_database, "SELECT 1")
    with closing(psycopg2.connect(pg_database)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE \"{pg_database.rpartition('/')[2]}\" SET TimeZone = 'Asia/Shanghai'")
    with pg_scratch_schema(pg_database) as schema:
        pg_execute(pg_database, f"CREATE TABLE {schema}.checks (id int PRIMARY KEY, checked timestamptz, "
                                "moments timestamptz[], during tstzrange)")
        pg_execute(pg_database, f"""INSERT INTO {schema}.checks VALUES
            (1, '2026-03-01 08:00:00.5+08', ARRAY['2026-03-01 08:00+08'::timestamptz, NULL],
             '[2026-03-01 08:00+08,2026-03-02 08:00+08)'),
            (2, '10000-01-01 08:00+00', NULL, NULL),
            (3, '0001-01-01 00:00+00 BC', NULL, '(,)'),
            (4, 'infinity', '{{}}', 'empty')""")
        paths = {"scan": _native_read(pg_database, schema, "checks"),
                 "adbc": _native_read(pg_database, schema, "checks", reader="adbc"),
                 "url": _read(_pg_connector(pg_database, schema), table="checks", cursor=None, batch_rows=100)}
    rows = {name: table.sort_by("id").to_pylist() for name, table in paths.items()}
    assert rows["url"] == rows["adbc"] == rows["scan"]
    assert {f.name: f.type for f in paths["url"].schema if f.name != "id"} == \
        {f.name: f.type for f in paths["adbc"].schema if f.name != "id"}
    first, second, third, _ = rows["url"]
    assert first["checked"] == datetime(2026, 3, 1, 0, 0, 0, 500000, tzinfo=timezone.utc)
    assert json.loads(second[ROW_RAW_COLUMN]) == {"checked": "10000-01-01 08:00:00+00"}
    assert json.loads(third[ROW_RAW_COLUMN]) == {"checked": "0001-01-01 00:00:00+00 BC"}
