"""An incremental run that reads the published columns in another order, or with other nullability flags,
stacks a layer like any other (pipeline.conform), against a PostgreSQL source: the version is the previous
files referenced plus the rows read, it equals the source row for row, and a quiet run after it publishes
nothing. Such a run used to take the snapshot path every time: it failed casting the carried rows to its own
column order, or rewrote the whole table for a nullability flag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from samples.loaders import load_postgres
from tests.helpers import (
    ENTERPRISE_COLUMNS,
    first_difference,
    latest,
    pg_execute,
    pg_rows,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    rows_digest,
    table_rows,
    versions,
)
from tests.services import require_postgres

ROWS = 3_000
LATE = "2031-01-01 09:00:00+08"  # later than any loaded row's cursor value
LATER = "2031-02-01 09:00:00+08"
REORDERED = ("updated_at", "status", "id", "name", "uscc", "legal_rep", "legal_rep_id", "reg_capital", "established",
             "address", "industry")


@pytest.fixture
def source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=83, schema=schema)
        yield dsn, schema


def _assert_equals_source(version, dsn: str, table: str) -> None:  # noqa: ANN001 - DatasetVersion
    source = pg_rows(dsn, table, order_by="id")
    published = table_rows(read_version(version, sort_by="id"), ENTERPRISE_COLUMNS)
    assert len(published) == len(source) == version.row_count
    assert rows_digest(published) == rows_digest(source), first_difference(published, source)


def _assert_layer(version, rows_read: int, base) -> None:  # noqa: ANN001 - DatasetVersion
    """The previous version's files referenced as they are, and files of its own holding the rows read."""
    files = version.manifest["files"]
    referenced = [e for e in files if e.get("folder")]
    own = [e for e in files if not e.get("folder")]
    assert referenced and {e["folder"] for e in referenced} == {base.path}, "a layer on the previous version"
    assert sum(e["rows"] for e in own) == rows_read < ROWS // 10, "no whole rewrite: only the rows read"
    assert version.manifest["changes"]["file"]


def _change(dsn: str, table: str) -> None:
    pg_execute(dsn, f"UPDATE {table} SET status = '注销', reg_capital = reg_capital + 1, updated_at = '{LATE}' "
                    f"WHERE id BETWEEN 1 AND 5")
    pg_execute(dsn, f"DELETE FROM {table} WHERE id IN (40, 41)")


def test_a_source_reading_its_columns_in_another_order_is_layered(hub_home: Path, source: tuple[str, str]) -> None:
    """The source table is rebuilt by a migration with its columns in another order (CREATE TABLE ... AS,
    renamed into place): same names, same types, so no schema change; the run's rows are published in v1's
    column order."""
    from pipeline.sync import sync_resource

    dsn, schema = source
    table = f'"{schema}".enterprises'
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret).resource_code
    assert sync_resource(resource_code=code).version == 1
    v1 = latest(code)

    pg_execute(dsn, f'CREATE TABLE "{schema}".rebuilt AS SELECT {", ".join(REORDERED)} FROM {table}')
    pg_execute(dsn, f'DROP TABLE {table}; ALTER TABLE "{schema}".rebuilt RENAME TO enterprises; '
                    f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    assert [c for c, in pg_execute(dsn, "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                        "%s AND table_name = 'enterprises' ORDER BY ordinal_position", (schema,))] \
        == list(REORDERED)
    _change(dsn, table)

    report = sync_resource(resource_code=code)
    v2 = latest(code)
    assert report.mode == "incremental" and v2.number == 2
    _assert_layer(v2, report.rows_read, v1)
    assert read_version(v2).schema == read_version(v1).schema, "published in v1's column order"
    _assert_equals_source(v2, dsn, table)
    changes = v2.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 5, 2)

    quiet = sync_resource(resource_code=code)
    assert quiet.mode == "incremental" and quiet.version is None
    assert [v.number for v in versions(code)] == [1, 2]


def test_a_full_read_reporting_not_null_is_layered_on(hub_home: Path, source: tuple[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A full read whose reader reports the table's NOT NULL constraints (the catalogue knows them) and an
    incremental read whose query result cannot: the same columns, other nullability flags. The run's rows take
    the published flags. A NULL in a column published NOT NULL is a change of the column itself: that run reads
    in full and publishes a snapshot equal to the source."""
    from connectors.postgres import PostgresConnector
    from pipeline.sync import sync_resource

    scan = PostgresConnector._scan

    def reporting_not_null(self, stream, columns):  # noqa: ANN001, ANN202 - the connector's own signature
        required = {c.name for c in columns if not c.nullable}
        for batch in scan(self, stream, columns):
            yield batch.cast(pa.schema([f.with_nullable(f.name not in required) for f in batch.schema]))

    monkeypatch.setattr(PostgresConnector, "_scan", reporting_not_null)
    dsn, schema = source
    table = f'"{schema}".enterprises'
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret).resource_code
    assert sync_resource(resource_code=code).version == 1
    v1 = latest(code)
    published = read_version(v1).schema
    assert not published.field("id").nullable and not published.field("address").nullable, \
        "the full read published the NOT NULL flags"

    _change(dsn, table)
    report = sync_resource(resource_code=code)
    v2 = latest(code)
    assert report.mode == "incremental" and v2.number == 2
    _assert_layer(v2, report.rows_read, v1)
    assert read_version(v2).schema == published, "the layer's rows take the published flags"
    _assert_equals_source(v2, dsn, table)

    quiet = sync_resource(resource_code=code)
    assert quiet.mode == "incremental" and quiet.version is None
    assert [v.number for v in versions(code)] == [1, 2]

    pg_execute(dsn, f"ALTER TABLE {table} ALTER COLUMN address DROP NOT NULL")
    pg_execute(dsn, f"UPDATE {table} SET address = NULL, updated_at = '{LATER}' WHERE id = 7")
    report = sync_resource(resource_code=code)
    v3 = latest(code)
    assert report.mode == "full" and v3.number == 3
    assert not any(e.get("folder") or e.get("deleted") for e in v3.manifest["files"]), "a snapshot"
    assert read_version(v3).schema.field("address").nullable
    _assert_equals_source(v3, dsn, table)


def test_only_order_and_nullability_are_conformed() -> None:
    """Same names and types only: a column added, dropped or retyped (a wider integer, or text spelt
    large_string, which schema drift takes as the same type) takes the other path."""
    from pipeline.conform import published_form

    published = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
    assert published_form(published, published) is None
    assert published_form(published, pa.schema([published.field("name"), published.field("id")])) == published
    assert published_form(published, pa.schema([pa.field("id", pa.int64()), published.field("name")])) == published
    for other in ([pa.field("id", pa.int32(), nullable=False), published.field("name")],
                  [published.field("id"), pa.field("name", pa.large_string())],
                  [published.field("id")],
                  [*published, pa.field("status", pa.string())],
                  [published.field("id"), pa.field("title", pa.string())]):
        assert published_form(published, pa.schema(other)) is None, other
