"""A change-capture update that is quarantined withdraws the key's published row, as a full read of the same
table does (the full read is the reference), against a private PostgreSQL cluster with wal_level=logical
(tests/pg_cluster.py).

Before, a change run kept the key's previously published row while the full read published no row for it
(only the quarantine record): the two paths disagreed, and a consumer of the change run kept reading as
current a value the source no longer held. The row is not lost: its new state waits in quarantine, and the
next readable change (or a replay) publishes it."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.helpers import latest, pg_execute
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import register
from tests.test_cdc_forms import _assert_same, _full_read, _published, _quarantined, dsn  # noqa: F401 - fixture

HOUR = 3600 * 1_000_000  # a time of day as _published gives it: microseconds


def _change_set(code: str) -> dict[str, str]:
    """What the latest version's change set (the feed `changes --since N` serves) says of each key."""
    from pipeline.paths import resolve

    return {row["code"]: row["_change"] for row in pq.read_table(resolve(latest(code).path) / "changes.parquet",
                                                                  columns=["code", "_change"]).to_pylist()}


def _captured_hours(dsn: str, monkeypatch: pytest.MonkeyPatch, *, whole_table: bool, rows: str) -> str:  # noqa: F811
    """A captured table of opening hours, its snapshot published; the resource's code."""
    import pipeline.cdc
    from pipeline.cdc import sync_cdc

    if whole_table:  # a change run whose rows cannot stack on the version (types spelt otherwise, as string and
        # large_string: pipeline.cdc_layer.layer_form) writes the whole table, carrying the untouched rows
        monkeypatch.setattr(pipeline.cdc, "layer_form", lambda *args, **kwargs: None)
    pg_execute(dsn, "CREATE TABLE hours (code text PRIMARY KEY, closes time, n int)")
    pg_execute(dsn, f"INSERT INTO hours {rows}")
    code = register(dsn, table="hours", key=("code",))
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    return code


@pytest.mark.parametrize("layered", [True, False], ids=["layer", "whole-table"])
def test_a_quarantined_update_withdraws_the_published_row(dsn: str, layered: bool,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """b's update to 24:00 is quarantined: b's old row is withdrawn (the change set says so), as the full read of
    the same table publishes no b; c's bad update is followed by its deletion, so c goes; d was inserted with a
    bad value and has no row. Once the source holds a readable time, b is published again."""
    from pipeline.cdc import sync_cdc

    code = _captured_hours(dsn, monkeypatch, whole_table=not layered,
                           rows="VALUES ('a', '08:00', 1), ('b', '17:00', 2), ('c', '18:00', 3)")

    pg_execute(dsn, "UPDATE hours SET closes = '24:00', n = 20 WHERE code = 'b'")
    pg_execute(dsn, "UPDATE hours SET closes = '24:00', n = 30 WHERE code = 'c'")
    pg_execute(dsn, "DELETE FROM hours WHERE code = 'c'")
    pg_execute(dsn, "INSERT INTO hours VALUES ('d', '24:00', 4)")
    pg_execute(dsn, "UPDATE hours SET n = 10 WHERE code = 'a'")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.version == 2
    # of the three upserts read, a's is published and b's and d's quarantined; the version holds a only
    assert (report.upserts, report.rows_published, report.rows_quarantined, report.deletes) == (3, 1, 2, 1), report
    assert latest(code).row_count == 1
    assert sorted(key for key, _, _ in _quarantined(code)) == ["b", "d"]
    assert _published(code)[1] == [{"code": "a", "closes": 8 * HOUR, "n": 10}]  # no stale b: 17:00 is gone
    assert _change_set(code) == {"a": "update", "b": "delete", "c": "delete"}
    changes = latest(code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 2), changes
    _assert_same(_published(code), _full_read(dsn, "hours"))  # one data, one source: the full read agrees

    pg_execute(dsn, "UPDATE hours SET closes = '23:00' WHERE code = 'b'")
    fixed = sync_cdc(resource_code=code)
    assert fixed.mode == "cdc" and fixed.version == 3 and fixed.rows_published == 1, fixed
    assert latest(code).row_count == 2
    assert _published(code)[1][1] == {"code": "b", "closes": 23 * HOUR, "n": 20}
    assert _change_set(code) == {"b": "insert"}
    assert [key for key, _, _ in _quarantined(code)] == ["d"]
    _assert_same(_published(code), _full_read(dsn, "hours"))  # d is quarantined by the full read too


def test_a_whole_table_change_run_reads_the_previous_version_once(dsn: str,  # noqa: F811
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole-table change run whose upsert is quarantined carries the untouched rows from one read of the
    previous version and withdraws the held key's row, as the full read does."""
    import pipeline.cdc_staging
    import pipeline.layering
    from pipeline.cdc import sync_cdc

    code = _captured_hours(dsn, monkeypatch, whole_table=True,
                           rows="SELECT 'k' || g, '08:00', g FROM generate_series(1, 50) g")
    pg_execute(dsn, "UPDATE hours SET closes = '24:00', n = 200 WHERE code = 'k2'")
    pg_execute(dsn, "UPDATE hours SET n = 100 WHERE code = 'k1'")
    scans = []

    for module in (pipeline.layering, pipeline.cdc_staging):
        def counted(parts, *args, read=module.iter_parts, **kwargs):  # noqa: ANN001, ANN202
            scans.append(len(parts))
            return read(parts, *args, **kwargs)
        monkeypatch.setattr(module, "iter_parts", counted)
    report = sync_cdc(resource_code=code)
    assert (report.version, report.rows_published, report.rows_quarantined) == (2, 1, 1)
    assert len(scans) == 1, scans
    published = {row["code"]: row["n"] for row in _published(code)[1]}
    assert len(published) == 49 and published["k1"] == 100 and "k2" not in published
    assert _change_set(code) == {"k1": "update", "k2": "delete"}
