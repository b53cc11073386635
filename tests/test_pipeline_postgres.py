"""A PostgreSQL source synced into the hub: full and incremental versions equal the source, value for value.

Each test runs twice: with the registry in SQLite (hub_home) and in PostgreSQL (pg_hub_home). The source data
lives in a scratch schema of the test PostgreSQL database, loaded with samples.loaders.load_postgres.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from samples.loaders import load_postgres, mutate_postgres
from tests.helpers import (
    cursor_value,
    first_difference,
    latest,
    pg_execute,
    pg_rows,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    rows_digest,
    sync_runs,
    table_rows,
    versions,
)
from tests.services import require_postgres

# Every exchange test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")

ROWS = 3_000


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def hub(request: pytest.FixtureRequest) -> Path:
    """The hub home, with its registry in SQLite or in a scratch PostgreSQL database."""
    return request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")


@pytest.fixture
def source() -> Iterator[tuple[str, str]]:
    """(dsn, schema): a scratch schema in the test PostgreSQL database for the source tables."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        yield dsn, schema


def _register(dsn: str, schema: str, **kwargs):  # noqa: ANN003, ANN202
    config, secret = pg_source_config(dsn, schema=schema)
    return register_resource(kind="postgresql", config=config, secret=secret, **kwargs)


def _sync(code: str):  # noqa: ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=code)


