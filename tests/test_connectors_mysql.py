"""The mysql connector against a real MariaDB: a scratch database and a password-protected scratch user."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from connectors.base import ROW_PROBLEM_COLUMN, ReadState, StreamSpec
from connectors.mysql import MySQLConnector
from core.errors import ConfigError, RetriableError
from tests.services import require_mysql

SHANGHAI = ZoneInfo("Asia/Shanghai")
TABLE = """CREATE TABLE people (
    id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, capital DECIMAL(18,2), wide DECIMAL(50,6),
    born DATE, updated_at DATETIME(6) NOT NULL, seen_at TIMESTAMP(6) NULL DEFAULT NULL, note TEXT,
    level TINYINT UNSIGNED, span TIME, KEY (updated_at)) DEFAULT CHARSET=utf8mb4"""
ROWS = [
    (1, "上海市浦东新区张江高科技园区", "12345678901234.56", "12345678901234567890123456789012345678.123456",
     "1990-01-31", "2026-01-02 08:00:00.123456", "2026-01-02 00:00:00.123456", "备注：中文", 3, "01:02:03"),
    (2, "李雷", "-0.01", None, None, "2026-01-03 09:30:00", None, None, None, None),
    (3, "韩梅梅", "0.00", "0.000001", "2000-02-29", "2026-01-04 23:59:59.999999", "2026-01-04 15:59:59", "", 255,
     "-838:59:59"),
]


def _root(**kwargs: object):  # noqa: ANN202
    import pymysql

    return pymysql.connect(**{**require_mysql(), **kwargs}, charset="utf8mb4", autocommit=True)


@pytest.fixture
def scratch() -> Iterator[dict]:
    """A scratch database with the people table, and a SELECT-only user with a password."""
    require_mysql()
    database, user, password = f"gs_t_{uuid.uuid4().hex[:10]}", f"gs_u_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    with closing(_root()) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'")
        cursor.execute(f"USE `{database}`")
        cursor.execute(TABLE)
        cursor.executemany("INSERT INTO people VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", ROWS)
    kwargs = require_mysql()
    config = {"host": kwargs["host"], "port": kwargs["port"], "database": database, "user": user,
              "datetime_timezone": "Asia/Shanghai"}
    try:
        yield {"config": config, "secret": {"password": password}, "database": database, "user": user,
               "password": password}
    finally:
        with closing(_root()) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def _connector(scratch: dict, **config: object) -> MySQLConnector:
    return MySQLConnector(name="人社库", config={**scratch["config"], **config}, secret=scratch["secret"])


def _read(connector: MySQLConnector, *, batch_rows: int = 2, cursor: str | None = "updated_at",
          since: str | None = None, table: str = "people") -> list[pa.RecordBatch]:
    stream = StreamSpec(table=table, primary_key=("id",), cursor_column=cursor, batch_rows=batch_rows)
    return list(connector.read(stream, ReadState(cursor_value=since)))


def test_check_ok_and_table(scratch: dict) -> None:
    connector = _connector(scratch)
    connector.check()
    connector.check(StreamSpec(table="people"))
    connector.check(StreamSpec(query="SELECT id, name FROM people WHERE id > 1"))


@pytest.mark.parametrize("problem", ["password", "port", "table", "database"])
def test_check_failures_are_one_line_naming_the_source_without_the_secret(scratch: dict, problem: str) -> None:
    secret = dict(scratch["secret"])
    config = dict(scratch["config"])
    stream = StreamSpec(table="people")
    expected: type[Exception] = ConfigError
    if problem == "password":
        secret["password"] = "wrong-" + secret["password"]
    elif problem == "port":
        config["port"], expected = 1, RetriableError  # nothing listens there: transient from the hub's view
    elif problem == "table":
        stream = StreamSpec(table="no_such_table")
    else:
        config["database"] = "gs_no_such_db"
    connector = MySQLConnector(name="人社库", config=config, secret=secret)
    with pytest.raises(expected) as caught:
        connector.check(stream)
    message = str(caught.value)
    assert "'人社库'" in message and "\n" not in message
    assert scratch["password"] not in message and secret["password"] not in message
    assert scratch["password"] not in repr(connector)


def test_discover_types_and_primary_key(scratch: dict) -> None:
    [table] = _connector(scratch).discover()
    assert table.name == "people" and table.primary_key == ["id"]
    types = {c.name: c.arrow_type for c in table.columns}
    assert types == {
        "id": pa.int64(), "name": pa.string(), "capital": pa.decimal128(18, 2), "wide": pa.decimal256(50, 6),
        "born": pa.date32(), "updated_at": pa.timestamp("us", tz="Asia/Shanghai"),
        "seen_at": pa.timestamp("us", tz="UTC"), "note": pa.string(), "level": pa.uint8(), "span": pa.duration("us"),
    }
    assert {c.name: c.nullable for c in table.columns}["id"] is False


def test_read_exact_values_in_bounded_batches(scratch: dict) -> None:
    batches = _read(_connector(scratch), batch_rows=2)
    assert [b.num_rows for b in batches] == [2, 1]
    table = pa.Table.from_batches(batches)
    assert ROW_PROBLEM_COLUMN not in table.column_names
    assert table.schema.field("capital").type == pa.decimal128(18, 2)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3]  # ordered by the cursor
    first, second, third = rows
    assert first["name"] == "上海市浦东新区张江高科技园区" and first["note"] == "备注：中文"
    assert first["capital"] == Decimal("12345678901234.56") and second["capital"] == Decimal("-0.01")
    assert first["wide"] == Decimal("12345678901234567890123456789012345678.123456")
    assert first["born"] == date(1990, 1, 31) and third["born"] == date(2000, 2, 29)
    # DATETIME is wall-clock time in the declared zone; TIMESTAMP is an instant (read in a UTC session)
    assert first["updated_at"] == datetime(2026, 1, 2, 8, 0, 0, 123456, tzinfo=SHANGHAI)
    assert first["updated_at"] == datetime(2026, 1, 2, 0, 0, 0, 123456, tzinfo=timezone.utc)
    assert first["seen_at"] == datetime(2026, 1, 2, 0, 0, 0, 123456, tzinfo=timezone.utc)
    assert first["level"] == 3 and third["level"] == 255
    assert first["span"] == timedelta(hours=1, minutes=2, seconds=3)
    assert third["span"] == -timedelta(hours=838, minutes=59, seconds=59)
    assert second["born"] is None and second["seen_at"] is None and second["note"] is None
    assert third["note"] == ""


def test_datetime_without_declared_zone_stays_wall_clock(scratch: dict) -> None:
    connector = _connector(scratch, datetime_timezone=None)
    table = pa.Table.from_batches(_read(connector))
    assert table.schema.field("updated_at").type == pa.timestamp("us")
    assert table.column("updated_at")[0].as_py() == datetime(2026, 1, 2, 8, 0, 0, 123456)


def test_incremental_reads_cursor_ge_saved_value(scratch: dict) -> None:
    connector = _connector(scratch)
    # the pipeline saves str() of the batch maximum: an aware timestamp with its offset
    saved = str(datetime(2026, 1, 3, 9, 30, tzinfo=SHANGHAI))
    table = pa.Table.from_batches(_read(connector, since=saved))
    assert table.column("id").to_pylist() == [2, 3]  # the tie (id 2) is read again
    saved_utc = str(datetime(2026, 1, 4, 15, 59, 59, tzinfo=timezone.utc))
    # row 2 has no seen_at: without a cursor value it is read every time
    assert pa.Table.from_batches(_read(connector, cursor="seen_at", since=saved_utc)).column("id").to_pylist() == [2, 3]
    assert _read(connector, since="2027-01-01 00:00:00")[0].num_rows == 0  # schema-only batch


def test_zero_date_is_a_flagged_row_not_a_crash(scratch: dict) -> None:
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")
        cursor.execute("INSERT INTO people (id, name, born, updated_at) VALUES (4, '王五', '0000-00-00', NOW())")
    table = pa.Table.from_batches(_read(_connector(scratch), batch_rows=10))
    flags = dict(zip(table.column("id").to_pylist(), table.column(ROW_PROBLEM_COLUMN).to_pylist()))
    assert flags[1] is None and flags[2] is None and flags[3] is None
    assert "born" in flags[4] and "0000-00-00" in flags[4]


def test_time_values_are_delivered_as_mysql_shows_them(hub_home, scratch: dict, tmp_path) -> None:  # noqa: ANN001
    """A TIME column is published as a duration (it may be negative or above 24 hours). Where a value goes out as
    text it is MySQL's own form: the interface's JSON (it failed: a duration has no JSON form, every lookup of
    such a resource was an internal error), CSV (a count of microseconds before) and Excel; `verify` reads the
    CSV back."""
    import csv

    import requests
    from openpyxl import load_workbook
    from typer.testing import CliRunner

    from cli.main import app
    from pipeline.sync import sync_resource
    from tests.helpers import bearer, latest, read_version, register_resource, running_api

    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("ALTER TABLE people MODIFY span TIME(3)")
        cursor.execute("UPDATE people SET span = '838:59:59.999' WHERE id = 2")
    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="people",
                            subscribe=True, columns=["id", "name", "span", "updated_at"])
    sync_resource(resource_code=hub.resource_code)
    published = dict(zip(*read_version(latest(hub.resource_code)).select(["id", "span"]).to_pydict().values()))
    assert published == {1: timedelta(hours=1, minutes=2, seconds=3), 2: timedelta(hours=838, minutes=59,
                         seconds=59, milliseconds=999), 3: -timedelta(hours=838, minutes=59, seconds=59)}
    shown = {1: "01:02:03", 2: "838:59:59.999", 3: "-838:59:59"}

    with running_api() as api:
        for key, text in shown.items():
            answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/lookup",
                                  params={"column": "id", "value": str(key)}, headers=bearer(hub.token), timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["records"][0]["span"] == text
            page = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/records",  # filtered by it
                                params={"where": f"span:{text}"}, headers=bearer(hub.token), timeout=10)
            assert page.status_code == 200 and [r["id"] for r in page.json()["records"]] == [key], page.text
        excel = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                             params={"format": "xlsx"}, headers=bearer(hub.token), timeout=30)
        assert excel.status_code == 200, excel.text
        (tmp_path / "people.xlsx").write_bytes(excel.content)
        sheet = load_workbook(tmp_path / "people.xlsx", read_only=True).worksheets[0]
        header, *cells = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert {int(r[header.index("id")]): r[header.index("span")] for r in cells} == shown

    runner = CliRunner()
    out = tmp_path / "people.csv"
    done = runner.invoke(app, ["export", hub.resource_code, "--format", "csv", "--out", str(out)])
    assert done.exit_code == 0, done.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert {int(r["id"]): r["span"] for r in csv.DictReader(handle)} == shown
    # the CSV reads back to the published values (its DECIMAL(50,6) column too)
    checked = runner.invoke(app, ["verify", hub.resource_code, str(out), "--version", "1"])
    assert checked.exit_code == 0 and "match" in checked.output, checked.output


def test_spatial_columns_are_read_as_wkt_text(scratch: dict) -> None:
    """A GEOMETRY or POINT column arrives from the driver as MySQL's internal bytes (published before as their
    Python repr); it is read as WKT, as the catalogue's text type says."""
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE places (id INT PRIMARY KEY, at POINT, area GEOMETRY, `名称` VARCHAR(8))")
        cursor.execute("INSERT INTO places VALUES (1, POINT(121.5, 31.2), "
                       "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), '浦东'), (2, NULL, NULL, NULL)")
    connector = _connector(scratch)
    stream = StreamSpec(table="places", primary_key=["id"], batch_rows=10)
    assert connector.stream_schema(stream).field("at").type == pa.string()
    rows = pa.Table.from_batches(list(connector.read(stream, ReadState()))).to_pylist()
    assert [(r["at"], r["area"], r["名称"]) for r in rows] == [
        ("POINT(121.5 31.2)", "POLYGON((0 0,1 0,1 1,0 0))", "浦东"), (None, None, None)]


