"""PostgreSQL types the ADBC driver cannot deliver publishably (connectors/postgres_types.py): an agency table
with intervals, money, network addresses, bit strings, times with zones, XML, text search vectors, points,
ranges, arrays of those, uuids, JSON and a domain syncs fully and incrementally; each such value is published as
PostgreSQL's own text output (what psql shows), money as an exact decimal. Before, an interval column failed the
sync with an internal error, and inet, timetz, bit and the like were published as wire-format bytes.

A quarantined row of such a table (a value that does not fit its column) is kept with every value as text
(pipeline/text_values.py): binary as \\x hex, arrays as JSON; exported, corrected and replayed, it is published
with its bytes and arrays as they were at the source."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from core.sheet_text import from_people
from tests.helpers import (
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    write_corrections,
)
from tests.services import require_postgres

ROWS = 40
TEXT_COLUMNS = ["iv", "ip", "net", "mac", "tz", "bits", "vbits", "doc", "words", "pt", "span", "ips", "u", "j"]
LATE = "2031-01-01 09:00:00+08"


@pytest.fixture
def odd_source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".odd'
        pg_execute(dsn, f'CREATE DOMAIN "{schema}".capital AS numeric(14, 2) CHECK (VALUE >= 0)')
        pg_execute(dsn, f"""CREATE TABLE {table} (
            id int PRIMARY KEY, iv interval, m money, ip inet, net cidr, mac macaddr, tz timetz, bits bit(4),
            vbits varbit, doc xml, words tsvector, pt point, span int8range, ips inet[], u uuid, j jsonb,
            arr int[], blob bytea, cap "{schema}".capital, ratio numeric, updated_at timestamptz)""")
        pg_execute(dsn, f"""INSERT INTO {table} SELECT g, make_interval(days => g, secs => 1.5), (g * 1.25)::money,
            ('10.0.' || g || '.1')::inet, ('10.' || g || '.0.0/16')::cidr, '08:00:2b:01:02:03'::macaddr,
            '10:00:00+08'::timetz, B'1010', B'101', ('<a n="' || g || '"/>')::xml, 'a fat cat'::tsvector,
            point(g, -g), int8range(g, g + 10), ARRAY['192.168.0.1'::inet, NULL], md5(g::text)::uuid,
            jsonb_build_object('名称', '企业' || g), ARRAY[g, NULL, g + 1],
            decode('00ff' || lpad(to_hex(g), 2, '0'), 'hex'),
            g * 100.5, g::numeric / 3, timestamptz '2026-03-01 08:00:00+08' + g * interval '1 minute'
            FROM generate_series(1, {ROWS}) AS g""")
        pg_execute(dsn, f"UPDATE {table} SET iv = NULL, ip = NULL, ips = NULL, blob = NULL WHERE id IN (7, 12)")
        yield dsn, schema


def _shown(dsn: str, table: str) -> dict[int, dict[str, str | None]]:
    """Each row's values as psql shows them (the types' output functions)."""
    columns = ", ".join(f"CASE WHEN {c} IS NULL THEN NULL ELSE format('%s', {c}) END" for c in TEXT_COLUMNS)
    return {row[0]: dict(zip(TEXT_COLUMNS, row[1:])) for row in pg_execute(dsn, f"SELECT id, {columns} FROM {table}")}


def _published(code: str) -> dict[int, dict]:
    return {row["id"]: row for row in read_version(latest(code)).to_pylist()}


def test_every_postgresql_type_is_published_as_postgresql_shows_it(hub_home: Path, odd_source: tuple[str, str]) -> None:
    from pipeline.sync import sync_resource

    dsn, schema = odd_source
    table = f'"{schema}".odd'
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret, table="odd").resource_code
    full = sync_resource(resource_code=code)
    assert full.mode == "full" and full.rows_published == ROWS // 3  # ratio: the others need more than 10 places
    version = read_version(latest(code))
    for name in TEXT_COLUMNS:
        assert version.schema.field(name).type == pa.string(), name
    assert version.schema.field("m").type == pa.decimal128(38, 10) and version.schema.field("blob").type == pa.binary()
    shown, published = _shown(dsn, table), _published(code)
    for key, row in published.items():
        assert {c: row[c] for c in TEXT_COLUMNS} == shown[key], key
        assert row["m"] == Decimal(key) * Decimal("1.25") and row["cap"] == Decimal(key) * Decimal("100.5")
        assert row["arr"] == [key, None, key + 1]
    some = published[6]
    assert (some["ip"], some["net"], some["tz"], some["bits"], some["pt"], some["ips"]) == \
        ("10.0.6.1", "10.6.0.0/16", "10:00:00+08", "1010", "(6,-6)", "{192.168.0.1,NULL}")
    assert some["iv"] == "6 days 00:00:01.5" and some["blob"] == bytes.fromhex("00ff06") and some["j"] == \
        '{"名称": "企业6"}'
    assert published[12]["ip"] is None and published[12]["blob"] is None and published[12]["iv"] is None

    # incremental: the cursor read converts the same columns the same way
    pg_execute(dsn, f"UPDATE {table} SET ip = '172.16.0.9', iv = interval '3 hours', m = 9.99, updated_at = '{LATE}' "
                    "WHERE id IN (6, 9)")
    report = sync_resource(resource_code=code)
    assert report.mode == "incremental" and report.changes["updated"] == 2
    published = _published(code)
    assert (published[6]["ip"], published[6]["iv"], published[9]["m"]) == ("172.16.0.9", "03:00:00", Decimal("9.99"))
    assert {c: published[9][c] for c in TEXT_COLUMNS} == _shown(dsn, table)[9]


def test_quarantined_rows_keep_bytes_and_arrays_through_replay(hub_home: Path, odd_source: tuple[str, str]) -> None:
    from cli.main import app
    from pipeline.sync import sync_resource

    dsn, schema = odd_source
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret, table="odd").resource_code
    assert sync_resource(resource_code=code).rows_quarantined == ROWS - ROWS // 3
    runner, exported = CliRunner(), hub_home / "fix.csv"
    result = runner.invoke(app, ["quarantine", "export", code, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    with exported.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_id = {int(row["id"]): row for row in rows}
    assert by_id[1]["blob"] == "\\x00ff01" and by_id[1]["arr"] == "[1, null, 2]" and by_id[1]["ip"] == "10.0.1.1"
    assert by_id[7]["blob"] == "" and by_id[7]["ips"] == ""  # NULLs stay empty
    # the value that did not fit is in its column as the source had it (not only quoted in the reason)
    assert by_id[1]["ratio"] == "0.33333333333333333333" and "ratio=" in by_id[1]["_reason"]

    def replay(rows: list[dict]) -> None:
        fixed = hub_home / "fixed.csv"
        write_corrections(fixed, rows)
        result = runner.invoke(app, ["quarantine", "replay", code, "--file", str(fixed)])
        assert result.exit_code == 0, result.output

    replay(rows)  # sent back unchanged: still too precise, still quarantined, never published as NULL
    assert len(_published(code)) == ROWS // 3 and latest(code).quarantined_count == ROWS - ROWS // 3
    for row in rows:  # the provider rounds each ratio to the column's 10 places
        row["ratio"] = str(round(Decimal(row["ratio"]), 10))
    replay(rows)
    published = _published(code)
    assert len(published) == ROWS
    assert published[1]["blob"] == bytes.fromhex("00ff01") and published[1]["arr"] == [1, None, 2]
    assert published[7]["blob"] is None and published[7]["ips"] is None
    assert published[3]["ratio"] == 1 and published[1]["ratio"] == Decimal("0.3333333333")
    assert published[2]["m"] == Decimal("2.50")


def test_a_binary_value_not_written_as_hex_is_refused_on_replay() -> None:
    from pipeline.text_values import as_text, from_text

    column = pa.array([b"\x00\xff", None, b"ok"], pa.binary())
    assert as_text(column).to_pylist() == ["\\x00ff", None, "\\x6f6b"]
    assert from_text(as_text(column), pa.binary()).equals(column)
    with pytest.raises(pa.ArrowInvalid, match="hex"):
        from_text(pa.array(["ok"]), pa.binary())
    nested = pa.array([[1, None], None], pa.list_(pa.int32()))
    assert from_text(as_text(nested), nested.type).equals(nested)


def test_csv_copies_carry_bytes_and_arrays_as_text(hub_home: Path, odd_source: tuple[str, str]) -> None:
    """CSV has no form for bytes or arrays: an export writes them as \\x hex and JSON (a raw byte string made
    the file unreadable, an array column failed the export), and `govshare verify` reads them back."""
    from cli.main import app
    from pipeline.sync import sync_resource

    dsn, schema = odd_source
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret, table="odd").resource_code
    sync_resource(resource_code=code)
    runner, out = CliRunner(), hub_home / "odd.csv"
    result = runner.invoke(app, ["export", code, "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = {int(row["id"]): row for row in csv.DictReader(handle)}
    assert rows[3]["blob"] == "\\x00ff03" and rows[3]["arr"] == "[3, null, 4]" and rows[12]["blob"] == ""
    result = runner.invoke(app, ["verify", code, str(out)])
    assert result.exit_code == 0 and "一致 / match" in result.output, result.output
    out.write_text(out.read_text(encoding="utf-8-sig").replace("\\x00ff03", "\\x00ff04"), encoding="utf-8-sig")
    result = runner.invoke(app, ["verify", code, str(out)])
    assert result.exit_code == 1 and "column blob" in result.output, result.output
    out.write_text(out.read_text(encoding="utf-8-sig").replace("\\x00ff04", "00ff04"), encoding="utf-8-sig")
    result = runner.invoke(app, ["verify", code, str(out)])
    assert result.exit_code == 1 and "hex" in result.output and "Traceback" not in result.output, result.output


def test_json_answers_convert_the_items_of_arrays_and_structs() -> None:
    from delivery.interface import json_rows

    table = pa.table({"amounts": pa.array([[Decimal("1.25"), None]], pa.list_(pa.decimal128(8, 2))),
                      "meta": pa.array([{"when": None, "blob": b"\x00"}],
                                       pa.struct([("when", pa.date32()), ("blob", pa.binary())]))})
    assert json_rows(table) == [{"amounts": ["1.25", None], "meta": {"when": None, "blob": "AA=="}}]


def test_a_uuid_keyed_table_finds_its_deletes(hub_home: Path) -> None:
    """The key scan reads a uuid key in the form the rows are published in (text), so the published keys and
    the source's compare: the deletes are exact."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".people'
        pg_execute(dsn, f"CREATE TABLE {table} (id uuid PRIMARY KEY, name text, updated_at timestamptz)")
        pg_execute(dsn, f"INSERT INTO {table} SELECT md5(g::text)::uuid, 'n' || g, "
                        f"timestamptz '2026-03-01 08:00:00+08' FROM generate_series(1, 50) AS g")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="people").resource_code
        assert sync_resource(resource_code=code).version == 1
        pg_execute(dsn, f"DELETE FROM {table} WHERE name IN ('n5', 'n6')")
        pg_execute(dsn, f"UPDATE {table} SET name = 'x', updated_at = '{LATE}' WHERE name = 'n7'")
        report = sync_resource(resource_code=code)
        assert report.mode == "incremental"
        changes = latest(code).manifest["changes"]
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 2)
        published = read_version(latest(code))
        assert published.schema.field("id").type == pa.string()
        gone = {row[0] for row in pg_execute(dsn, "SELECT md5(g::text)::uuid::text FROM generate_series(5, 6) g")}
        assert len(published) == 48 and not gone & set(published.column("id").to_pylist())