def _assert_version_equals_source(version, dsn: str, table: str) -> None:  # noqa: ANN001
    source_rows = pg_rows(dsn, table)
    published = table_rows(read_version(version))
    assert len(published) == len(source_rows) == version.row_count
    assert rows_digest(published) == rows_digest(source_rows), first_difference(published, source_rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_sync_publishes_exactly_the_source(hub: Path, source: tuple[str, str]) -> None:
    from pipeline.paths import resolve

    dsn, schema = source
    assert load_postgres(dsn, rows=ROWS, seed=11, schema=schema) == ROWS
    hub_setup = _register(dsn, schema)  # table "enterprises" found through the source's schema setting

    report = _sync(hub_setup.resource_code)

    (count,) = pg_execute(dsn, f'SELECT count(*) FROM "{schema}".enterprises')[0]
    version = latest(hub_setup.resource_code)
    assert (report.version, version.number) == (1, 1)
    assert version.manifest["row_count"] == version.row_count == report.rows_published == count == ROWS
    assert report.rows_quarantined == 0 and version.quarantined_count == 0

    # Content: every value equals what PostgreSQL returns for the same row.
    source_rows = pg_rows(dsn, f'"{schema}".enterprises')
    published = read_version(version)
    published_rows = table_rows(published)
    assert rows_digest(published_rows) == rows_digest(source_rows), first_difference(published_rows, source_rows)

    # The digest above compares canonical spellings; check the kinds of values too.
    first = dict(zip(published.column_names, (published.column(c)[0].as_py() for c in published.column_names)))
    assert isinstance(first["reg_capital"], Decimal) and first["reg_capital"].as_tuple().exponent == -2
    assert all(d.as_tuple().exponent == -2 for d in published.column("reg_capital").to_pylist())
    assert first["updated_at"].utcoffset() is not None  # timestamptz stays an instant
    assert any("\u4e00" <= ch <= "\u9fff" for ch in first["name"])  # Chinese text survived
    assert published.column("name").to_pylist() == [r[2] for r in source_rows]

    # Types: the manifest's schema and the files' schema keep decimals, dates and instants.
    folder = resolve(version.path)
    schema_of_file = pq.ParquetFile(folder / version.manifest["files"][0]["path"]).schema_arrow
    assert schema_of_file.field("reg_capital").type == pa.decimal128(18, 2)
    assert schema_of_file.field("established").type == pa.date32()
    assert schema_of_file.field("updated_at").type == pa.timestamp("us", tz="UTC")
    manifest_types = {f["name"]: f["type"] for f in version.manifest["schema"]}
    assert manifest_types["reg_capital"] == "decimal128(18, 2)"

    # Integrity: each listed file's SHA-256 matches its bytes, and the manifest file matches the registry.
    assert version.manifest["files"], "a version lists at least one file"
    for entry in version.manifest["files"]:
        path = folder / entry["path"]
        assert _sha256(path) == entry["sha256"]
        assert path.stat().st_size == entry["bytes"]
    assert _sha256(folder / "manifest.json") == version.manifest_sha256
    assert json.loads((folder / "manifest.json").read_text())["row_count"] == ROWS

    runs = sync_runs(hub_setup.resource_code)
    assert [(r.status, r.mode, r.rows_read, r.rows_published) for r in runs] == [("published", "full", ROWS, ROWS)]


def test_incremental_sync_follows_source_changes(hub: Path, source: tuple[str, str]) -> None:
    dsn, schema = source
    table = f'"{schema}".enterprises'
    load_postgres(dsn, rows=ROWS, seed=12, schema=schema)
    hub_setup = _register(dsn, schema, table=f"{schema}.enterprises")  # schema-qualified table name
    _sync(hub_setup.resource_code)
    v1 = latest(hub_setup.resource_code)
    v1_digest = rows_digest(table_rows(read_version(v1)))
    cursor_after_v1 = cursor_value(hub_setup.resource_code)
    assert cursor_after_v1 is not None

    assert mutate_postgres(dsn, "enterprises", changed=40, seed=5, schema=schema) == 40
    # A brand-new row arrives too (updated_at = now()), so the version grows.
    pg_execute(dsn, f"""INSERT INTO {table} SELECT {ROWS + 1}, uscc, '上海新设科技有限公司', legal_rep, legal_rep_id,
                        reg_capital, established, status, address, industry, now() FROM {table} WHERE id = 1""")

    report = _sync(hub_setup.resource_code)
    assert report.version == 2 and report.mode == "incremental"
    v2 = latest(hub_setup.resource_code)
    assert v2.number == 2 and v2.row_count == ROWS + 1
    _assert_version_equals_source(v2, dsn, table)

    run = sync_runs(hub_setup.resource_code)[-1]
    assert run.status == "published" and run.mode == "incremental"
    assert 41 <= run.rows_read < ROWS  # only the changed rows (and ties on the old cursor) were read

    cursor_after_v2 = cursor_value(hub_setup.resource_code)
    assert datetime.fromisoformat(cursor_after_v2) > datetime.fromisoformat(cursor_after_v1)
    (source_max,) = pg_execute(dsn, f"SELECT max(updated_at) FROM {table}")[0]
    assert datetime.fromisoformat(cursor_after_v2) == source_max
    assert v2.manifest["watermark"]["value"] == cursor_after_v2

    # The earlier version is immutable: still there, still the old content.
    old = [v for v in versions(hub_setup.resource_code) if v.number == 1][0]
    assert rows_digest(table_rows(read_version(old))) == v1_digest != rows_digest(table_rows(read_version(v2)))


def test_rows_tied_on_the_cursor_are_neither_lost_nor_duplicated(hub: Path, source: tuple[str, str]) -> None:
    dsn, schema = source
    table = f'"{schema}".enterprises'
    rows = 2_000
    load_postgres(dsn, rows=rows, seed=13, schema=schema)
    tied = (10, 20, 30, 40, 50)
    # Several rows share the exact maximum updated_at.
    pg_execute(dsn, f"UPDATE {table} SET updated_at = (SELECT max(updated_at) + interval '1 day' FROM {table}) "
                    f"WHERE id IN {tied}")
    (tie_value,) = pg_execute(dsn, f"SELECT max(updated_at) FROM {table}")[0]
    hub_setup = _register(dsn, schema)
    _sync(hub_setup.resource_code)
    assert datetime.fromisoformat(cursor_value(hub_setup.resource_code)) == tie_value
    _assert_version_equals_source(latest(hub_setup.resource_code), dsn, table)

    # One tied row changes without moving its timestamp, and a new row arrives with the same timestamp.
    pg_execute(dsn, f"UPDATE {table} SET name = '上海同刻变更贸易有限公司', reg_capital = 123.45 WHERE id = 30")
    pg_execute(dsn, f"""INSERT INTO {table} SELECT 9001, uscc, '上海同刻新设有限公司', legal_rep, legal_rep_id,
                        reg_capital, established, status, address, industry, updated_at FROM {table} WHERE id = 10""")
    report = _sync(hub_setup.resource_code)
    assert report.mode == "incremental"

    v2 = latest(hub_setup.resource_code)
    assert v2.number == 2 and v2.row_count == rows + 1
    _assert_version_equals_source(v2, dsn, table)
    published = read_version(v2)
    ids = published.column("id").to_pylist()
    assert len(ids) == len(set(ids))
    by_id = dict(zip(ids, published.column("name").to_pylist()))
    assert by_id[30] == "上海同刻变更贸易有限公司" and by_id[9001] == "上海同刻新设有限公司"
    assert set(tied) <= set(ids)

    # Nothing changed since: another sync re-reads the ties, finds them as published, and publishes nothing.
    report = _sync(hub_setup.resource_code)
    assert report.version is None and report.rows_read == len(tied) + 1
    assert latest(hub_setup.resource_code).number == 2
    _assert_version_equals_source(latest(hub_setup.resource_code), dsn, table)


def test_unrepresentable_rows_are_quarantined_with_a_reason(hub: Path, source: tuple[str, str]) -> None:
    from pipeline.paths import quarantine_file

    dsn, schema = source
    table = f'"{schema}".filings'
    # No primary key constraint, so the source can hold a NULL id; numeric without precision maps to
    # decimal128(38, 10), so 40 integer digits or 12 decimal places cannot be represented.
    pg_execute(dsn, f"CREATE TABLE {table} (id bigint, amount numeric, title text, updated_at timestamptz)")
    pg_execute(dsn, f"""INSERT INTO {table} SELECT g, (g * 1.25)::numeric, '申报' || g,
                        timestamptz '2026-03-01 08:00:00+08' + g * interval '1 minute'
                        FROM generate_series(1, 500) g""")
    bad = {
        1001: "1" + "0" * 40,            # exceeds decimal128(38, 10)
        1002: "0.123456789012",          # more than 10 decimal places
        1003: "NaN",                     # not a number Arrow can hold
    }
    for key, amount in bad.items():
        pg_execute(dsn, f"INSERT INTO {table} VALUES (%s, %s::numeric, '异常申报', now())", (key, amount))
    pg_execute(dsn, f"INSERT INTO {table} VALUES (NULL, 5.00, '无编号申报', now())")
    # 30 significant digits: more than Python's default decimal context, but within decimal128(38, 10).
    pg_execute(dsn, f"INSERT INTO {table} VALUES (1004, 12345678901234567890.1234567890, '大额申报', now())")

    hub_setup = _register(dsn, schema, table="filings")
    report = _sync(hub_setup.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (505, 501, 4)
    run = sync_runs(hub_setup.resource_code)[-1]
    assert run.status == "published"
    assert run.rows_read == run.rows_published + run.rows_quarantined == 505
    version = latest(hub_setup.resource_code)
    assert version.row_count == 501 and version.quarantined_count == 4
    assert version.manifest["quarantined_count"] == 4 and version.manifest["rows_read"] == 505

    published = read_version(version)
    published_ids = published.column("id").to_pylist()
    assert None not in published_ids and not set(bad) & set(published_ids)
    amounts = dict(zip(published_ids, published.column("amount").to_pylist()))
    assert amounts[1004] == Decimal("12345678901234567890.1234567890")
    assert amounts[7] == Decimal("8.75")
    assert published.schema.field("amount").type == pa.decimal128(38, 10)

    quarantined = pq.read_table(quarantine_file(hub_setup.resource_id, run.id)).to_pylist()
    assert len(quarantined) == 4
    by_id = {row["id"]: row for row in quarantined}
    assert set(by_id) == {"1001", "1002", "1003", None}  # quarantined values are kept as text
    for key in bad:
        row = by_id[str(key)]
        assert row["_rule"] == "type_conversion"
        assert row["_reason"].startswith("amount=") and bad[key].lower() in row["_reason"].replace("'", "").lower()
        assert row["title"] == "异常申报"
    assert "exceeds precision 38" in by_id["1001"]["_reason"]
    assert "more than 10 decimal places" in by_id["1002"]["_reason"]
    assert by_id[None]["_rule"] == "key_not_null" and by_id[None]["title"] == "无编号申报"
    assert by_id[None]["_reason"]
    # The quarantine file is not part of what consumers download.
    assert all("quarantine" not in entry["path"] for entry in version.manifest["files"])
    assert str(amounts[7]) == "8.7500000000"  # the column's scale, 10, is kept
