"""Source changes that leave nothing in the slot and no difference in the table's columns (names, types,
order), against a private PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

The last column dropped and added again with another default, a table rebuilt in the same column order and put
back in the publication in the same transaction, a column retyped in place with a USING expression: each sets
values in rows without a change in the slot, and the run had said "no change" (the version stayed stale for
good). The cursor state now keeps the table's identity (pg_class oid, each column's attnum and type,
pipeline.cdc_identity), and a run that finds it changed reads a snapshot, its reason recorded. A retype to the
type the column has (USING) changed none of those: the storage and the column's catalogue entry both changing
tell it. A cursor state from before the identity was kept records it on its next run without a snapshot."""

from __future__ import annotations

import pytest

from tests.helpers import latest, pg_execute, read_version
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import assert_published_matches_source, register, slot_name_of, source  # noqa: F401
from tests.test_cdc_column_form import _assert_layered_after, _assert_snapshot

READDED = ("ALTER TABLE enterprises DROP COLUMN updated_at; "
           "ALTER TABLE enterprises ADD COLUMN updated_at timestamptz NOT NULL DEFAULT '2030-01-01 08:00:00+08'")
REBUILT = ("CREATE TABLE rebuilt (LIKE enterprises INCLUDING ALL); "
           "INSERT INTO rebuilt SELECT id, uscc, name || '（迁移）', reg_capital, established, status, updated_at "
           "FROM enterprises; DROP TABLE enterprises; ALTER TABLE rebuilt RENAME TO enterprises; "
           'ALTER PUBLICATION "{publication}" ADD TABLE enterprises')
RETYPED = "ALTER TABLE enterprises ALTER COLUMN name TYPE varchar(200) USING name || '（更名）'"
# to the type it has: the catalogue's types stay as they were, only the storage and the column's entry change
REWRITTEN = "ALTER TABLE enterprises ALTER COLUMN reg_capital TYPE numeric(18, 2) USING reg_capital * 2"


def _identity(code: str) -> dict | None:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.versions import cursor_state

    with session_scope() as session:
        return cursor_state(session, resource=get_resource(session, code=code)).source_identity


@pytest.mark.parametrize(("ddl", "reason"), [(READDED, "dropped and added again"), (REBUILT, "rebuilt"),
                                             (RETYPED, "changed type"), (REWRITTEN, "rewritten in place")],
                         ids=["readded", "rebuilt", "retyped", "rewritten"])
def test_a_change_outside_the_slot_reads_a_snapshot(source: str, ddl: str, reason: str) -> None:  # noqa: F811
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    before = _identity(code)
    assert before and before["columns"], "the snapshot recorded the table's identity"
    pg_execute(source, ddl.format(publication=slot_name_of(code)))

    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, reason)
    assert _identity(code) != before
    _assert_layered_after(code, source, latest(code))