def test_infinite_and_far_dates_are_quarantined_not_published_as_garbage(hub_home, tmp_path) -> None:  # noqa: ANN001
    """PostgreSQL's infinity, years BC and years past 9999 were published as values no consumer can read
    (2**31-1 days; timestamps of 2**63-1 microseconds) or, through the full read's DuckDB scanner, as other
    dates (-infinity became 28165 BC). Each such row is quarantined with its value as read and a reason, on the
    full read and on the incremental one; other rows publish. Floats that are not finite go out over the API
    as "NaN" and "Infinity" (JSON has no such number: the answer failed)."""
    import requests

    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.quality.quarantine import open_keys
    from registry.catalog.resources import get_resource
    from tests.helpers import bearer, running_api

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".licences'
        pg_execute(dsn, f"CREATE TABLE {table} (id int PRIMARY KEY, valid_to date, issued timestamp, "
                        f"checked timestamptz, score float8, updated_at timestamptz)")
        pg_execute(dsn, f"""INSERT INTO {table} VALUES
            (1, 'infinity', '-infinity', '2026-01-01 09:00+08', 1.5, '{LATE}'),
            (2, '2027-06-30', '2026-01-01 09:00', '2026-01-01 09:00+08', 'NaN', '{LATE}'),
            (3, '2027-06-30', '2026-01-01 09:00', '-infinity', 'Infinity', '{LATE}'),
            (4, '0001-01-01 BC', '2026-01-01 09:00', '294276-12-31 00:00+00', 2.5, '{LATE}'),
            (5, '2027-06-30', '2026-01-01 09:00', '2026-01-01 09:00+08', 3.5, '{LATE}')""")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="licences", subscribe=True,
                                columns=["id", "valid_to", "issued", "checked", "score", "updated_at"])
        full = sync_resource(resource_code=hub.resource_code)
        assert (full.rows_published, full.rows_quarantined) == (2, 3)
        published = _published(hub.resource_code)
        assert sorted(published) == [2, 5] and published[5]["valid_to"].isoformat() == "2027-06-30"
        with session_scope() as session:
            resource = get_resource(session, code=hub.resource_code)
            assert sorted(open_keys(session, resource_id=resource.id)) == ["1", "3", "4"]
        export = tmp_path / "quarantine.csv"
        done = CliRunner().invoke(_cli(), ["quarantine", "export", hub.resource_code, "--output", str(export)])
        assert done.exit_code == 0, done.output
        with export.open(encoding="utf-8-sig", newline="") as handle:
            rows = {r["id"]: r for r in csv.DictReader(handle)}
        # the export is for people (Excel): -infinity, which Excel would run as a formula, carries the text marker
        # ' that replay takes off again (core/sheet_text.py)
        assert rows["1"]["valid_to"] == "infinity" and rows["1"]["issued"] == "'-infinity"
        assert from_people(rows["1"]["issued"]) == "-infinity"
        assert "超出日期范围" in rows["1"]["_reason"]
        assert "checked=" in rows["3"]["_reason"] and "valid_to=" in rows["4"]["_reason"]

        with running_api() as api:
            answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/lookup",
                                  params={"column": "id", "value": "2"}, headers=bearer(hub.token), timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["records"][0]["score"] == "NaN"

        # the incremental read (the driver's own path, not DuckDB's): the same values are caught the same way
        pg_execute(dsn, f"UPDATE {table} SET valid_to = 'infinity', updated_at = '{LATE}'::timestamptz + "
                        "interval '1 day' WHERE id = 5")
        incremental = sync_resource(resource_code=hub.resource_code)
        assert incremental.mode == "incremental" and incremental.rows_quarantined == 4  # 1, 3, 4 read again
        # id 5's published row is withdrawn, as a full read of the table publishes none for it (it kept its
        # 2027-06-30, a value the source no longer holds); nothing else changed (the NaN score read again is
        # the same value, not an update)
        assert incremental.version == 2 and latest(hub.resource_code).manifest["changes"]["deleted"] == 1
        assert sorted(_published(hub.resource_code)) == [2]
        # the driver's read told its infinity by a day count its epoch shift had wrapped: the provider saw
        # -5877611-06-21 in the quarantine where the source holds infinity
        done = CliRunner().invoke(_cli(), ["quarantine", "export", hub.resource_code, "--output", str(export)])
        assert done.exit_code == 0, done.output
        with export.open(encoding="utf-8-sig", newline="") as handle:
            rows = {r["id"]: r for r in csv.DictReader(handle)}
        assert rows["5"]["valid_to"] == "infinity" and "valid_to=infinity:" in rows["5"]["_reason"]
        assert (rows["1"]["valid_to"], from_people(rows["1"]["issued"])) == ("infinity", "-infinity")


