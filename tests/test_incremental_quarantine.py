"""An incremental (cursor) read whose new value of a published key is quarantined withdraws the key's published
row, as a full read of the same table publishes none for it and as change capture withdraws it
(tests/test_cdc_kept_row.py): the three read paths of a keyed table agree (一数一源, the full read is the reference).

Before, the incremental read kept the key's old row: a consumer went on reading as current a value the source no
longer held, while a full read of the same source state published no row for the key. The new state waits in
quarantine, counted once however often it is read again, and once fixed at the source it is published again,
an insert in the change set."""

from __future__ import annotations

import uuid

import pyarrow.parquet as pq
import pytest

from tests.helpers import latest, pg_execute, pg_scratch_schema, pg_source_config, read_version, register_resource
from tests.services import require_postgres


def _published(code: str) -> list[dict]:
    """Every column of every row of the resource's latest version, by key."""
    return read_version(latest(code), sort_by="code").to_pylist()


def _change_set(code: str) -> dict[str, str]:
    """What the latest version's change set (the feed `changes --since N` serves) says of each key."""
    from pipeline.paths import resolve

    return {row["code"]: row["_change"] for row in pq.read_table(resolve(latest(code).path) / "changes.parquet",
                                                                  columns=["code", "_change"]).to_pylist()}


def _open_records(code: str) -> list[tuple[str, str]]:
    """The resource's open quarantine records: (key, rule)."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.quality.models import QuarantineRecord

    with session_scope() as session:
        resource = get_resource(session, code=code)
        return sorted((r.key, r.rule) for r in session.query(QuarantineRecord).filter_by(
            resource_id=resource.id, status="open"))


def _full_read(config: dict, secret: dict | None) -> list[dict]:
    """What a fresh full read of the same source state publishes: a resource of its own, read once."""
    from pipeline.sync import sync_resource

    code = register_resource(kind="postgresql", config=config, secret=secret, table="licences", key=("code",),
                             classification="101009", name=f"对照 {uuid.uuid4().hex[:4]}").resource_code
    assert sync_resource(resource_code=code).mode == "full"
    return _published(code)


@pytest.mark.parametrize("publishing", ["layer", "compacted", "whole-table"])
def test_a_quarantined_incremental_update_withdraws_the_published_row(hub_home, publishing: str,  # noqa: ANN001
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """b's new expiry day is infinity (no consumer can hold it): quarantined, b's published row is withdrawn
    (the change set says delete), and the version is what a full read of the same table publishes, every
    column. Read again while still bad, b is counted once; fixed at the source, b is an insert again."""
    import pipeline.extract
    from pipeline.sync import sync_resource

    if publishing == "compacted":  # past the layer limits: the layer worked out, then written as a snapshot
        monkeypatch.setattr(pipeline.extract, "compaction_due", lambda parts: True)
    elif publishing == "whole-table":  # a run whose rows cannot stack on the version carries the rest forward
        monkeypatch.setattr(pipeline.extract, "stackable", lambda *args, **kwargs: False)
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".licences'
        pg_execute(dsn, f"CREATE TABLE {table} (code text PRIMARY KEY, holder text, valid_to date, "
                        "updated_at timestamptz)")
        pg_execute(dsn, f"""INSERT INTO {table} VALUES ('a', '甲', '2027-01-31', '2026-03-01 09:00+08'),
            ('b', '乙', '2027-06-30', '2026-03-01 09:00+08'), ('c', '丙', '2027-12-31', '2026-03-01 09:00+08')""")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="licences",
                                 key=("code",)).resource_code
        first = sync_resource(resource_code=code)
        assert (first.mode, first.version, first.rows_published) == ("full", 1, 3)

        pg_execute(dsn, f"UPDATE {table} SET holder = '甲二', updated_at = '2026-03-02 09:00+08' WHERE code = 'a'")
        pg_execute(dsn, f"UPDATE {table} SET valid_to = 'infinity', holder = '乙二', "
                        "updated_at = '2026-03-03 09:00+08' WHERE code = 'b'")
        run = sync_resource(resource_code=code)
        assert (run.mode, run.version, run.rows_quarantined) == ("incremental", 2, 1), run
        published = _published(code)
        assert [row["code"] for row in published] == ["a", "c"]  # no stale b: 2027-06-30 is gone
        assert published == _full_read(config, secret)  # one data, one source: the full read agrees
        assert latest(code).row_count == 2
        assert _change_set(code) == {"a": "update", "b": "delete"}
        changes = latest(code).manifest["changes"]
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 1), changes
        assert _open_records(code) == [("b", "type_conversion")]

        quiet = sync_resource(resource_code=code)  # b read again, still bad: the same one record, no version
        assert (quiet.version, quiet.rows_quarantined) == (None, 1), quiet
        assert _open_records(code) == [("b", "type_conversion")]
        assert latest(code).number == 2

        pg_execute(dsn, f"UPDATE {table} SET valid_to = '2028-06-30', updated_at = '2026-03-04 09:00+08' "
                        "WHERE code = 'b'")
        fixed = sync_resource(resource_code=code)
        assert (fixed.mode, fixed.version, fixed.rows_quarantined) == ("incremental", 3, 0), fixed
        assert _change_set(code) == {"b": "insert"}
        assert _open_records(code) == []
        published = _published(code)
        assert [row["code"] for row in published] == ["a", "b", "c"]
        assert published[1]["holder"] == "乙二" and published[1]["valid_to"].isoformat() == "2028-06-30"
        assert published == _full_read(config, secret)