def test_query_stream_types_from_field_descriptors(scratch: dict) -> None:
    stream = StreamSpec(query="SELECT id, capital, wide, name, updated_at, level FROM people", batch_rows=10)
    [batch] = list(_connector(scratch).read(stream, ReadState()))
    assert batch.schema.field("capital").type == pa.decimal128(18, 2)
    assert batch.schema.field("wide").type == pa.decimal256(50, 6)
    assert batch.schema.field("level").type == pa.uint8()
    assert batch.schema.field("updated_at").type == pa.timestamp("us", tz="Asia/Shanghai")
    assert batch.column("capital").to_pylist()[0] == Decimal("12345678901234.56")


def test_bit_columns_are_read_as_their_binary_digits(scratch: dict) -> None:
    """BIT(1) flags and BIT(n) masks arrived as the driver's bytes (published as b'\\x01'); they are text of n
    binary digits, as PostgreSQL's bit(n) values are published, in table and query streams alike."""
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("ALTER TABLE people ADD COLUMN active BIT(1), ADD COLUMN mask BIT(10)")
        cursor.execute("UPDATE people SET active = b'1', mask = b'1010101010' WHERE id = 1")
        cursor.execute("UPDATE people SET active = b'0', mask = b'1' WHERE id = 2")
    expected = {1: ("1", "1010101010"), 2: ("0", "0000000001"), 3: (None, None)}
    table = pa.Table.from_batches(_read(_connector(scratch), batch_rows=10))
    assert table.schema.field("active").type == table.schema.field("mask").type == pa.string()
    rows = table.select(["id", "active", "mask"]).to_pylist()
    assert {r["id"]: (r["active"], r["mask"]) for r in rows} == expected
    stream = StreamSpec(query="SELECT id, active, mask FROM people", batch_rows=10)
    [batch] = list(_connector(scratch).read(stream, ReadState()))
    assert {r["id"]: (r["active"], r["mask"]) for r in batch.to_pylist()} == expected


