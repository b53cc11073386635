"""A text column the data contract declares `timestamp`, read from a real PostgreSQL table in batches of two rows,
where the rows read first hold no value in it (pipeline.conform.ValueChoices).

The zone of such a column (UTC when its texts carry an offset, none otherwise) is chosen by its values, and a
batch of NULLs has none: converted alone it said UTC. Against a version published without a zone, an
incremental run whose first batch was such re-read the whole table, and a full run stopped with a FatalError
("contract column changed type"). Now NULLs take the published choice (as change capture does,
pipeline.conform.contract_form), the first value read decides, and a value that decides otherwise after NULLs
were written in the standing type reads the table again with the values' choice: texts that now carry offsets
are still a schema change, and a first read whose first values come after NULLs publishes what they say."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import FatalError
from tests.helpers import latest, pg_execute, pg_source_config, read_version, register_resource, sync

CONTRACT = """name: {name}
key: [id]
resources: ['{code}']
columns:
  - {{name: id, type: integer, nullable: false}}
  - {{name: issued_at, type: timestamp}}
"""
TABLE = "CREATE TABLE permits (id integer PRIMARY KEY, issued_at text, updated_at timestamptz NOT NULL)"
# Rows 1-4 hold times without offsets; row 5, the latest by cursor, none: an incremental run re-reads it first.
ROWS = """INSERT INTO permits VALUES
    (1, '2024-01-01 09:00:00', '2024-01-01 08:00+08'), (2, '2024-01-02 09:00:00', '2024-01-02 08:00+08'),
    (3, '2024-01-03 09:00:00', '2024-01-03 08:00+08'), (4, '2024-01-04 09:00:00', '2024-01-04 08:00+08'),
    (5, NULL, '2024-01-05 08:00+08')"""
LOCAL, ZONED = pa.timestamp("us"), pa.timestamp("us", tz="UTC")


@pytest.fixture
def permits(pg_database: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_BATCH_ROWS", "2")
    reset_settings()
    pg_execute(pg_database, TABLE)
    config, secret = pg_source_config(pg_database)
    hub = register_resource(kind="postgresql", config=config, secret=secret, table="permits")
    name = f"c{uuid.uuid4().hex[:8]}"
    (hub_home / "contracts").mkdir(parents=True, exist_ok=True)
    (hub_home / "contracts" / f"{name}.yaml").write_text(CONTRACT.format(name=name, code=hub.resource_code),
                                                        encoding="utf-8")
    yield pg_database, hub


def _rewrite(dsn: str, rows: str) -> None:
    """The table holding ``rows`` in that order (a full read returns them as stored: the NULLs first)."""
    pg_execute(dsn, f"DELETE FROM permits; {rows}")


def _issued(version) -> tuple[pa.DataType, list]:  # noqa: ANN001 - DatasetVersion
    table = read_version(version, sort_by="id")
    return table.schema.field("issued_at").type, table.column("issued_at").to_pylist()


def _schema_changes(code: str) -> list:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    with session_scope() as session:
        return [(c.compatible, c.retyped) for c in list_schema_changes(session, resource=get_resource(session, code=code))]


def _first_sync(dsn: str, hub) -> None:  # noqa: ANN001 - Hub
    pg_execute(dsn, ROWS)
    assert sync(hub).version == 1
    kind, values = _issued(latest(hub.resource_code))
    assert kind == LOCAL and values[0].isoformat() == "2024-01-01T09:00:00", "published without a zone"


def test_incremental_run_reading_nulls_first_stacks_a_layer(permits: tuple[str, object]) -> None:
    dsn, hub = permits
    _first_sync(dsn, hub)
    pg_execute(dsn, "INSERT INTO permits VALUES (6, NULL, '2024-01-06 08:00+08'), "
                    "(7, '2024-01-07 09:00:00', '2024-01-07 08:00+08')")
    report = sync(hub)
    version = latest(hub.resource_code)
    assert (report.version, report.mode) == (2, "incremental"), "rows 5 and 6 (NULLs) came first: no full re-read"
    assert any(e.get("folder") for e in version.manifest["files"]), "a layer on v1"
    kind, values = _issued(version)
    assert kind == LOCAL and values[5:] == [None, values[6]] and values[6].isoformat() == "2024-01-07T09:00:00"
    assert _schema_changes(hub.resource_code) == []


def test_incremental_run_meeting_offsets_after_nulls_is_a_schema_change(permits: tuple[str, object]) -> None:
    """Every text rewritten with an offset, the changed rows read after two NULLs: the incremental run reads in
    full, and the full read, its NULLs first too, still sees the column change and stops."""
    dsn, hub = permits
    _first_sync(dsn, hub)
    pg_execute(dsn, "INSERT INTO permits VALUES (6, NULL, '2024-02-01 08:00+08'); "
                    "UPDATE permits SET updated_at = '2024-02-01 08:00+08' WHERE id = 5; "
                    "UPDATE permits SET issued_at = issued_at || '+08:00', updated_at = '2024-02-01 08:00+08' "
                    "WHERE issued_at IS NOT NULL")
    with pytest.raises(FatalError, match="issued_at"):
        sync(hub)
    assert _schema_changes(hub.resource_code) == [
        (False, [{"name": "issued_at", "from": str(LOCAL), "to": str(ZONED), "widening": False}])]
    assert latest(hub.resource_code).number == 1


def test_full_run_reading_nulls_first_keeps_the_published_zone(permits: tuple[str, object]) -> None:
    dsn, hub = permits
    _first_sync(dsn, hub)
    _rewrite(dsn, "INSERT INTO permits VALUES (8, NULL, '2024-01-08 08:00+08'), (9, NULL, '2024-01-09 08:00+08'), "
                  "(1, '2024-01-01 09:00:00', '2024-01-01 08:00+08'), (2, '2024-01-02 10:00:00', '2024-01-02 08:00+08')")
    report = sync(hub, full=True)
    assert (report.version, report.mode) == (2, "full")
    kind, values = _issued(latest(hub.resource_code))
    assert kind == LOCAL and [v and v.isoformat() for v in values] == \
        ["2024-01-01T09:00:00", "2024-01-02T10:00:00", None, None]
    assert _schema_changes(hub.resource_code) == []

    # The texts now carry offsets: another choice, a change of a contract column, still stops the run.
    _rewrite(dsn, "INSERT INTO permits VALUES (8, NULL, '2024-01-08 08:00+08'), (9, NULL, '2024-01-09 08:00+08'), "
                  "(1, '2024-01-01 09:00:00+08:00', '2024-01-01 08:00+08')")
    with pytest.raises(FatalError, match="issued_at"):
        sync(hub, full=True)
    assert _schema_changes(hub.resource_code) == [
        (False, [{"name": "issued_at", "from": str(LOCAL), "to": str(ZONED), "widening": False}])]
    assert latest(hub.resource_code).number == 2


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("2024-01-03 09:00:00+08:00", ZONED, "2024-01-03T01:00:00+00:00"),
    ("2024-01-03 09:00:00", LOCAL, "2024-01-03T09:00:00"),
])
def test_first_read_with_nulls_first_publishes_what_the_values_say(permits: tuple[str, object], text: str,
                                                                   kind: pa.DataType, value: str) -> None:
    dsn, hub = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, NULL, '2024-01-01 08:00+08'), (2, NULL, '2024-01-02 08:00+08'), "
                    f"(3, '{text}', '2024-01-03 08:00+08'), (4, NULL, '2024-01-04 08:00+08')")
    assert sync(hub).version == 1
    published, values = _issued(latest(hub.resource_code))
    assert published == kind and values[2].isoformat() == value and values[:2] + values[3:] == [None] * 3
    # The next full read, its NULLs first again, publishes nothing new: the same rows, the same type.
    assert sync(hub, full=True).version is None
    assert _schema_changes(hub.resource_code) == []


# Texts with and without offsets in one column: once the run's first value has decided the column's zone, a value
# of the other kind is quarantined as type_conversion, whichever batch it comes in. A later batch's texts were
# converted on their own and cast to the first batch's type: '09:00:00+08:00' published as 01:00 without a zone.
def _other_kind(key: int, text: str) -> tuple[tuple[str, str], str]:
    return (str(key), "type_conversion"), f"issued_at={text!r}: 不是有效的时间 / cannot be read as timestamp"


def _open_records(code: str) -> dict[tuple[str, str], str]:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.quality.quarantine import open_records

    with session_scope() as session:
        resource = get_resource(session, code=code)
        return {(r.key, r.rule): r.reason for r in open_records(session, resource_id=resource.id)}


def test_full_read_quarantines_texts_of_the_other_kind_in_any_batch(permits: tuple[str, object]) -> None:
    dsn, hub = permits
    pg_execute(dsn, "INSERT INTO permits VALUES (1, '2024-01-01 09:00:00', '2024-01-01 08:00+08'), "
                    "(2, '2024-01-02 09:00:00', '2024-01-02 08:00+08'), "
                    "(3, '2024-01-03 09:00:00+08:00', '2024-01-03 08:00+08'), "  # a later batch, led by an offset
                    "(4, '2024-01-04 09:00:00', '2024-01-04 08:00+08'), "
                    "(5, '2024-01-05 09:00:00', '2024-01-05 08:00+08'), "
                    "(6, '2024-01-06 09:00:00+08:00', '2024-01-06 08:00+08')")  # within a batch
    report = sync(hub)
    assert (report.version, report.rows_published, report.rows_quarantined) == (1, 4, 2)
    table = read_version(latest(hub.resource_code), sort_by="id")
    assert table.column("id").to_pylist() == [1, 2, 4, 5]
    kind, values = _issued(latest(hub.resource_code))
    assert kind == LOCAL and [v.isoformat() for v in values] == \
        ["2024-01-01T09:00:00", "2024-01-02T09:00:00", "2024-01-04T09:00:00", "2024-01-05T09:00:00"]
    assert _open_records(hub.resource_code) == dict([_other_kind(3, "2024-01-03 09:00:00+08:00"),
                                                     _other_kind(6, "2024-01-06 09:00:00+08:00")])


def test_incremental_run_quarantines_offsets_in_a_later_batch(permits: tuple[str, object]) -> None:
    """The run re-reads row 5 (NULL) and reads row 6 (no offset) first: the column stays without a zone, and
    row 7's offset, in the next batch, is quarantined, not cast to a local 01:00 (row 8 beside it is published)."""
    dsn, hub = permits
    _first_sync(dsn, hub)
    pg_execute(dsn, "INSERT INTO permits VALUES (6, '2024-01-06 09:00:00', '2024-01-06 08:00+08'), "
                    "(7, '2024-01-07 09:00:00+08:00', '2024-01-07 08:00+08'), "
                    "(8, '2024-01-08 09:00:00', '2024-01-08 08:00+08')")
    report = sync(hub)
    assert (report.version, report.mode, report.rows_quarantined) == (2, "incremental", 1)
    table = read_version(latest(hub.resource_code), sort_by="id")
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5, 6, 8]
    kind, values = _issued(latest(hub.resource_code))
    assert kind == LOCAL and [v and v.isoformat() for v in values[4:]] == \
        [None, "2024-01-06T09:00:00", "2024-01-08T09:00:00"]
    assert _open_records(hub.resource_code) == dict([_other_kind(7, "2024-01-07 09:00:00+08:00")])
    assert _schema_changes(hub.resource_code) == []


def test_full_run_records_one_schema_change_with_all_its_differences(permits: tuple[str, object]) -> None:
    """A column added and, after two NULLs, texts that now carry offsets: the full read reads again with the
    values' choice (TypesChosen) and stops; the run records one schema change naming both columns, not one
    for its first read (the added column) and another for the second."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    dsn, hub = permits
    _first_sync(dsn, hub)
    pg_execute(dsn, "ALTER TABLE permits ADD COLUMN note text")
    _rewrite(dsn, "INSERT INTO permits VALUES (8, NULL, '2024-01-08 08:00+08', 'a'), "
                  "(9, NULL, '2024-01-09 08:00+08', 'b'), (1, '2024-01-01 09:00:00+08:00', '2024-01-01 08:00+08', 'c')")
    with pytest.raises(FatalError, match="issued_at"):
        sync(hub, full=True)
    with session_scope() as session:
        changes = list_schema_changes(session, resource=get_resource(session, code=hub.resource_code))
        recorded = [({a["name"] for a in c.added}, {r["name"] for r in c.retyped}) for c in changes]
    assert recorded == [({"note"}, {"issued_at"})]