def _cli():  # noqa: ANN202
    from cli.main import app

    return app


def test_a_numeric_nan_is_quarantined_on_the_full_read_too(hub_home) -> None:  # noqa: ANN001
    """The full read's DuckDB scanner read numeric 'NaN' as 0.00 and published it as a true amount; the
    driver's read quarantines it. A full read of a table with a NaN is now the driver's, and the NaN row is
    quarantined with its reason; a table without one keeps the fast scan."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        for name, values in (("with_nan", "(1, 'NaN', 5), (2, 1.5, 0)"), ("without", "(1, 0, 5), (2, 1.5, 0)")):
            pg_execute(dsn, f'CREATE TABLE "{schema}".{name} (id int PRIMARY KEY, capital numeric(12, 2), '
                            f"staff int, updated_at timestamptz DEFAULT now())")
            pg_execute(dsn, f'INSERT INTO "{schema}".{name} (id, capital, staff) VALUES {values}')
        config, secret = pg_source_config(dsn, schema=schema)
        nan = register_resource(kind="postgresql", config=config, secret=secret, table="with_nan")
        report = sync_resource(resource_code=nan.resource_code)
        assert (report.rows_published, report.rows_quarantined) == (1, 1)
        assert {k: v["capital"] for k, v in _published(nan.resource_code).items()} == {2: Decimal("1.50")}
        plain = register_resource(kind="postgresql", config=config, secret=secret, table="without",
                                  classification="101002")
        report = sync_resource(resource_code=plain.resource_code)
        assert (report.rows_published, report.rows_quarantined) == (2, 0)
        assert {k: v["capital"] for k, v in _published(plain.resource_code).items()} == \
            {1: Decimal("0.00"), 2: Decimal("1.50")}


def test_char_columns_read_the_same_on_full_and_incremental_reads(hub_home) -> None:  # noqa: ANN001
    """char(n) pads its values with spaces. The full read's scanner dropped the padding, the driver (every
    incremental read, every key scan) kept it: each row read again looked changed, and a char key looked like
    another key. Both reads now give the value without its padding, as PostgreSQL compares it."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".codes'
        pg_execute(dsn, f"CREATE TABLE {table} (code char(20) PRIMARY KEY, name char(10), updated_at timestamptz)")
        pg_execute(dsn, f"INSERT INTO {table} SELECT '913100' || lpad(g::text, 12, '0'), '企业' || g, "
                        f"timestamptz '2026-03-01 08:00+08' FROM generate_series(1, 50) AS g")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="codes", key=("code",))
        sync_resource(resource_code=hub.resource_code)
        pg_execute(dsn, f"UPDATE {table} SET name = '改名', updated_at = '{LATE}' WHERE code = '913100000000000007'")
        pg_execute(dsn, f"DELETE FROM {table} WHERE code = '913100000000000009'")
        report = sync_resource(resource_code=hub.resource_code)
        version = latest(hub.resource_code)
        changes = version.manifest["changes"]
        assert report.mode == "incremental" and (changes["inserted"], changes["updated"], changes["deleted"]) == \
            (0, 1, 1)
        rows = {r["code"]: r["name"] for r in read_version(version, sort_by="code").to_pylist()}
        assert len(rows) == 49 and rows["913100000000000007"] == "改名" and rows["913100000000000008"] == "企业8"