def test_connection_dropped_mid_read_is_retriable(scratch: dict) -> None:
    with closing(_root()) as conn, conn.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON *.* TO '{scratch['user']}'@'%'")  # the sequence engine's virtual tables
    # far more rows than socket buffers hold, so the server is still sending when its connection is killed
    query = "SELECT seq AS id, REPEAT('数据', 200) AS filler FROM seq_1_to_2000000"
    reader = _connector(scratch).read(StreamSpec(query=query, batch_rows=1000), ReadState())
    assert next(reader).num_rows == 1000
    with closing(_root()) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND INFO LIKE %s",
                       (scratch["user"], "%seq_1_to_2000000%"))
        [(process,)] = cursor.fetchall()
        cursor.execute(f"KILL CONNECTION {int(process)}")
    with pytest.raises(RetriableError) as caught:
        for _ in reader:
            pass
    assert "'人社库'" in str(caught.value) and scratch["password"] not in str(caught.value)


def test_registered_source_keeps_the_password_encrypted(hub_home, scratch: dict) -> None:  # noqa: ANN001
    from sqlalchemy import text

    from registry.db import session_scope
    from registry.catalog.sources import add_source, get_source, open_connector
    from tests.helpers import PROVIDER, ensure_agency

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        add_source(session, name="mysql-src", agency=PROVIDER[0], kind="mysql", config=scratch["config"],
                   secret={"password": scratch["password"]}, actor="test")
    with session_scope() as session:
        for table in ("sources", "audit_events"):
            dumped = " ".join(str(row) for row in session.execute(text(f"SELECT * FROM {table}")))
            assert scratch["password"] not in dumped
        connector = open_connector(get_source(session, name="mysql-src"))
    assert isinstance(connector, MySQLConnector)
    table = pa.Table.from_batches(_read(connector, batch_rows=100))
    assert table.column("capital").to_pylist()[0] == Decimal("12345678901234.56")


