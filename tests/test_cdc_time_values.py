"""Change capture (变更捕获) publishes dates, times and composite values as a full read of the same table does,
against a private PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

The capture's snapshot reads with psycopg2, which gives date 'infinity' as 9999-12-31 and a timestamp's as
9999-12-31 23:59:59.999999 (true dates, published unflagged) and fails on a year BC or after 9999, while the
change stream carries PostgreSQL's text; the full read quarantines every such value with one reason
(connectors/time_range.py)."""

from __future__ import annotations

import uuid

from tests.helpers import pg_execute, pg_source_config, register_resource
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import register
from tests.test_cdc_forms import _assert_same, _published, _quarantined, dsn  # noqa: F401 - fixture

DATED = "CREATE TABLE dated (code text PRIMARY KEY, day date, stamp timestamp, at timestamptz, n int)"
DATED_ROWS = """INSERT INTO dated VALUES
    ('a', 'infinity', 'infinity', 'infinity', 1), ('b', '-infinity', '-infinity', '-infinity', 2),
    ('c', '0044-03-15 BC', '0044-03-15 12:00 BC', '0044-03-15 12:00+00 BC', 3),
    ('d', '10000-01-01', '10000-01-01 00:00', '10000-01-01 00:00+00', 4),
    ('e', '9999-12-31', '9999-12-31 23:59:59.999999', '0001-01-01 00:00+00', 5), ('f', NULL, NULL, NULL, 6),
    ('h', '0001-01-01', '0001-01-01 00:00', '1900-01-01 00:00:00.5+00', 8)"""
DATED_CHANGES = (
    "UPDATE dated SET day = '2026-03-01', stamp = '2026-03-01 08:00', at = '2026-03-01 08:00+08', n = 10 "
    "WHERE code = 'a'",
    "UPDATE dated SET day = 'infinity', stamp = '-infinity', at = '20000-06-01 00:00+00', n = 20 WHERE code = 'b'",
    "INSERT INTO dated VALUES ('g', '4713-01-01 BC', 'infinity', '-infinity', 7)",
)


def _full_read(dsn: str, table: str) -> str:  # noqa: F811 - the resource's code: its rows and its quarantine
    from pipeline.sync import sync_resource

    config, secret = pg_source_config(dsn)
    code = register_resource(kind="postgresql", config=config, secret=secret, table=table, key=("code",),
                             cursor=None, classification="101009", name=f"对照 {uuid.uuid4().hex[:4]}").resource_code
    assert sync_resource(resource_code=code).mode == "full"
    return code


def _assert_same_quarantine(captured: str, full: str) -> None:
    mine, theirs = sorted(_quarantined(captured)), sorted(_quarantined(full))
    assert [(k, why) for k, _, why in mine] == [(k, why) for k, _, why in theirs]


def test_dates_outside_the_years_are_quarantined_as_the_full_read_quarantines_them(dsn: str) -> None:  # noqa: F811
    """infinity, -infinity, a year BC and one after 9999, in a date, a timestamp and a timestamptz: the snapshot
    published infinity as 9999-12-31 and failed on BC; now the snapshot and every change quarantine each such
    row with the full read's reason and value, and publish the same rows."""
    from pipeline.cdc import sync_cdc
    from pipeline.sync import sync_resource

    database = dsn.rpartition("/")[2]  # Shanghai's text of 1900 has an offset to the second: +08:05:43
    pg_execute(dsn, f'ALTER DATABASE "{database}" SET TimeZone = \'Asia/Shanghai\'')
    pg_execute(dsn, DATED)
    pg_execute(dsn, DATED_ROWS)
    code = register(dsn, table="dated", key=("code",))
    snapshot = sync_cdc(resource_code=code)
    assert snapshot.mode == "cdc-snapshot" and snapshot.rows_quarantined == 4, _quarantined(code)
    full = _full_read(dsn, "dated")
    _assert_same(_published(code), _published(full))
    _assert_same_quarantine(code, full)
    assert any("day=infinity" in why for _, _, why in _quarantined(code))

    for statement in DATED_CHANGES:
        pg_execute(dsn, statement)
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.rows_quarantined == 2, _quarantined(code)
    assert sync_resource(resource_code=full).mode == "full"
    _assert_same(_published(code), _published(full))
    _assert_same_quarantine(code, full)


def test_composite_values_and_ranges_holding_dates_publish_iso_dates_whatever_the_sources_datestyle(
        dsn: str) -> None:  # noqa: F811
    """A role writing dates as 'SQL, DMY': a composite value's text holds its dates that way ('(01/03/2026,x)'),
    which the full read published while change capture, reading in ISO, published '(2026-03-01,x)', and ranges
    of dates were refused. Every read now writes ISO dates, so the capture publishes what the full read does."""
    from pipeline.cdc import sync_cdc

    database = dsn.rpartition("/")[2]
    pg_execute(dsn, f"ALTER ROLE postgres IN DATABASE \"{database}\" SET DateStyle = 'SQL, DMY'")
    # and a zone of the role's own: a tstzrange's text is written in the session's zone, on both paths
    pg_execute(dsn, f"ALTER ROLE postgres IN DATABASE \"{database}\" SET TimeZone = 'America/St_Johns'")
    pg_execute(dsn, "CREATE TYPE stay AS (arrived date, left_at timestamp, note text)")
    pg_execute(dsn, "CREATE TABLE visits (code text PRIMARY KEY, visit stay, stays stay[], days date[][], "
                    "period daterange, span tstzrange, n int)")
    pg_execute(dsn, """INSERT INTO visits VALUES ('a', ROW('2026-03-01', '2026-03-01 08:00', '统一'),
        ARRAY[ROW('2026-03-02', NULL, 'x')::stay], '{{2026-03-01,2026-03-02}}', '[2026-03-01,2026-04-01)',
        '[2026-03-01 08:00+08,2026-03-02 00:00+00)', 1), ('b', NULL, NULL, NULL, NULL, NULL, 2)""")
    code = register(dsn, table="visits", key=("code",))
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    full = _full_read(dsn, "visits")
    _assert_same(_published(code), _published(full))
    assert _published(full)[1][0]["visit"] == '(2026-03-01,"2026-03-01 08:00:00",统一)'
    assert _published(code)[1][0]["span"] == '["2026-02-28 20:30:00-03:30","2026-03-01 20:30:00-03:30")'

    pg_execute(dsn, "UPDATE visits SET visit = ROW('2026-12-31', '2026-12-31 23:00', 'y'), n = 20, "
                    "days = '{{2026-12-31}}', span = '(,2026-12-31 12:00+08]' WHERE code = 'b'")
    assert sync_cdc(resource_code=code).mode == "cdc"
    _assert_same(_published(code), _published(_full_read(dsn, "visits")))
