"""PostgreSQL arrays (数组) are published in one form whatever read took them (connectors/pgarrays.py): the
full read, the incremental read, a layered version, a full refresh compared with the layers, and change capture's
snapshot and changes. Before, a 2-D int[][] stayed nested through the fast full read and was flattened by the
incremental one ({{1,2},{3,4}} became [1,2,3,4]), char(n)[] lost its padding on one path only, and the capture's
snapshot published text[] as JSON (["a", null]) where its changes kept PostgreSQL's text ({a,NULL}): each such
value flipped between runs and was reported as an update.

The forms: a 1-D array of a scalar type the hub publishes typed is an Arrow list of that type (char(n) without
its padding, timestamptz in UTC, as the scalar columns are); a column declared with two or more dimensions is the
array's canonical text (PostgreSQL's output in a UTC session, char(n) unpadded); numeric(p,s)[] and the arrays
of other types are PostgreSQL's text; a 2-D value in a column declared 1-D is quarantined, never flattened."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import (
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    write_corrections,
)
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.services import require_postgres

LATE = "2031-01-01 09:00:00+08"
LATER = "2031-02-01 09:00:00+08"
UTC = timezone.utc
LISTS = ("ints", "words", "codes", "moments")
TEXTS = ("grid", "amounts", "amount_grid", "word_grid", "code_grid", "moment_grid")
COLUMNS = ("id", *LISTS, *TEXTS)
DDL = """CREATE TABLE {table} (id int PRIMARY KEY, ints int[], grid int[][], amounts numeric(8,2)[],
    amount_grid numeric(8,2)[][], words text[], word_grid text[][], codes char(4)[], code_grid char(4)[][],
    moments timestamptz[], moment_grid timestamptz[][], updated_at timestamptz)"""
ROWS = """INSERT INTO {table} VALUES
    (1, '{{1,NULL,3}}', '{{{{1,2}},{{3,NULL}}}}', '{{1.5,NULL}}', '{{{{1.5,2}},{{NULL,3.25}}}}',
     ARRAY['a', NULL, 'x,y', 'NULL', '', ' 带 空格 ', 'q"b\\c', '统一社会信用代码'], '{{{{a,b}},{{NULL,"c d"}}}}',
     '{{ab,NULL,abcd}}', '{{{{ab,NULL}},{{c,abcd}}}}',
     ARRAY['2026-03-01 08:00:00+08'::timestamptz, NULL, '2026-03-01 08:00:00.5+00'],
     '{{{{"2026-03-01 08:00+08",NULL}},{{"2026-03-02 00:00:00.25+00","2026-03-03 08:00+08"}}}}', '{late}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{late}'),
    (3, '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{late}'),
    (4, '{{{{5,6}},{{7,8}}}}', '{{9}}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{late}')"""
MORE = """INSERT INTO {table} SELECT g, ARRAY[g, NULL], ARRAY[[g, g + 1], [g + 2, NULL]], ARRAY[g * 1.25, NULL],
    ARRAY[[g * 0.5]], ARRAY['词' || g, NULL], ARRAY[['a' || g, NULL]], ARRAY['c' || g, NULL],
    ARRAY[['d' || g, 'e']], ARRAY[timestamptz '2026-03-01 08:00+08' + g * interval '1 hour', NULL],
    ARRAY[[timestamptz '2026-03-01 08:00+08' + g * interval '1 minute']], '{late}'
    FROM generate_series(5, 40) AS g"""
# Changes: two rows updated, the quarantined 2-D row corrected to 1-D, one row inserted, one deleted.
CHANGES = ("UPDATE {table} SET grid = '{{{{9}}}}', words = ARRAY['新', NULL, 'NULL'], codes = ARRAY['x', 'yy  '], "
           "updated_at = '{later}' WHERE id = 5",
           "UPDATE {table} SET moments = ARRAY['2026-06-01 12:00+08'::timestamptz], code_grid = '{{{{z}}}}', "
           "updated_at = '{later}' WHERE id = 6",
           "UPDATE {table} SET ints = '{{5,6}}', updated_at = '{later}' WHERE id = 4",
           "INSERT INTO {table} (id, ints, grid, codes, updated_at) "
           "VALUES (41, '{{41}}', '{{{{4}},{{1}}}}', '{{q}}', '{later}')",
           "DELETE FROM {table} WHERE id = 7")

ROW_1 = {
    "ints": [1, None, 3], "grid": "{{1,2},{3,NULL}}", "amounts": "{1.50,NULL}",
    "amount_grid": "{{1.50,2.00},{NULL,3.25}}",
    "words": ["a", None, "x,y", "NULL", "", " 带 空格 ", 'q"b\\c', "统一社会信用代码"],
    "word_grid": '{{a,b},{NULL,"c d"}}', "codes": ["ab", None, "abcd"], "code_grid": "{{ab,NULL},{c,abcd}}",
    "moments": [datetime(2026, 3, 1, tzinfo=UTC), None, datetime(2026, 3, 1, 8, 0, 0, 500000, tzinfo=UTC)],
    "moment_grid": '{{"2026-03-01 00:00:00+00",NULL},{"2026-03-02 00:00:00.25+00","2026-03-03 00:00:00+00"}}',
}


def _create(dsn: str, table: str) -> None:
    pg_execute(dsn, DDL.format(table=table))
    pg_execute(dsn, ROWS.format(table=table, late=LATE))
    pg_execute(dsn, MORE.format(table=table, late=LATE))


def _change(dsn: str, table: str) -> None:
    for statement in CHANGES:
        pg_execute(dsn, statement.format(table=table, later=LATER))


def _published(code: str) -> dict[int, dict]:
    return {row["id"]: {c: row[c] for c in COLUMNS[1:]} for row in read_version(latest(code)).to_pylist()}


def _expected(dsn: str, table: str) -> dict[int, dict]:
    """The source's rows as psycopg2 and a UTC session give them, independently of the hub's reading: 1-D
    arrays as lists (char(n) unpadded, instants in UTC), the others as PostgreSQL's text (char(n)[][] through
    text[][], which drops the padding). Rows holding a 2-D value in a 1-D column are left out (quarantined)."""
    import psycopg2

    with psycopg2.connect(dsn, options="-c TimeZone=UTC") as conn, conn.cursor() as cursor:
        cursor.execute(f"""SELECT id, ints, words, codes, moments, grid::text, amounts::text, amount_grid::text,
                               word_grid::text, code_grid::text[]::text, moment_grid::text FROM {table}
                           WHERE coalesce(array_ndims(ints), 1) = 1 AND coalesce(array_ndims(words), 1) = 1
                             AND coalesce(array_ndims(codes), 1) = 1 AND coalesce(array_ndims(moments), 1) = 1""")
        rows = cursor.fetchall()
    conn.close()
    expected = {}
    for row in rows:
        values = dict(zip(COLUMNS, row))
        if values["codes"] is not None:
            values["codes"] = [None if c is None else c.rstrip(" ") for c in values["codes"]]
        if values["moments"] is not None:
            values["moments"] = [None if m is None else m.astimezone(UTC) for m in values["moments"]]
        expected[values.pop("id")] = values
    return expected


def _assert_schema(code: str) -> None:
    schema = read_version(latest(code)).schema
    assert schema.field("ints").type == pa.list_(pa.int32())
    assert schema.field("words").type == pa.list_(pa.string()) == schema.field("codes").type
    assert schema.field("moments").type == pa.list_(pa.timestamp("us", tz="UTC"))
    for name in TEXTS:
        assert schema.field(name).type == pa.string(), name


def test_array_text_is_parsed_and_written_as_postgresql_does() -> None:
    from connectors.pgarray_text import parse
    from connectors.pgarrays import ArrayColumn, convert

    assert parse('{{"a b",NULL},{"",c}}').values == [["a b", None], ["", "c"]]
    assert parse('{{"a b",NULL},{"",c}}').dims == 2 and parse("{}").dims == 0
    assert parse('{"q\\"b\\\\c","NULL",NULL}').values == ['q"b\\c', "NULL", None]
    assert parse("[0:1]={a,b}").bounds == "[0:1]"
    grid = ArrayColumn(element="bpchar", dims=2)
    column, problems, _ = convert("g", ['{{"ab ","c  "},{NULL,"a\\"b"}}', "[0:0]={x}", None], grid)
    assert column.to_pylist() == ['{{ab,c},{NULL,"a\\"b"}}', "[0:0]={x}", None] and not problems
    moments = ArrayColumn(element="timestamptz", dims=2)
    assert convert("m", ['{{"2026-03-01 08:00:00.5+08",infinity}}'], moments)[0].to_pylist() == \
        ['{{"2026-03-01 00:00:00.5+00",infinity}}']
    flat, problems, raw = convert("d", ["{{1,2}}", '{"-infinity"}', "{1,NULL}"], ArrayColumn(element="int4"))
    assert flat.to_pylist() == [None, None, [1, None]] and set(problems) == {0, 1} and raw[0] == "{{1,2}}"
    assert "2 维数组" in problems[0] and "2-dimensional" in problems[0]
    dates, problems, _ = convert("d", ['{"2026-03-01",infinity}'], ArrayColumn(element="date"))
    assert dates.to_pylist() == [None] and "超出日期范围" in problems[0]


def test_arrays_publish_the_same_on_full_incremental_layered_and_refreshed_reads(hub_home: Path) -> None:
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".permits'
        _create(dsn, table)
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="permits").resource_code

        full = sync_resource(resource_code=code)
        assert full.mode == "full" and (full.rows_published, full.rows_quarantined) == (39, 1)  # id 4: 2-D in int[]
        _assert_schema(code)
        published = _published(code)
        assert published[1] == ROW_1, published[1]
        assert published[2] == dict.fromkeys(COLUMNS[1:])
        assert published[3] == {**{c: [] for c in LISTS}, **{c: "{}" for c in TEXTS}}
        assert published == _expected(dsn, table)

        # Every row sits on the watermark: the incremental read (the driver's cursor query) reads them all again.
        # Each must read as the full read published it, or it would come out as an update.
        again = sync_resource(resource_code=code)
        assert again.mode == "incremental" and again.version is None, again
        assert again.rows_quarantined == 1

        _change(dsn, table)
        incremental = sync_resource(resource_code=code)
        version = latest(code)
        changes = version.manifest["changes"]
        assert incremental.mode == "incremental" and incremental.rows_quarantined == 0
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (2, 2, 1), changes
        assert any(e.get("folder") for e in version.manifest["files"]), "a layer on the previous version"
        published = _published(code)
        assert published == _expected(dsn, table)
        assert published[5]["grid"] == "{{9}}" and published[5]["codes"] == ["x", "yy"]
        assert published[4]["ints"] == [5, 6] and published[41]["grid"] == "{{4},{1}}"

        # The weekly full refresh, read by the full path and compared with the layers: nothing changed.
        refresh = sync_resource(resource_code=code, full=True)
        assert refresh.mode == "full"
        if refresh.version is not None:
            changes = latest(code).manifest["changes"]
            assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 0, 0), changes
        assert _published(code) == published


def test_a_query_stream_reads_arrays_as_the_table_does(hub_home: Path) -> None:
    """A query's columns declare no dimensions: its 1-D arrays are the table's lists, a 2-D value quarantined."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".permits'
        _create(dsn, table)
        config, secret = pg_source_config(dsn, schema=schema)
        query = f"SELECT id, ints, words, codes, moments, amounts, updated_at FROM {table}"
        code = register_resource(kind="postgresql", config=config, secret=secret, table=None, query=query,
                                 classification="101002").resource_code
        report = sync_resource(resource_code=code)
        assert (report.rows_published, report.rows_quarantined) == (39, 1)
        columns = ("ints", "words", "codes", "moments", "amounts")
        rows = {r["id"]: r for r in read_version(latest(code)).to_pylist()}
        assert {c: rows[1][c] for c in columns} == {c: ROW_1[c] for c in columns}
        assert rows[5]["ints"] == [5, None] and rows[3]["amounts"] == "{}"