def test_credentials_from_an_airflow_connection(scratch: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import quote

    c = scratch["config"]
    uri = f"mysql://{c['user']}:{quote(scratch['password'], safe='')}@{c['host']}:{c['port']}/{c['database']}"
    monkeypatch.setenv("AIRFLOW_CONN_GS_MYSQL_TEST", uri)
    connector = MySQLConnector(name="人社库", config={"airflow_conn_id": "gs_mysql_test",
                                                      "datetime_timezone": "Asia/Shanghai"})
    assert "Airflow connection gs_mysql_test" in connector.describe()
    assert pa.Table.from_batches(_read(connector)).num_rows == 3
    missing = MySQLConnector(name="人社库", config={"airflow_conn_id": "gs_not_defined"})
    with pytest.raises(ConfigError, match="gs_not_defined"):
        missing.check()


def test_bigint_unsigned_keys_beyond_int64_update_and_delete_exactly(hub_home, scratch: dict) -> None:  # noqa: ANN001
    """A BIGINT UNSIGNED key from 2**63 up: an incremental run published its update as a second row and missed
    its delete (the sorted key files held such keys as negative int64s). Each run equals the source."""
    from pipeline.sync import sync_resource
    from tests.helpers import latest, read_version, register_resource

    top, middle = 2**64 - 1, 2**63
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE ids (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(8), upd DATETIME NOT NULL)")
        cursor.executemany("INSERT INTO ids VALUES (%s, %s, %s)", [(1, "a", "2026-01-01"), (middle, "b", "2026-01-01"),
                                                                   (top, "c", "2026-01-02")])
    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="ids", key=("id",),
                            cursor="upd")

    def published() -> dict[int, str]:
        rows = read_version(latest(hub.resource_code)).select(["id", "v"]).to_pylist()
        assert len(rows) == len({r["id"] for r in rows}), rows
        return {r["id"]: r["v"] for r in rows}

    sync_resource(resource_code=hub.resource_code)
    assert published() == {1: "a", middle: "b", top: "c"}
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE ids SET v = 'c2', upd = '2026-01-03' WHERE id = %s", (top,))
        cursor.execute("DELETE FROM ids WHERE id = %s", (middle,))
        cursor.execute("INSERT INTO ids VALUES (5, 'e', '2026-01-03')")
    report = sync_resource(resource_code=hub.resource_code)
    assert report.mode == "incremental"
    assert published() == {1: "a", 5: "e", top: "c2"}


