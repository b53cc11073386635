"""Change capture on a table rebuilt or redefined at the source (pipeline.cdc_layer), against a private
PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

A table rebuilt and renamed into place is in no publication until the next run puts it back: that run reads a
snapshot, saying why. Before, the changes made meanwhile were missed ("no change")."""

from __future__ import annotations

from tests.helpers import latest, pg_execute, read_version, versions
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import assert_published_matches_source, cursor, register, slot, slot_name_of, source  # noqa: F401


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