def test_composite_values_are_read_as_their_text_on_every_read(hub_home) -> None:  # noqa: ANN001
    """A composite type (CREATE TYPE addr AS (city, zip)) came through the driver as a structure on a process's
    first read and as NULL on later ones: a sync after another lost the values. It is read as PostgreSQL shows
    it, '(上海,200000)', on every read, full or incremental, beside an enum."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TYPE "{schema}".status AS ENUM (\'存续\', \'注销\')')
        pg_execute(dsn, f'CREATE TYPE "{schema}".addr AS (city text, zip int)')
        table = f'"{schema}".places'
        pg_execute(dsn, f'CREATE TABLE {table} (id int PRIMARY KEY, st "{schema}".status, a "{schema}".addr, '
                        f"updated_at timestamptz)")
        pg_execute(dsn, f"INSERT INTO {table} VALUES (1, '存续', ROW('上海', 200000), '{LATE}'), "
                        f"(2, NULL, NULL, '{LATE}')")
        config, secret = pg_source_config(dsn, schema=schema)
        expected = {1: ("存续", "(上海,200000)"), 2: (None, None)}
        for index in range(2):
            code = register_resource(kind="postgresql", config=config, secret=secret, table="places",
                                     classification=f"10100{index + 1}").resource_code
            sync_resource(resource_code=code)
            assert {k: (v["st"], v["a"]) for k, v in _published(code).items()} == expected
            pg_execute(dsn, f"UPDATE {table} SET updated_at = updated_at + interval '1 day' WHERE id = 1")
            assert sync_resource(resource_code=code).mode == "incremental"
            assert {k: (v["st"], v["a"]) for k, v in _published(code).items()} == expected


def test_a_table_with_a_numeric_array_syncs_in_full(hub_home: Path) -> None:
    """A numeric(p,s)[] column in a table the fast full read takes: its probe for NaN compared the array with
    a number and the read failed as retriable, on every attempt. It is read as the driver reads it, the
    array's text, as discovery describes it."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.rates (id int PRIMARY KEY, ratios numeric(6,2)[], tags text[], "
                        "rate numeric(6,2))")
        pg_execute(dsn, f"INSERT INTO {schema}.rates VALUES (1, ARRAY[1.5, NULL], ARRAY['a'], 2.25)")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="rates",
                                 cursor=None).resource_code
        assert sync_resource(resource_code=code).rows_published == 1
        row = read_version(latest(code)).to_pylist()[0]
        assert row["ratios"] == "{1.50,NULL}" and row["tags"] == ["a"] and row["rate"] == Decimal("2.25")