def test_an_element_no_consumer_can_read_quarantines_its_row_on_every_read(hub_home: Path) -> None:
    """infinity in a date[] or timestamptz[] came through the driver as a date of 2**31-1 days inside the list
    (a scalar column's such value was already quarantined): the row is quarantined with the array as read, on
    the full read and on the incremental one, and reading it again is no change."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".licences'
        pg_execute(dsn, f"CREATE TABLE {table} (id int PRIMARY KEY, valid date[], seen timestamptz[], "
                        "updated_at timestamptz)")
        pg_execute(dsn, f"""INSERT INTO {table} VALUES (1, '{{2026-01-01,infinity}}', NULL, '{LATE}'),
            (2, NULL, ARRAY['-infinity'::timestamptz], '{LATE}'), (3, '{{2026-01-01,NULL}}', '{{}}', '{LATE}')""")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="licences").resource_code
        full = sync_resource(resource_code=code)
        assert (full.rows_published, full.rows_quarantined) == (1, 2)
        assert read_version(latest(code)).to_pylist()[0]["valid"] == [datetime(2026, 1, 1).date(), None]
        again = sync_resource(resource_code=code)
        assert again.mode == "incremental" and again.version is None and again.rows_quarantined == 2


def _register_cdc(dsn: str) -> str:
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source
    from registry.db import session_scope
    from tests.helpers import CONSUMER, PROVIDER, ensure_agency

    config, secret = pg_source_config(dsn)
    name = f"pg-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        ensure_agency(session, *CONSUMER)
        add_source(session, name=name, agency=PROVIDER[0], kind="postgresql", config=config, secret=secret,
                   actor="test")
        return add_resource(session, name="许可证数组", agency=PROVIDER[0], classification="101003", source=name,
                            table="permits", primary_key=["id"], sync_mode="cdc", update_cycle="realtime",
                            actor="test").code


def test_change_capture_publishes_arrays_as_the_other_reads(pg_logical_database: str, hub_home: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The capture's snapshot and its changes give each array the form the full and incremental reads give it
    (a resource of the same table in incremental mode beside it): the snapshot wrote text[] as JSON and its
    changes as PostgreSQL's text, so each captured change flipped the value's form."""
    from core.settings import reset_settings
    from pipeline.cdc import sync_cdc
    from pipeline.sync import sync_resource

    monkeypatch.setenv("GOVSHARE_CDC_SLOT_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    reset_settings()
    dsn = pg_logical_database
    _create(dsn, "permits")
    captured = _register_cdc(dsn)
    config, secret = pg_source_config(dsn)
    read = register_resource(kind="postgresql", config=config, secret=secret, table="permits",
                             classification="101004").resource_code

    snapshot = sync_cdc(resource_code=captured)
    assert snapshot.mode == "cdc-snapshot" and (snapshot.rows_published, snapshot.rows_quarantined) == (39, 1)
    sync_resource(resource_code=read)
    _assert_schema(captured)
    assert _published(captured)[1] == ROW_1
    assert _published(captured) == _published(read) == _expected(dsn, "permits")

    _change(dsn, "permits")
    changed = sync_cdc(resource_code=captured)
    sync_resource(resource_code=read)
    assert changed.mode == "cdc" and (changed.upserts, changed.deletes) == (4, 1) and changed.rows_quarantined == 0
    changes = latest(captured).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (2, 2, 1), changes
    assert _published(captured) == _published(read) == _expected(dsn, "permits")

    # a change to other columns only: the arrays it resends read as the snapshot published them
    pg_execute(dsn, f"UPDATE permits SET updated_at = '{LATER}'::timestamptz + interval '1 day' WHERE id = 1")
    sync_cdc(resource_code=captured)
    assert latest(captured).manifest["changes"]["updated"] == 1
    assert _published(captured)[1] == ROW_1

    # a new snapshot compared with the published changes: nothing differs
    before = _published(captured)
    again = sync_cdc(resource_code=captured, full=True)
    assert again.mode == "cdc-snapshot"
    if again.version is not None:
        changes = latest(captured).manifest["changes"]
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 0, 0), changes
    assert _published(captured) == before


