"""A messy MariaDB business table published exactly: what the source holds is what consumers get."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pyarrow as pa

from connectors.base import ReadState, StreamSpec
from tests.test_connectors_mysql import _connector, _root, scratch  # noqa: F401 - the scratch fixture

# FLOAT literals whose single-precision value needs more than the six digits MariaDB prints for a FLOAT
FLOATS = {1: 123456789.0, 2: 3.14159265, 3: 16777217.0, 4: 3.4028234e38, 5: 1.17549435e-38}


def test_float_columns_publish_the_stored_single_precision_value(hub_home, scratch: dict) -> None:  # noqa: ANN001, F811
    """MariaDB prints a FLOAT with six significant digits (123456789 is stored as 123456792, shown as 123457000);
    the hub published that text, so a count or an amount differed from the source's by hundreds. The published
    value is the one the column holds, in table and query streams and through a sync."""
    from pipeline.sync import sync_resource
    from tests.helpers import latest, read_version, register_resource

    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE readings (id INT PRIMARY KEY, f FLOAT, g FLOAT UNSIGNED, "
                       "updated_at DATETIME NOT NULL)")
        cursor.executemany("INSERT INTO readings VALUES (%s, %s, %s, '2026-01-01')",
                           [(k, v, abs(v)) for k, v in FLOATS.items()] + [(6, None, None)])
    stored = {k: float(np.float32(v)) for k, v in FLOATS.items()} | {6: None}

    connector = _connector(scratch)
    for stream in (StreamSpec(table="readings", primary_key=("id",), batch_rows=10),
                   StreamSpec(query="SELECT id, f, g FROM readings", primary_key=("id",), batch_rows=10)):
        rows = [r for b in connector.read(stream, ReadState()) for r in b.to_pylist()]
        assert {r["id"]: r["f"] for r in rows} == stored
        assert {r["id"]: r["g"] for r in rows} == {k: v if v is None else abs(v) for k, v in stored.items()}

    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="readings")
    sync_resource(resource_code=hub.resource_code)
    published = read_version(latest(hub.resource_code))
    assert published.schema.field("f").type == pa.float32()
    assert dict(zip(*published.select(["id", "f"]).to_pydict().values())) == stored


def test_a_wall_clock_time_the_declared_zone_skipped_is_quarantined_not_moved(hub_home, scratch: dict) -> None:  # noqa: ANN001, F811
    """China kept summer time from 1986 to 1991: on 1990-04-15 Shanghai's clocks went from 02:00 to 03:00, so a
    DATETIME of 02:30 that day names no instant there. It was published an hour later (03:30), silently; it is
    quarantined with the reason, and the day's real times (and the repeated hour in autumn) keep their wall
    clock."""
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.quality.quarantine import open_records
    from tests.helpers import latest, read_version, register_resource

    written = {1: "1990-04-15 02:30:00", 2: "1990-04-15 03:30:00", 3: "1990-09-16 01:30:00", 4: "2026-01-01 12:00:00"}
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE births (id INT PRIMARY KEY, born_at DATETIME, updated_at DATETIME NOT NULL)")
        cursor.executemany("INSERT INTO births VALUES (%s, %s, '2026-01-01')", list(written.items()))
    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="births")
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_published, report.rows_quarantined) == (3, 1)
    published = read_version(latest(hub.resource_code)).to_pylist()
    assert {r["id"]: r["born_at"].strftime("%Y-%m-%d %H:%M:%S") for r in published} == {
        k: v for k, v in written.items() if k != 1}
    with session_scope() as session:
        [record] = open_records(session, resource_id=get_resource(session, code=hub.resource_code).id)
    assert record.key == "1" and "born_at" in record.reason and "Asia/Shanghai" in record.reason


MESSY = """CREATE TABLE biz (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY, flag TINYINT(1), yr YEAR, bits BIT(3), kind ENUM('甲', '乙'),
    tags SET('a', 'b', 'c'), dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, dt DATETIME(6), ts TIMESTAMP(6) NULL,
    tm TIME(6), txt VARCHAR(100), ch CHAR(10), bin BINARY(4), bl BLOB, js JSON, updated_at DATETIME NOT NULL,
    KEY (updated_at)) DEFAULT CHARSET=utf8mb4"""
MESSY_ROWS = [
    "(18446744073709551615, 127, 2155, b'101', '甲', 'a,c', -99999999999999999999999999999999999.99999999999999999999"
    "9999999999, 123456789, 1.7976931348623157e308, '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', "
    "'-838:59:59.999999', '😀𠀀𪚥 emoji', 'ab  ', x'00010000', x'00', '{\"a\": 1.10}', '2026-01-01 10:00:00')",
    "(9223372036854775808, 0, 0, b'000', '乙', '', 0, -0.5, 5e-324, '1000-01-01', '1970-01-01 08:00:01', "
    "'-00:00:00.000001', '', '', x'', x'', 'null', '2026-01-01 10:00:00')",
    "(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "'2026-01-01 10:00:00')",
]


def test_messy_table_incremental_runs_publish_exactly_the_changes(hub_home, scratch: dict) -> None:  # noqa: ANN001, F811
    """Every MySQL form at once, through a full and then incremental syncs: a quiet run (every row tied at the
    watermark and re-read) publishes nothing; a late writer on the watermark's value, an update, a delete and
    an insert publish exactly those, the rest of the version unchanged value for value."""
    from pipeline.sync import sync_resource
    from tests.helpers import latest, read_version, register_resource

    def run(*statements: str):  # noqa: ANN202 - the sync's report
        with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
            cursor.execute("SET time_zone = '+08:00'")  # the agency's writers; TIMESTAMP is an instant all the same
            for statement in statements:
                cursor.execute(statement)
        return sync_resource(resource_code=hub.resource_code)

    def rows() -> dict[int, dict]:
        return {r["id"]: r for r in read_version(latest(hub.resource_code)).to_pylist()}

    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="biz")
    first = run(MESSY, "INSERT INTO biz VALUES " + ", ".join(MESSY_ROWS))
    assert (first.rows_published, first.rows_quarantined) == (3, 0)
    before = rows()
    assert run().version is None
    top, middle = 2**64 - 1, 2**63
    report = run(f"INSERT INTO biz SELECT 7, flag, yr, bits, kind, tags, dec65, f, d, dt, ts, tm, txt, ch, bin, bl, js, "
                 f"updated_at FROM biz WHERE id = {top}",  # a late writer on the watermark's own value
                 f"UPDATE biz SET txt = '改过' WHERE id = {middle}", "DELETE FROM biz WHERE id = 1")
    assert report.mode == "incremental"
    assert {k: report.changes[k] for k in ("inserted", "updated", "deleted")} == {"inserted": 1, "updated": 1,
                                                                                  "deleted": 1}
    after = rows()
    assert after == {top: before[top], middle: {**before[middle], "txt": "改过"}, 7: {**before[top], "id": 7}}


def test_spatial_columns_of_a_query_stream_are_wkt_text_as_a_table_streams_are(scratch: dict) -> None:  # noqa: F811
    """A query stream's POINT arrived as MySQL's internal bytes (SRID and WKB, published as binary) where the same
    column of a table stream is published as WKT; both are WKT, the query read with its cursor too."""
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE sites (id INT PRIMARY KEY, at POINT, name VARCHAR(9), updated_at DATETIME NOT NULL)")
        cursor.execute("INSERT INTO sites VALUES (1, POINT(121.5, 31.2), '甲公司', '2026-01-01'), "
                       "(2, NULL, '乙公司', '2026-01-02')")
    connector = _connector(scratch)
    table = StreamSpec(table="sites", primary_key=("id",))
    query = StreamSpec(query="SELECT id, at FROM sites WHERE name LIKE '%公司'", primary_key=("id",))
    assert connector.stream_schema(query).field("at").type == connector.stream_schema(table).field("at").type
    as_table = [(r["id"], r["at"]) for b in connector.read(table, ReadState()) for r in b.to_pylist()]
    assert [(r["id"], r["at"]) for b in connector.read(query, ReadState()) for r in b.to_pylist()] == as_table
    since = StreamSpec(query="SELECT id, at, updated_at FROM sites", primary_key=("id",), cursor_column="updated_at")
    assert [(r["id"], r["at"]) for b in connector.read(since, ReadState("2026-01-01 00:00:00"))
            for r in b.to_pylist()] == as_table


def _client_rows(scratch: dict, select: str) -> list[list[str]]:  # noqa: F811
    """What MariaDB's own command-line client shows for ``select``, as the source's user (raw tab-separated)."""
    import subprocess

    config = scratch["config"]
    shown = subprocess.run(
        ["mysql", f"--host={config['host']}", f"--port={config['port']}", f"--user={scratch['user']}",
         f"--password={scratch['password']}", "--batch", "--raw", "--skip-column-names",
         "--default-character-set=utf8mb4", scratch["database"], "-e", select],
        capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in shown.splitlines()]


def test_char_values_are_what_mariadbs_own_client_shows_on_full_and_incremental_runs(hub_home, scratch: dict) -> None:  # noqa: ANN001, F811
    """The decision (ARCHITECTURE.md, "CHAR(n) from MariaDB"): a CHAR(n) value is what the source's own clients
    read, which in MariaDB's default sql_mode is without the trailing spaces its storage pads with ('ab  ' in a
    CHAR(10) reads 'ab'); leading spaces, other blanks (U+3000) and a VARCHAR's trailing spaces are the value's
    own and kept. A full and an incremental run publish the same form: the row an update re-reads does not flip."""
    from pipeline.sync import sync_resource
    from tests.helpers import latest, read_version, register_resource

    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE codes (id INT PRIMARY KEY, code CHAR(10), note VARCHAR(10), "
                       "updated_at DATETIME NOT NULL) DEFAULT CHARSET=utf8mb4")
        cursor.execute("INSERT INTO codes VALUES (1, 'ab  ', 'ab  ', '2026-01-01 10:00'), "
                       "(2, '  lead', '  lead', '2026-01-01 10:00'), (3, '全角\u3000', '全角\u3000', '2026-01-01 10:00'), "
                       "(4, '', '', '2026-01-01 10:00'), (5, '   ', '   ', '2026-01-01 10:00')")
    hub = register_resource(kind="mysql", config=scratch["config"], secret=scratch["secret"], table="codes")
    select = "SELECT id, code, note FROM codes ORDER BY id"

    def published() -> list[list[str]]:
        rows = sorted(read_version(latest(hub.resource_code)).to_pylist(), key=lambda r: r["id"])
        return [[str(r["id"]), r["code"], r["note"]] for r in rows]

    assert sync_resource(resource_code=hub.resource_code).mode == "full"
    shown = _client_rows(scratch, select)
    assert published() == shown
    assert shown[0] == ["1", "ab", "ab  "] and shown[2] == ["3", "全角\u3000", "全角\u3000"]
    with closing(_root(database=scratch["database"])) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE codes SET note = 'x', updated_at = '2026-01-02 10:00' WHERE id IN (1, 5)")
        cursor.execute("INSERT INTO codes VALUES (6, 'cd   ', 'cd ', '2026-01-02 10:00')")
    report = sync_resource(resource_code=hub.resource_code)
    assert report.mode == "incremental" and report.changes["updated"] == 2 and report.changes["inserted"] == 1
    assert published() == _client_rows(scratch, select)