def test_a_time_of_day_column_is_described_as_the_reads_publish_it(hub_home) -> None:  # noqa: ANN001
    """Discovery (a contract draft, a contract's check) said text for `time`, while every read publishes a time
    of day: a contract drafted from the source did not match what the sync published."""
    from connectors.postgres import PostgresConnector
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE "{schema}".shifts (id int PRIMARY KEY, starts time, updated_at timestamptz)')
        pg_execute(dsn, f"INSERT INTO \"{schema}\".shifts VALUES (1, '08:30:01.5', now())")
        config, secret = pg_source_config(dsn, schema=schema)
        described = PostgresConnector(name="shifts", config=config, secret=secret).table_info("shifts")
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="shifts")
        sync_resource(resource_code=hub.resource_code)
        published = read_version(latest(hub.resource_code))
        starts = next(c for c in described.columns if c.name == "starts")
        assert starts.arrow_type == published.schema.field("starts").type == pa.time64("us")


def test_a_time_of_24_00_is_quarantined_not_published_as_midnight(hub_home, tmp_path) -> None:  # noqa: ANN001
    """PostgreSQL's time of day '24:00:00' (an office's closing time, "until the end of the day") was published as
    86,400,000,000 microseconds, past what a time of day in Arrow and Parquet may hold: consumers read it as
    00:00, the start of the day. Such a row is quarantined with the value as read and what to store instead, on
    the full read and on the incremental one; 23:59:59.999999 and 00:00 publish as they are."""
    from pipeline.sync import sync_resource
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.quality.quarantine import open_keys

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".hours'
        pg_execute(dsn, f"CREATE TABLE {table} (id int PRIMARY KEY, closes time, updated_at timestamptz)")
        pg_execute(dsn, f"""INSERT INTO {table} VALUES (1, '24:00:00', '{LATE}'), (2, '23:59:59.999999', '{LATE}'),
            (3, '00:00', '{LATE}'), (4, NULL, '{LATE}')""")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="hours")
        full = sync_resource(resource_code=hub.resource_code)
        assert (full.rows_published, full.rows_quarantined) == (3, 1)
        published = _published(hub.resource_code)
        assert sorted(published) == [2, 3, 4]
        assert published[2]["closes"].isoformat() == "23:59:59.999999" and published[3]["closes"].isoformat() == "00:00:00"
        export = tmp_path / "quarantine.csv"
        done = CliRunner().invoke(_cli(), ["quarantine", "export", hub.resource_code, "--output", str(export)])
        assert done.exit_code == 0, done.output
        with export.open(encoding="utf-8-sig", newline="") as handle:
            rows = {r["id"]: r for r in csv.DictReader(handle)}
        assert rows["1"]["closes"] == "24:00:00" and "closes=24:00:00" in rows["1"]["_reason"]

        pg_execute(dsn, f"UPDATE {table} SET closes = '24:00', updated_at = '{LATE}'::timestamptz + interval '1 day' "
                        "WHERE id = 2")
        incremental = sync_resource(resource_code=hub.resource_code)
        assert incremental.mode == "incremental" and incremental.rows_quarantined == 2  # 1 read again, and 2
        # its published row is withdrawn, as a full read publishes none for it (23:59:59.999999 is gone at the source)
        assert sorted(_published(hub.resource_code)) == [3, 4]
        with session_scope() as session:
            resource = get_resource(session, code=hub.resource_code)
            assert sorted(open_keys(session, resource_id=resource.id)) == ["1", "2"]


