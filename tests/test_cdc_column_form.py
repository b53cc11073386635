"""Change capture on a table rebuilt or redefined at the source, whose columns may come in another order or with
other nullability flags than the published version's (pipeline.cdc_layer, pipeline.conform), against a private
PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

A table rebuilt and renamed into place is in no publication until the next run puts it back, and the same
names and types in another order come only from a table rebuilt or a column dropped and added again: each
changes rows without a change in the slot, so such a run reads a snapshot, saying why. Other nullability flags
are conformed and the changes stacked as a layer. Before: the changes were missed ("no change") and then every
run failed casting the carried rows to the table's new order, or every run rewrote the whole version."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.helpers import latest, pg_execute, read_version, versions
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import assert_published_matches_source, cursor, register, slot, slot_name_of, source  # noqa: F401

REORDERED = "updated_at, status, id, name, uscc, reg_capital, established"


def _change(dsn: str) -> None:
    pg_execute(dsn, "UPDATE enterprises SET status = '吊销' WHERE id IN (1, 2); DELETE FROM enterprises WHERE id = 5; "
                    "INSERT INTO enterprises (id, uscc, name) VALUES (6, '91310000MA1FL0006X', '上海长宁设计有限公司')")


def _assert_snapshot(code: str, dsn: str, report, reason: str) -> None:  # noqa: ANN001 - CdcReport
    version = latest(code)
    assert report.mode == "cdc-snapshot" and report.version == version.number, report
    assert reason in report.note and reason in version.manifest["watermark"]["snapshot"], "the reason is recorded"
    assert not any(e.get("folder") or e.get("deleted") for e in version.manifest["files"]), "a snapshot"
    assert_published_matches_source(code, dsn)
    assert slot(dsn, slot_name_of(code))[0] == cursor(code)


def _assert_layered_after(code: str, dsn: str, base) -> None:  # noqa: ANN001 - DatasetVersion
    """The next change is a layer on ``base``, and a quiet run after it publishes nothing."""
    from pipeline.cdc import sync_cdc

    pg_execute(dsn, "UPDATE enterprises SET name = '上海黄浦智慧物流有限公司' WHERE id = 3")
    report = sync_cdc(resource_code=code)
    layer = latest(code)
    assert report.mode == "cdc" and layer.number == base.number + 1
    assert {e.get("folder") for e in layer.manifest["files"]} == {base.path, None}
    assert read_version(layer).schema == read_version(base).schema
    assert_published_matches_source(code, dsn)
    quiet = sync_cdc(resource_code=code)
    assert quiet.mode == "cdc" and quiet.version is None
    assert versions(code)[-1].number == layer.number


def test_a_table_rebuilt_outside_the_publication_is_read_again(source: str) -> None:  # noqa: F811
    """A migration rebuilds the table (same columns, same order) and renames it into place: the new table is in
    no publication until the next run adds it, so the changes made meanwhile never reach the slot. They had
    been missed: the run said "no change" and the version stayed stale."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(source, "CREATE TABLE rebuilt (LIKE enterprises INCLUDING ALL); "
                       "INSERT INTO rebuilt SELECT * FROM enterprises; DROP TABLE enterprises; "
                       "ALTER TABLE rebuilt RENAME TO enterprises")
    _change(source)

    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, "was not in publication")
    _assert_layered_after(code, source, latest(code))


def test_a_table_rebuilt_with_its_columns_in_another_order_is_read_again(source: str) -> None:  # noqa: F811
    """Rebuilt with the columns in another order, in one transaction that puts it back in the publication, so
    the slot misses none of the later changes. The rows came from the rebuild, not from the slot: the run reads
    a snapshot (in the table's new order) instead of failing on every run (ValueError casting the carried rows
    to the new order), and capture goes on as layers."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(source, f"CREATE TABLE rebuilt AS SELECT {REORDERED} FROM enterprises; DROP TABLE enterprises; "
                       "ALTER TABLE rebuilt RENAME TO enterprises; ALTER TABLE enterprises ADD PRIMARY KEY (id); "
                       f'ALTER PUBLICATION "{slot_name_of(code)}" ADD TABLE enterprises')
    _change(source)

    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, "another order")
    snapshot = latest(code)
    assert read_version(snapshot).schema.names == [c.strip() for c in REORDERED.split(",")]
    assert snapshot.manifest["changes"]["schema_changed"]
    _assert_layered_after(code, source, snapshot)


def test_a_column_dropped_and_added_again_is_read_again(source: str) -> None:  # noqa: F811
    """Same names and types in another order, the same table: a column dropped and added again holds new values
    in every row without one change in the slot, which a layer would never publish. No other change follows:
    the run had said "no change" (the dropped values stayed published), then every run with a change failed."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(source, "ALTER TABLE enterprises DROP COLUMN status; "
                       "ALTER TABLE enterprises ADD COLUMN status text NOT NULL DEFAULT '存续'")

    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, "another order")
    assert set(read_version(latest(code)).column("status").to_pylist()) == {"存续"}
    _assert_layered_after(code, source, latest(code))


