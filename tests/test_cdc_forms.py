"""Change capture (变更捕获) publishes every scalar value in the form a full read of the same table publishes
(connectors/postgres_forms.py), against a private PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

Before, the capture's snapshot and changes kept char(n)'s blank padding ('ab  ' where a full read publishes 'ab',
so the same key had two forms), wrote intervals in ISO 8601 ('P1D', 'PT-3H' where it publishes '1 day',
'-03:00:00'), quarantined every row with a money value ('$1,234.56' is no decimal) and published a time of day
as text where it publishes time64. A resource whose versions were captured in the old forms takes a snapshot on
its next run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import latest, pg_execute, pg_source_config, read_version, register_resource
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import register

# Read by the full read through the driver (ADBC): interval, json, money and the rest are not the scanner's.
MIXED = """CREATE TABLE mixed (code char(4) PRIMARY KEY, label char(6), span interval, amount numeric(10,2),
    ratio numeric, at timestamptz, stamp timestamp, clock time, zoned timetz, day date, doc json, docb jsonb,
    raw bytea, uid uuid, flag boolean, price money, r real, d double precision, n int)"""
MIXED_ROWS = """INSERT INTO mixed VALUES
    ('ab', 'x', '1 day', 12.5, 1.50, '2026-03-01 08:00+08', '2026-03-01 08:00:00.25', '08:00:01.5', '08:00+08',
     '2026-03-01', '{"a": [1, 2],  "b": "统一"}', '{"b": 1, "a": [1, 2]}', '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     true, 1234.56, 0.1, 0.1, 1),
    ('abcd', '全称  ', '1 year 2 mons', -0.01, 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false,
     -1.5, -1e-10, 1e300, 2),
    ('c', NULL, '-3 hours', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, 3),
    ('d  ', ' y', '00:00:01.5', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, 4)"""
MIXED_CHANGES = (
    "UPDATE mixed SET label = 'z', n = 10 WHERE code = 'ab'",
    "UPDATE mixed SET span = span + interval '1 min', n = 20 WHERE code = 'c'",
    "UPDATE mixed SET n = 30 WHERE code = 'abcd'",
    "INSERT INTO mixed VALUES ('e', 'e', '2 days 03:04:05.678', 7.25, 0.000, '2026-06-01 12:00+08', "
    "'2026-06-01 12:00', '23:59:59.999999', '12:00-03:30', '2026-06-01', '[]', '{}', '\\x', "
    "'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 0, 1.5, 2.5, 5)",
    "UPDATE mixed SET code = 'f' WHERE code = 'd'",
)
# Read through DuckDB's postgres scanner by the full read (every column a type it reads faithfully).
PLAIN = "CREATE TABLE plain (code char(4) PRIMARY KEY, label char(6), name text, n int)"
PLAIN_ROWS = "INSERT INTO plain VALUES ('ab', 'x', 'a', 1), ('abcd', '全称  ', 'b', 2), ('c', NULL, NULL, 3)"
PLAIN_CHANGES = ("UPDATE plain SET label = 'y', n = 10 WHERE code = 'ab'",
                 "INSERT INTO plain VALUES ('d', ' d', 'd', 4)",
                 "UPDATE plain SET code = 'e' WHERE code = 'c'")


# The types whose captured text had not been compared with a full read: money at its extremes, a timetz of
# 24:00 (a time of day of 24:00 is quarantined on both paths: test_a_time_of_24_00_is_quarantined_as_the_full_read_does), every range type (empty, unbounded, each kind of bound), network addresses (IPv6 with a prefix), xml
# and bit strings with leading zeros. tstzrange's text follows the session's TimeZone: the source database gets
# one of its own (set below), which the full read's sessions take and the capture's replication session did not.
OTHER = """CREATE TABLE other (code text PRIMARY KEY, price money, clock time, zoned timetz, r4 int4range,
    r8 int8range, rn numrange, rd daterange, rts tsrange, rtz tstzrange, ip inet, net cidr, mac macaddr, doc xml,
    flags bit(8), vflags varbit, n int)"""
OTHER_ROWS = """INSERT INTO other VALUES
    ('a', '-92233720368547758.08', '23:59:59.999999', '24:00:00+00', 'empty', '[-9223372036854775808,9223372036854775807)',
     '(,)', '[2026-01-01,)', '[2026-03-01 08:00, 2026-03-01 09:00:00.5]', '[2026-03-01 08:00+08,infinity)',
     '2001:db8::1/64', '2001:db8::/32', '08:00:2b:01:02:03', '<a x="1">统一 &amp; 共享</a>', B'00000001', B'0', 1),
    ('b', '92233720368547758.07', '00:00:00', '00:00:00-15:59', '(1,5]', '[-1,1]', '[1.50,2.5]',
     '(2026-01-01,2026-02-01]', '(,2026-03-01 08:00)', '(2026-03-01 08:00+08,2026-03-02 00:00-03:30]',
     '10.0.0.1', '10.0.0.0/8', 'ff:ff:ff:ff:ff:ff', 'text only', B'10000000', B'', 2),
    ('c', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3)"""
OTHER_CHANGES = (
    "UPDATE other SET clock = '00:00:00.000001', zoned = '24:00-03', rtz = '[2026-07-01 00:00+08,2026-07-02 00:00+08)', n = 10 "
    "WHERE code = 'b'",
    "UPDATE other SET price = '-0.01', n = 30 WHERE code = 'a'",
    "INSERT INTO other VALUES ('d', '1234567.89', '23:59:59.999999', '23:59:59.999999+15:59', '[0,0]', 'empty', "
    "'(-0.5,)', '[,2026-01-01]', '[-infinity,infinity]', '(,)', '::ffff:10.0.0.1/128', '::/0', '00:00:00:00:00:00', "
    "'<?xml version=\"1.0\"?><doc/>', B'00000000', B'0000101', 4)",
)


@pytest.fixture
def dsn(pg_logical_database: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_CDC_SLOT_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    reset_settings()
    return pg_logical_database


def _published(code: str) -> tuple[object, list[dict]]:
    """The latest version's schema and rows; a time of day as its stored microseconds, since Python's time
    shows 24:00:00 (86,400,000,000) as 00:00 and would hide the one becoming the other."""
    table = read_version(latest(code), sort_by="code")
    rows = table.select([i for i, f in enumerate(table.schema) if not pa.types.is_time(f.type)]).to_pylist()
    for field in table.schema:
        if pa.types.is_time(field.type):
            for row, micros in zip(rows, table.column(field.name).cast(pa.int64()).to_pylist()):
                row[field.name] = micros
    return table.schema, rows


def _full_read(dsn: str, table: str) -> tuple[object, list[dict]]:
    """What a fresh full read of the table publishes: a resource of its own, read once."""
    from pipeline.sync import sync_resource

    config, secret = pg_source_config(dsn)
    code = register_resource(kind="postgresql", config=config, secret=secret, table=table, key=("code",),
                             cursor=None, classification="101009", name=f"对照 {uuid.uuid4().hex[:4]}").resource_code
    assert sync_resource(resource_code=code).mode == "full"
    return _published(code)


def _quarantined(code: str) -> list[tuple[str, str, str]]:
    """The open quarantine records of a resource: (key, rule, reason)."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.quality.models import QuarantineRecord

    with session_scope() as session:
        resource = get_resource(session, code=code)
        return [(r.key, r.rule, r.reason) for r in session.query(QuarantineRecord).filter_by(
            resource_id=resource.id, status="open")]


def _assert_same(captured: tuple, full: tuple) -> None:
    (captured_schema, captured_rows), (full_schema, full_rows) = captured, full
    assert [(f.name, f.type) for f in captured_schema] == [(f.name, f.type) for f in full_schema]
    assert [row["code"] for row in captured_rows] == [row["code"] for row in full_rows]
    for mine, theirs in zip(captured_rows, full_rows):
        differing = {k: (mine[k], theirs[k]) for k in theirs if mine[k] != theirs[k]}
        assert not differing, f"row {theirs['code']!r}: (captured, full read) {differing}"


@pytest.mark.parametrize("table, ddl, rows, changes", [
    ("mixed", MIXED, MIXED_ROWS, MIXED_CHANGES), ("plain", PLAIN, PLAIN_ROWS, PLAIN_CHANGES),
    ("other", OTHER, OTHER_ROWS, OTHER_CHANGES)])
def test_captured_values_are_published_as_the_full_read_publishes_them(dsn: str, table: str, ddl: str, rows: str,
                                                                      changes: tuple[str, ...]) -> None:
    from pipeline.cdc import sync_cdc

    database = dsn.rpartition("/")[2]  # a zone of the source's own, not UTC: tstzrange's text follows it
    pg_execute(dsn, f'ALTER DATABASE "{database}" SET TimeZone = \'Asia/Shanghai\'')
    pg_execute(dsn, ddl)
    pg_execute(dsn, rows)
    code = register(dsn, table=table, key=("code",))
    snapshot = sync_cdc(resource_code=code)
    assert snapshot.mode == "cdc-snapshot" and snapshot.rows_quarantined == 0, _quarantined(code)
    _assert_same(_published(code), _full_read(dsn, table))

    for statement in changes:
        pg_execute(dsn, statement)
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.version is not None
    assert report.rows_quarantined == 0, _quarantined(code)
    _assert_same(_published(code), _full_read(dsn, table))
    keys = [row["code"] for row in _published(code)[1]]
    assert len(keys) == len(set(keys)) and ("ab" in keys or table == "other"), keys  # char(n) keys unpadded


def _old_state(code: str, forms: str = "__cdc_lsn") -> None:
    """The cursor state as the capture wrote it before its forms were numbered (or with an older number)."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.models import CursorState

    with session_scope() as session:
        state = session.get(CursorState, get_resource(session, code=code).id)
        assert state.cursor_column.startswith("__cdc_lsn/forms=")
        state.cursor_column = forms


def test_a_resource_captured_in_the_old_forms_takes_a_snapshot_once(dsn: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions captured before hold char(n) padded: the next run republishes every row by a snapshot, whatever
    changed meanwhile, and goes back to changes after it (also when that snapshot found nothing to publish)."""
    import connectors.postgres_forms
    from pipeline.cdc import sync_cdc

    pg_execute(dsn, PLAIN)
    pg_execute(dsn, PLAIN_ROWS)
    code = register(dsn, table="plain", key=("code",))
    with monkeypatch.context() as old:  # published as before: padding kept
        old.setattr(connectors.postgres_forms.ScalarForms, "batch", lambda self, batch: batch)
        assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    assert sorted(row["code"] for row in _published(code)[1]) == ["ab  ", "abcd", "c   "]
    _old_state(code)

    pg_execute(dsn, PLAIN_CHANGES[0])
    upgraded = sync_cdc(resource_code=code)
    assert upgraded.mode == "cdc-snapshot" and upgraded.version == 2, upgraded
    assert "forms 1" in upgraded.note
    changes = latest(code).manifest["changes"]  # a padded key's row is republished under the unpadded key
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (2, 1, 2), changes
    _assert_same(_published(code), _full_read(dsn, table="plain"))

    pg_execute(dsn, PLAIN_CHANGES[1])
    after = sync_cdc(resource_code=code)
    assert after.mode == "cdc" and after.version == 3 and after.upserts == 1
    _assert_same(_published(code), _full_read(dsn, table="plain"))

    _old_state(code)  # the versions hold the forms already: the snapshot publishes nothing, the state moves on
    again = sync_cdc(resource_code=code)
    assert again.mode == "cdc-snapshot" and again.version is None
    quiet = sync_cdc(resource_code=code)
    assert quiet.mode == "cdc" and quiet.version is None, "one snapshot, not one every run"


def test_ranges_of_dates_and_times_publish_iso_dates_whatever_the_sources_datestyle(dsn: str) -> None:
    """A range's text is published as written, and its dates follow the session's DateStyle ('[01/03/2026,)'
    under 'SQL, DMY'); the capture was refused while the source wrote dates otherwise than ISO, because the full
    read took the source's style. Every read now writes ISO dates: the capture goes ahead and publishes what the
    full read does."""
    from pipeline.cdc import sync_cdc

    database = dsn.rpartition("/")[2]
    pg_execute(dsn, f"ALTER DATABASE \"{database}\" SET DateStyle = 'SQL, DMY'")
    pg_execute(dsn, "CREATE TABLE dated (code text PRIMARY KEY, rd daterange, rts tsrange, n int)")
    pg_execute(dsn, "INSERT INTO dated VALUES ('a', '[2026-03-01,2026-04-01)', '[2026-03-01 08:00,)', 1)")
    code = register(dsn, table="dated", key=("code",))
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    _assert_same(_published(code), _full_read(dsn, "dated"))
    assert _published(code)[1][0]["rd"] == "[2026-03-01,2026-04-01)"
    pg_execute(dsn, "UPDATE dated SET rd = '(,2026-05-01]', n = 2 WHERE code = 'a'")
    assert sync_cdc(resource_code=code).mode == "cdc"
    _assert_same(_published(code), _full_read(dsn, "dated"))


def test_a_resource_captured_in_forms_2_republishes_its_ranges_in_the_full_reads_zone(
        dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions captured in forms 2 hold tstzrange written in UTC where a full read writes the source's zone: the
    next run takes a snapshot that republishes those rows, then goes back to changes."""
    import connectors.postgres_forms
    from pipeline.cdc import sync_cdc

    database = dsn.rpartition("/")[2]
    pg_execute(dsn, f"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Shanghai'")
    pg_execute(dsn, "CREATE TABLE spans (code text PRIMARY KEY, rtz tstzrange, n int)")
    pg_execute(dsn, "INSERT INTO spans VALUES ('a', '[2026-03-01 08:00+08,)', 1), ('b', NULL, 2)")
    code = register(dsn, table="spans", key=("code",))
    with monkeypatch.context() as old:  # captured as before: the sessions in UTC
        old.setattr(connectors.postgres_forms.ScalarForms, "options", connectors.postgres_forms.SESSION_OPTIONS)
        assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    assert _published(code)[1][0]["rtz"] == '["2026-03-01 00:00:00+00",)'
    _old_state(code, forms="__cdc_lsn/forms=2")

    upgraded = sync_cdc(resource_code=code)
    assert upgraded.mode == "cdc-snapshot" and upgraded.version == 2 and "forms 2" in upgraded.note, upgraded
    _assert_same(_published(code), _full_read(dsn, "spans"))
    pg_execute(dsn, "UPDATE spans SET n = 3 WHERE code = 'b'")
    after = sync_cdc(resource_code=code)
    assert after.mode == "cdc" and after.version == 3
    _assert_same(_published(code), _full_read(dsn, "spans"))


def test_a_time_of_24_00_is_quarantined_as_the_full_read_does(dsn: str) -> None:
    """PostgreSQL's '24:00:00' has no time of day in Arrow and Parquet (consumers read it as 00:00): the full read
    quarantines its row with the value and what to store instead, and so does change capture, in its snapshot
    and in a change; the row publishes once the source holds a time a consumer can read."""
    from pipeline.cdc import sync_cdc

    pg_execute(dsn, "CREATE TABLE hours (code text PRIMARY KEY, closes time, n int)")
    pg_execute(dsn, "INSERT INTO hours VALUES ('a', '24:00:00', 1), ('b', '23:59:59.999999', 2), ('c', NULL, 3)")
    code = register(dsn, table="hours", key=("code",))
    snapshot = sync_cdc(resource_code=code)
    assert snapshot.mode == "cdc-snapshot" and snapshot.rows_quarantined == 1
    full = _full_read(dsn, "hours")
    _assert_same(_published(code), full)
    assert [row["code"] for row in full[1]] == ["b", "c"]
    (key, rule, reason), = _quarantined(code)
    assert key == "a" and "closes=24:00:00" in reason and "23:59:59.999999" in reason, reason

    pg_execute(dsn, "UPDATE hours SET closes = '24:00', n = 20 WHERE code = 'b'")
    pg_execute(dsn, "UPDATE hours SET closes = '08:30', n = 10 WHERE code = 'a'")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.rows_quarantined == 1
    assert [(k, "closes=24:00:00" in why) for k, _, why in _quarantined(code)] == [("b", True)]
    published = {row["code"]: row for row in _published(code)[1]}
    assert published["a"]["closes"] == 8.5 * 3600 * 1_000_000 and published["a"]["n"] == 10