def _autocommit(dsn: str, statement: str) -> None:
    """A statement that cannot run in a transaction block (VACUUM)."""
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def test_new_storage_without_a_column_rewritten_reads_no_snapshot(source: str) -> None:  # noqa: F811
    """VACUUM FULL, CLUSTER and TRUNCATE give the table new storage and change no row unseen (a TRUNCATE is in
    the slot); a default set changes a column's entry and no row: none of them costs a snapshot."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    for ddl in ("VACUUM FULL enterprises", "CLUSTER enterprises USING enterprises_pkey",
                "ALTER TABLE enterprises ALTER COLUMN status SET DEFAULT '存续'"):
        _autocommit(source, ddl)
        pg_execute(source, "UPDATE enterprises SET status = status || '.' WHERE id = 1")
        report = sync_cdc(resource_code=code)
        assert report.mode == "cdc" and report.upserts == 1, (ddl, report)
    assert_published_matches_source(code, source)


def test_vacuum_full_after_a_column_added_with_a_default_reads_no_snapshot(source: str) -> None:  # noqa: F811
    """A column added with a default keeps that value in its catalogue entry (atthasmissing) until the table is
    rewritten; VACUUM FULL writes it into the rows and clears the entry: new storage and a column's entry
    written, as a USING retype shows, where no row changed. It had cost a needless snapshot. A USING retype of
    such a column still reads one: its default is stored again (pg_attrdef), which VACUUM FULL leaves as it was."""
    from pipeline.cdc import sync_cdc

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(source, "ALTER TABLE enterprises ADD COLUMN grade int NOT NULL DEFAULT 3")
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"  # a column added: a snapshot, needed
    _autocommit(source, "VACUUM FULL enterprises")
    pg_execute(source, "UPDATE enterprises SET status = status || '.' WHERE id = 1")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.upserts == 1, report
    assert_published_matches_source(code, source)

    pg_execute(source, "ALTER TABLE enterprises ADD COLUMN rank int NOT NULL DEFAULT 5")
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    pg_execute(source, "ALTER TABLE enterprises ALTER COLUMN rank TYPE int USING rank * 2")
    _assert_snapshot(code, source, sync_cdc(resource_code=code), "rewritten in place")


def test_a_cursor_state_without_an_identity_records_it_without_a_snapshot(source: str) -> None:  # noqa: F811
    """Upgrading: a state from before the identity was kept gets it on the next run, quiet or not, with no
    snapshot; from then on a change outside the slot is seen."""
    from pipeline.cdc import sync_cdc
    from registry.db import session_scope
    from registry.exchange.models import CursorState

    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    recorded = _identity(code)
    with session_scope() as session:
        for state in session.query(CursorState).all():
            state.source_identity = None

    quiet = sync_cdc(resource_code=code)
    assert quiet.mode == "cdc" and quiet.version is None
    assert _identity(code) == recorded

    with session_scope() as session:
        for state in session.query(CursorState).all():
            state.source_identity = None
    pg_execute(source, "UPDATE enterprises SET status = '吊销' WHERE id = 2")
    changed = sync_cdc(resource_code=code)
    assert changed.mode == "cdc" and changed.version == 2
    assert _identity(code) == recorded
    assert_published_matches_source(code, source)

    pg_execute(source, READDED)
    report = sync_cdc(resource_code=code)
    _assert_snapshot(code, source, report, "dropped and added again")
    assert set(read_version(latest(code)).column("updated_at").to_pylist()) == {
        row[0] for row in pg_execute(source, "SELECT DISTINCT updated_at FROM enterprises")}


def test_identity_reasons() -> None:
    from pipeline.cdc_identity import identity_reason

    table = {"oid": 100, "columns": [["id", 1, 23, -1], ["name", 2, 25, -1], ["status", 3, 25, -1]]}
    assert identity_reason(recorded=None, current=table, table="s.t") is None, "an old state: recorded, no snapshot"
    assert identity_reason(recorded=table, current=table, table="s.t") is None
    assert "rebuilt" in identity_reason(recorded=table, current={**table, "oid": 200}, table="s.t")
    readded = {**table, "columns": [*table["columns"][:2], ["status", 4, 25, -1]]}
    assert "status" in identity_reason(recorded=table, current=readded, table="s.t")
    assert "dropped and added again" in identity_reason(recorded=table, current=readded, table="s.t")
    retyped = {**table, "columns": [table["columns"][0], ["name", 2, 1043, 204], table["columns"][2]]}
    assert "name" in identity_reason(recorded=table, current=retyped, table="s.t")
    assert "changed type" in identity_reason(recorded=table, current=retyped, table="s.t")

    stored = {**table, "storage": 7, "altered": {"id": "10", "name": "10", "status": "10"}}
    vacuumed = {**stored, "storage": 8}
    assert identity_reason(recorded=stored, current=vacuumed, table="s.t") is None, "VACUUM FULL: no row changed"
    defaulted = {**stored, "altered": {**stored["altered"], "status": "12"}}
    assert identity_reason(recorded=stored, current=defaulted, table="s.t") is None, "a default set: no rewrite"
    rewritten = {**defaulted, "storage": 8}
    assert "status" in identity_reason(recorded=stored, current=rewritten, table="s.t")
    assert "rewritten in place" in identity_reason(recorded=stored, current=rewritten, table="s.t")
    assert identity_reason(recorded=table, current=rewritten, table="s.t") is None, "a state without storage"
    held = {**stored, "missing": {"status": 41}, "defaults": {"status": 41}}
    written_out = {**held, "storage": 8, "altered": {**stored["altered"], "status": "12"}, "missing": {}}
    assert identity_reason(recorded=held, current=written_out, table="s.t") is None, "VACUUM FULL: default written"
    redefaulted = {**written_out, "defaults": {"status": 42}}
    assert "status" in identity_reason(recorded=held, current=redefaulted, table="s.t"), "USING: default stored again"