def test_a_quarantined_array_replays_from_json_or_from_postgresql_text() -> None:
    """Replay (and `govshare verify` of a CSV copy) reads a list column's text back: the JSON an export writes,
    instants, dates and bytes included (bytes were written as Python's b'...'), or PostgreSQL's text of the
    array, as a quarantined row keeps the value its list could not hold."""
    from pipeline.text_values import as_text, from_text

    kinds = {"moments": pa.list_(pa.timestamp("us", tz="UTC")), "days": pa.list_(pa.date32()),
             "blobs": pa.list_(pa.binary()), "flags": pa.list_(pa.bool_()), "ints": pa.list_(pa.int32())}
    values = {"moments": [datetime(2026, 3, 1, 8, 0, 0, 500000, tzinfo=UTC), None],
              "days": [datetime(2026, 3, 1).date(), None], "blobs": [b"\x00\xff", None], "flags": [True, None],
              "ints": [-1, None]}
    for name, kind in kinds.items():
        column = pa.array([values[name], None, []], kind)
        assert from_text(as_text(column), kind).equals(column), name
    assert from_text(pa.array(['{"2026-03-01 08:00:00+08",NULL}']), kinds["moments"]).to_pylist() == \
        [[datetime(2026, 3, 1, tzinfo=UTC), None]]
    assert from_text(pa.array(["{t,f}"]), kinds["flags"]).to_pylist() == [[True, False]]
    assert from_text(pa.array(['{"\\\\x00ff",NULL}']), kinds["blobs"]).to_pylist() == [[b"\x00\xff", None]]
    assert from_text(pa.array(["{5,6}", "[-1, 2]"]), kinds["ints"]).to_pylist() == [[5, 6], [-1, 2]]
    with pytest.raises(pa.ArrowInvalid, match="one-dimensional"):
        from_text(pa.array(["{{5,6},{7,8}}"]), kinds["ints"])


