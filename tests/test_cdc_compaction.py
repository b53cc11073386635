"""Change capture on a version past the compaction limits (pipeline.cdc_layer), against a private PostgreSQL
cluster with wal_level=logical (tests/pg_cluster.py): a change run whose changes change no published row (an
UPDATE to the values a row has, a row inserted and deleted again) publishes nothing and writes no snapshot; the
next run with a change compacts into a snapshot equal to the source, with its exact change set."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pipeline.layering
from tests.helpers import latest, pg_execute, versions
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import assert_published_matches_source, cursor, register, slot, slot_name_of, source  # noqa: F401


def test_a_quiet_change_run_past_the_limit_writes_no_snapshot(source: str,  # noqa: F811 - the fixture
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.cdc import sync_cdc
    from pipeline.layering import compaction_due
    from pipeline.layers import version_parts
    from pipeline.paths import resolve
    from pipeline.run import lifecycle
    from pipeline.staging import StagedRun

    monkeypatch.setattr(pipeline.layering, "MAX_PARTS", 3)  # the snapshot's one part and two layers' deltas
    code = register(source)
    assert sync_cdc(resource_code=code).version == 1
    for number, status in ((2, "吊销"), (3, "迁出")):
        pg_execute(source, f"UPDATE enterprises SET status = '{status}' WHERE id = 1")
        assert sync_cdc(resource_code=code).version == number
    v3 = latest(code)
    assert any(e.get("folder") for e in v3.manifest["files"]) and compaction_due(version_parts(v3))

    staged_runs: list[tuple[StagedRun, int]] = []  # each run as staged, and the rows its data files hold
    publish = lifecycle.publish

    def staged_then_publish(*, folder: str, **kwargs):  # noqa: ANN003, ANN202 - lifecycle.publish's own
        written = sum(pq.ParquetFile(part).metadata.num_rows for part in (Path(folder) / "data").glob("*.parquet"))
        staged_runs.append((StagedRun.load(Path(folder)), written))
        return publish(folder=folder, **kwargs)

    monkeypatch.setattr(lifecycle, "publish", staged_then_publish)
    for _ in range(2):  # changes that change no published row: the slot delivers them all the same
        pg_execute(source, "UPDATE enterprises SET name = name, status = status WHERE id IN (2, 3)")
        pg_execute(source, "INSERT INTO enterprises (id, uscc, name) VALUES (99, '91310000MA1FL0099X', '临时'); "
                           "DELETE FROM enterprises WHERE id = 99")
        report = sync_cdc(resource_code=code)
        assert report.mode == "cdc" and report.version is None and report.upserts == 2
        staged, written = staged_runs.pop()
        assert written == staged.rows_read == 2, "the staged run holds the rows read, not a snapshot"
        assert staged.referenced, "the previous version's files are referenced, as by a layer"
        assert [v.number for v in versions(code)] == [1, 2, 3]
        assert slot(source, slot_name_of(code))[0] == cursor(code), "the position still moves on"
    assert_published_matches_source(code, source)

    pg_execute(source, "UPDATE enterprises SET status = '注销' WHERE id = 4; DELETE FROM enterprises WHERE id = 5; "
                       "INSERT INTO enterprises (id, uscc, name) VALUES (6, '91310000MA1FL0006X', '上海长宁设计有限公司')")
    report = sync_cdc(resource_code=code)
    v4 = latest(code)
    assert report.version == 4 and v4.manifest["mode"] == "cdc"
    assert not any(e.get("folder") or e.get("deleted") for e in v4.manifest["files"]), "compacted: a snapshot"
    assert not compaction_due(version_parts(v4))
    assert_published_matches_source(code, source)
    changes = v4.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 1, 1)
    change_file = pq.read_table(resolve(v4.path) / changes["file"])
    assert dict(zip(change_file.column("id").to_pylist(), change_file.column("_change").to_pylist())) == \
        {4: "update", 5: "delete", 6: "insert"}