def test_a_not_null_flag_changed_at_the_source_is_layered(source: str) -> None:  # noqa: F811
    """Change capture publishes every column nullable, whatever the table declares, as the other reads of a
    PostgreSQL table do: a NOT NULL added or dropped at the source changes nothing published (already so)."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    v1 = latest(code)
    assert all(f.nullable for f in read_version(v1).schema)
    pg_execute(source, "ALTER TABLE enterprises ALTER COLUMN name DROP NOT NULL; "
                       "ALTER TABLE enterprises ALTER COLUMN reg_capital SET DEFAULT 0; "
                       "UPDATE enterprises SET reg_capital = 0 WHERE reg_capital IS NULL; "
                       "ALTER TABLE enterprises ALTER COLUMN reg_capital SET NOT NULL; "
                       "UPDATE enterprises SET name = NULL WHERE id = 4")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and latest(code).number == 2
    assert {e.get("folder") for e in latest(code).manifest["files"]} == {v1.path, None}
    assert read_version(latest(code)).schema == read_version(v1).schema
    assert_published_matches_source(code, source)


def test_published_not_null_flags_are_conformed_and_a_null_reads_a_snapshot(
        source: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    """A snapshot whose reader reports the table's NOT NULL constraints (the catalogue knows them) and changes
    that come without them: the same columns, other flags. The changes take the published flags and are
    stacked as a layer (they had made every run rewrite the whole version). A NULL in a column published
    NOT NULL is a change of the column itself: that run reads a snapshot, naming the column."""
    from connectors.postgres_cdc import ChangeCapture
    from pipeline.cdc import sync_cdc

    read_table = ChangeCapture._read_table

    def reporting_not_null(self, conn, table, batch_rows):  # noqa: ANN001, ANN202 - the reader's own signature
        required = {c.name for c in table.columns if not c.nullable}
        for batch in read_table(self, conn, table, batch_rows):
            yield batch.cast(pa.schema([f.with_nullable(f.name not in required) for f in batch.schema]))

    monkeypatch.setattr(ChangeCapture, "_read_table", reporting_not_null)
    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    v1 = latest(code)
    published = read_version(v1).schema
    assert not published.field("name").nullable and published.field("status").nullable

    _change(source)
    report = sync_cdc(resource_code=code)
    v2 = latest(code)
    assert report.mode == "cdc" and v2.number == 2
    assert {e.get("folder") for e in v2.manifest["files"]} == {v1.path, None}, "a layer on v1"
    assert sum(e["rows"] for e in v2.manifest["files"] if not e.get("folder")) == 3, "only the rows changed"
    assert read_version(v2).schema == published, "the changes take the published flags"
    assert_published_matches_source(code, source)
    assert sync_cdc(resource_code=code).version is None

    pg_execute(source, "ALTER TABLE enterprises ALTER COLUMN name DROP NOT NULL; "
                       "UPDATE enterprises SET name = NULL WHERE id = 4")
    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, "name")
    assert read_version(latest(code)).schema.field("name").nullable


def test_which_changes_are_stacked_and_which_read_a_snapshot() -> None:
    """Other nullability flags are stacked (a NULL in a column published NOT NULL refused before the run is
    recorded); another order, another column or a table missing from the publication reads a snapshot; types
    spelt otherwise carry the previous rows forward. A NULL only the contract's conversion makes stops the run."""
    from core.errors import FatalError
    from pipeline.cdc_layer import layer_form, layer_rows, snapshot_reason
    from pipeline.schema_drift import SchemaMoved

    published = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("name", pa.string())])
    read = pa.schema([pa.field("id", pa.int32()), pa.field("name", pa.string())])

    def reason(schema: pa.Schema, added: bool = False) -> str | None:
        return snapshot_reason(published=published, read=schema, table="s.t", publication="p", publication_added=added)

    assert reason(read) is None and reason(published) is None
    assert "another order" in reason(pa.schema([read.field("name"), read.field("id")]))
    assert "+status (string)" in reason(read.append(pa.field("status", pa.string())))
    assert "was not in publication p" in reason(published, added=True)

    assert layer_form(published, read, rows=[["1", "a"], None, ["2", None]]) == published
    assert layer_form(published, published, rows=[["1", "a"]]) == published
    with pytest.raises(SchemaMoved, match="id"):
        layer_form(published, read, rows=[["1", "a"], [None, "b"]])
    assert layer_form(published, pa.schema([read.field("id"), pa.field("name", pa.large_string())]), rows=[]) is None
    assert layer_form(None, read, rows=[]) is None
    late = pa.record_batch([pa.array([None], pa.int32()), pa.array(["a"])], schema=read)
    with pytest.raises(FatalError, match="--full"):
        layer_rows(late, published, resource_code="101001/0001")
