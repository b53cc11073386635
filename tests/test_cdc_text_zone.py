"""Change capture's snapshot of a text column the data contract declares `timestamp`, read from a PostgreSQL
cluster with wal_level=logical (tests/pg_cluster.py) in batches of two rows, where the rows read first hold no
value in it (pipeline.conform.ValueChoices, as the table read decides).

The snapshot took the column's type from its first batch alone: a batch of NULLs converted to UTC, so against a
version published without a zone the snapshot republished the column as UTC, the local texts read after it
taken as UTC instants. Now NULLs take the published choice and the first value decides; a value deciding
otherwise after NULLs were written re-types the staged parts (they hold only NULLs in it), so the snapshot
neither reads the table again nor drops its slot."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import latest, pg_execute, read_version
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import register, slot, slot_name_of
from tests.test_text_timestamp_zone import CONTRACT, LOCAL, ZONED  # the same contract as the table read's



@pytest.fixture
def permits(pg_logical_database: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:  # noqa: F811
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_CDC_SLOT_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("GOVSHARE_BATCH_ROWS", "2")
    reset_settings()
    pg_execute(pg_logical_database, "CREATE TABLE permits (id integer PRIMARY KEY, issued_at text)")
    code = register(pg_logical_database, table="permits")
    name = f"c{uuid.uuid4().hex[:8]}"
    (hub_home / "contracts").mkdir(parents=True, exist_ok=True)
    (hub_home / "contracts" / f"{name}.yaml").write_text(CONTRACT.format(name=name, code=code), encoding="utf-8")
    return pg_logical_database, code


def _issued(code: str) -> tuple[pa.DataType, list]:
    table = read_version(latest(code), sort_by="id")
    return table.schema.field("issued_at").type, [v and v.isoformat() for v in table.column("issued_at").to_pylist()]


def _schema_changes(code: str) -> list:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    with session_scope() as session:
        return [c.retyped for c in list_schema_changes(session, resource=get_resource(session, code=code))]


def test_snapshot_reading_nulls_first_keeps_the_published_zone(permits: tuple[str, str]) -> None:
    from pipeline.cdc import sync_cdc

    dsn, code = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, '2024-01-01 09:00:00'), (2, '2024-01-02 09:00:00')")
    assert sync_cdc(resource_code=code).version == 1
    assert _issued(code) == (LOCAL, ["2024-01-01T09:00:00", "2024-01-02T09:00:00"])

    # Rewritten so the snapshot's first batch holds only NULLs (rows come as stored: the new ones last).
    pg_execute(dsn, "DELETE FROM permits; INSERT INTO permits VALUES (8, NULL), (9, NULL), "
                    "(1, '2024-01-01 09:00:00'), (2, '2024-01-02 10:00:00')")
    report = sync_cdc(resource_code=code, full=True)
    assert (report.mode, report.version) == ("cdc-snapshot", 2)
    assert _issued(code) == (LOCAL, ["2024-01-01T09:00:00", "2024-01-02T10:00:00", None, None])
    assert _schema_changes(code) == []


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("2024-01-03 09:00:00", LOCAL, "2024-01-03T09:00:00"),
    ("2024-01-03 09:00:00+08:00", ZONED, "2024-01-03T01:00:00+00:00"),
])
def test_first_snapshot_with_nulls_first_publishes_what_the_values_say(permits: tuple[str, str], text: str,
                                                                       kind: pa.DataType, value: str) -> None:
    """No published version: the NULLs are written in the contract's first choice (UTC), and a value choosing
    otherwise re-types them in the staged parts; the snapshot keeps its slot (no second read)."""
    from pipeline.cdc import sync_cdc

    dsn, code = permits
    pg_execute(dsn, f"INSERT INTO permits VALUES (1, NULL), (2, NULL), (3, '{text}'), (4, NULL), "
                    "(5, '2024-01-05 09:00:00+08:00'), (6, '2024-01-06 09:00:00')")
    report = sync_cdc(resource_code=code)
    assert (report.mode, report.version, report.rows_quarantined) == ("cdc-snapshot", 1, 1)
    published, values = _issued(code)
    assert published == kind and values[:4] == [None, None, value, None]
    # of rows 5 and 6, the one of the other kind than row 3 is quarantined, the other exact
    assert values[4:] == (["2024-01-06T09:00:00"] if kind == LOCAL else ["2024-01-05T01:00:00+00:00"])
    assert slot(dsn, slot_name_of(code)) is not None
    # the change runs that follow stack on it: a local text, then a NULL, in the published zone
    pg_execute(dsn, "UPDATE permits SET issued_at = NULL WHERE id = 3")
    assert sync_cdc(resource_code=code).version == 2
    assert _issued(code)[0] == kind


def test_a_change_run_never_casts_a_text_of_the_other_kind(permits: tuple[str, str]) -> None:
    """A change run decides as a table read: its first value decides; against the published version it reads
    a snapshot (the texts now choose otherwise: a schema change, recorded), and a later text of the other kind
    is quarantined. Change runs had cast every change to the published type, so '09:00+08:00' in a column
    published without a zone was published as 01:00."""
    from pipeline.cdc import sync_cdc

    dsn, code = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, '2024-01-01 09:00:00'), (2, '2024-01-02 09:00:00')")
    assert sync_cdc(resource_code=code).version == 1

    # one change run: a local text first, then one with an offset (a batch of its own: two rows a batch)
    pg_execute(dsn, "INSERT INTO permits VALUES (3, '2024-01-03 09:00:00'), (4, NULL), "
                    "(5, '2024-01-05 09:00:00+08:00')")
    report = sync_cdc(resource_code=code)
    assert (report.mode, report.version, report.rows_quarantined) == ("cdc", 2, 1)
    assert _issued(code) == (LOCAL, ["2024-01-01T09:00:00", "2024-01-02T09:00:00", "2024-01-03T09:00:00", None])

    # a change run whose first value carries an offset: the texts now choose UTC, so a snapshot reads the table
    # and its own first value decides (row 1, local): the offset texts are quarantined, never cast
    pg_execute(dsn, "UPDATE permits SET issued_at = '2024-01-06 09:00:00+08:00' WHERE id = 2")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc-snapshot" and "issued_at" in report.note
    published, values = _issued(code)
    assert published == LOCAL and "2024-01-06T01:00:00" not in values
    assert values == ["2024-01-01T09:00:00", "2024-01-03T09:00:00", None]


def test_a_snapshot_records_one_schema_change_with_all_its_differences(permits: tuple[str, str]) -> None:
    """A snapshot whose table gained a column and whose first value in a column it had written NULLs in chooses
    another zone than the published one (the staged parts re-typed): one schema change, naming both. The run
    had recorded one at its first batch (the added column) and another after the re-type (both columns), and
    `govshare schema-changes` listed two changes, one of them compatible, for one run."""
    from core.errors import FatalError
    from pipeline.cdc import sync_cdc
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    dsn, code = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, '2024-01-01 09:00:00'), (2, '2024-01-02 09:00:00')")
    assert sync_cdc(resource_code=code).version == 1
    assert _issued(code)[0] == LOCAL

    # A column added, and the rows rewritten so the snapshot's first batch holds only NULLs in issued_at; the
    # texts now carry offsets.
    pg_execute(dsn, "ALTER TABLE permits ADD COLUMN note text; DELETE FROM permits; INSERT INTO permits VALUES "
                    "(8, NULL, 'a'), (9, NULL, 'b'), (1, '2024-01-01 09:00:00+08:00', 'c')")
    try:
        sync_cdc(resource_code=code)
    except FatalError:
        pass  # issued_at is the contract's and no longer holds local times: the run may not publish
    with session_scope() as session:
        changes = list_schema_changes(session, resource=get_resource(session, code=code))
        recorded = [({a["name"] for a in c.added}, {r["name"] for r in c.retyped}, c.run_id) for c in changes]
    assert len({run for _, _, run in recorded}) == 1 and len(recorded) == 1, recorded
    assert recorded[0][:2] == ({"note"}, {"issued_at"}), recorded


def test_a_snapshot_with_nulls_first_still_records_its_compatible_change(permits: tuple[str, str]) -> None:
    """Its NULLs first, the zone decided later as published: the added column is recorded once the table is read
    (not at the first batch, where the zone waited on a value), and the snapshot publishes."""
    from pipeline.cdc import sync_cdc
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    dsn, code = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, '2024-01-01 09:00:00'), (2, '2024-01-02 09:00:00')")
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(dsn, "ALTER TABLE permits ADD COLUMN note text; DELETE FROM permits; INSERT INTO permits VALUES "
                    "(8, NULL, 'a'), (9, NULL, 'b'), (1, '2024-01-01 09:00:00', 'c')")
    report = sync_cdc(resource_code=code)
    assert (report.mode, report.version) == ("cdc-snapshot", 2)
    assert _issued(code)[0] == LOCAL
    with session_scope() as session:
        changes = list_schema_changes(session, resource=get_resource(session, code=code))
        recorded = [(c.compatible, [a["name"] for a in c.added], c.retyped) for c in changes]
    assert recorded == [(True, ["note"], [])]
    assert latest(code).manifest["schema_change"]["added"][0]["name"] == "note"