def test_an_infinite_timestamp_beside_a_null_is_quarantined_on_every_read() -> None:
    """A batch holding an infinite timestamp and a NULL in the same column failed the full read (DuckDB's scan)
    with 'int too big to convert', and on the driver's read told infinity as -infinity: the NULL made the
    counts floats. Each read now quarantines the row with the source's text."""
    from connectors.base import ROW_RAW_COLUMN, ReadState, StreamSpec
    from connectors.postgres import PostgresConnector

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE "{schema}".terms (id int PRIMARY KEY, ends date, stamp timestamp, at timestamptz)')
        pg_execute(dsn, f"""INSERT INTO "{schema}".terms VALUES (1, 'infinity', 'infinity', 'infinity'),
            (2, NULL, NULL, NULL), (3, '-infinity', '-infinity', '-infinity')""")
        config, secret = pg_source_config(dsn, schema=schema)
        for reader in ("auto", "adbc"):
            connector = PostgresConnector(name="税务库", config={**config, "reader": reader}, secret=secret)
            batches = connector.read(StreamSpec(table="terms", primary_key=("id",)), ReadState())
            rows = pa.Table.from_batches(list(batches)).sort_by("id").column(ROW_RAW_COLUMN).to_pylist()
            assert rows == ['{"ends": "infinity", "stamp": "infinity", "at": "infinity"}', None,
                            '{"ends": "-infinity", "stamp": "-infinity", "at": "-infinity"}'], reader