def test_a_percent_sign_in_a_column_or_query_reads_incrementally(scratch: dict) -> None:
    """`占比%` (a share in percent) or a query with LIKE '%公司': the driver %-formats a statement with a
    parameter, and every incremental read failed as an internal error ("unsupported format character")."""
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE shares (id INT PRIMARY KEY, `占比%` DECIMAL(5,2), name VARCHAR(20), "
                       "updated_at DATETIME NOT NULL) DEFAULT CHARSET=utf8mb4")
        cursor.execute("INSERT INTO shares VALUES (1, 12.50, '甲公司', '2026-01-01'), (2, 50, '乙', '2026-01-02')")
    connector = _connector(scratch)
    rows = [r for b in _read(connector, table="shares", since="2026-01-01 12:00:00") for r in b.to_pylist()]
    assert rows == [{"id": 2, "占比%": Decimal("50.00"), "name": "乙",
                     "updated_at": datetime(2026, 1, 2, tzinfo=SHANGHAI)}]
    stream = StreamSpec(query="SELECT id, `占比%` AS pct FROM shares WHERE name LIKE '%公司'", primary_key=("id",))
    assert [r for b in connector.read(stream, ReadState()) for r in b.to_pylist()] == [{"id": 1,
                                                                                     "pct": Decimal("12.50")}]
    stream = StreamSpec(query="SELECT id, `占比%` AS pct, updated_at FROM shares WHERE name LIKE '%公司'",
                        primary_key=("id",), cursor_column="updated_at")
    assert [r["id"] for b in connector.read(stream, ReadState("2026-01-01 00:00:00")) for r in b.to_pylist()] == [1]