def test_a_2d_value_quarantined_from_a_1d_column_is_corrected_and_replayed(hub_home: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from cli.main import app
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".permits'
        pg_execute(dsn, f"CREATE TABLE {table} (id int PRIMARY KEY, ints int[], moments timestamptz[], "
                        "updated_at timestamptz)")
        pg_execute(dsn, f"""INSERT INTO {table} VALUES (1, '{{1}}', NULL, '{LATE}'),
            (2, '{{{{5,6}},{{7,8}}}}', ARRAY['2026-03-01 08:00+08'::timestamptz], '{LATE}')""")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="permits",
                                 cursor=None).resource_code
        assert sync_resource(resource_code=code).rows_quarantined == 1
        runner, exported = CliRunner(), hub_home / "fix.csv"
        result = runner.invoke(app, ["quarantine", "export", code, "-o", str(exported)])
        assert result.exit_code == 0, result.output
        with exported.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows[0]["ints"] == "{{5,6},{7,8}}" and "2 维数组" in rows[0]["_reason"]
        assert rows[0]["moments"] == '["2026-03-01 00:00:00+00:00"]'
        rows[0]["ints"] = "{5,6,7,8}"  # the provider's decision: one dimension
        fixed = hub_home / "fixed.csv"
        write_corrections(fixed, rows)
        result = runner.invoke(app, ["quarantine", "replay", code, "--file", str(fixed)])
        assert result.exit_code == 0, result.output
        published = {r["id"]: r for r in read_version(latest(code)).to_pylist()}
        assert published[2]["ints"] == [5, 6, 7, 8]
        assert published[2]["moments"] == [datetime(2026, 3, 1, tzinfo=UTC)]
