"""A change-capture update that is quarantined keeps the key's published row, as a table read keeps it
(tests/test_postgres_types.py), against a private PostgreSQL cluster with wal_level=logical (tests/pg_cluster.py).

Before, a change run removed every key its changes touched from the previous version and then wrote the
upserts; an upsert that was quarantined was not written, so its key vanished from the version and the change
set reported it deleted: a consumer syncing by changes deleted a row the source still held (a phantom delete)."""

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
def test_a_quarantined_update_keeps_the_published_row(dsn: str, layered: bool,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """b's update to 24:00 is quarantined and b keeps its published row, unreported by the change set; c's bad
    update is followed by its deletion in the same run, so c goes; d was inserted with a bad value and has no
    row to keep. Once the source holds a readable time, b's fixed row is published."""
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
    # of the three upserts read, a's is published and b's and d's quarantined; the version holds a and b
    assert (report.upserts, report.rows_published, report.rows_quarantined, report.deletes) == (3, 1, 2, 1), report
    assert latest(code).row_count == 2
    assert sorted(key for key, _, _ in _quarantined(code)) == ["b", "d"]
    assert _published(code)[1] == [{"code": "a", "closes": 8 * HOUR, "n": 10},
                                   {"code": "b", "closes": 17 * HOUR, "n": 2}]  # b keeps its published row
    assert _change_set(code) == {"a": "update", "c": "delete"}  # no phantom delete of b
    changes = latest(code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 1), changes

    pg_execute(dsn, "UPDATE hours SET closes = '23:00' WHERE code = 'b'")
    fixed = sync_cdc(resource_code=code)
    assert fixed.mode == "cdc" and fixed.version == 3 and fixed.rows_published == 1, fixed
    assert latest(code).row_count == 2
    assert _published(code)[1][1] == {"code": "b", "closes": 23 * HOUR, "n": 20}
    assert _change_set(code) == {"b": "update"}
    assert [key for key, _, _ in _quarantined(code)] == ["d"]
    _assert_same(_published(code), _full_read(dsn, "hours"))  # d is quarantined by the full read too


def test_a_whole_table_change_run_reads_the_previous_version_once(dsn: str,  # noqa: F811
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole-table change run whose upsert is quarantined carries the untouched rows and keeps the held key's
    published row from one read of the previous version: it read the whole version a second time to find the
    held keys' rows (a table of millions of rows, for one quarantined update)."""
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
    assert len(published) == 50 and (published["k1"], published["k2"]) == (100, 2)
    assert _change_set(code) == {"k1": "update"}
