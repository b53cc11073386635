"""Layered versions: an incremental run publishes only what it read, on top of the previous version's
files, and every reader (downloads, verify, retention) sees exactly the rows the source holds."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from samples.loaders import load_sqlite
from tests.helpers import Hub, latest, read_version, register_resource, sqlite_execute, sync, versions

# Every exchange test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")

ROWS = 400
LATER = "2026-07-01T10:00:00+08:00"
LATEST = "2026-08-01T10:00:00+08:00"


_sync, _sql = sync, sqlite_execute


def _source_rows(database: Path) -> dict[int, tuple[str, str]]:
    with closing(sqlite3.connect(database)) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, name, status FROM enterprises")}


def _published(version) -> dict[int, tuple[str, str]]:  # noqa: ANN001
    table = read_version(version)
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == version.row_count, "a replaced row is still served, or a row is missing"
    return {i: (n, s) for i, n, s in zip(table.column("id").to_pylist(), table.column("name").to_pylist(),
                                         table.column("status").to_pylist())}


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=41)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    _sync(hub)
    return hub, database


def test_an_incremental_run_references_the_previous_files_and_marks_replaced_rows(source) -> None:  # noqa: ANN001
    from pipeline.manifest import file_sha256
    from pipeline.paths import resolve

    hub, database = source
    v1 = latest(hub.resource_code)
    v1_files = {e["path"]: e["sha256"] for e in v1.manifest["files"]}
    assert all(e.get("locator") for e in v1.manifest["files"])  # an integer key: sorted key files beside the parts

    _sql(database, f"UPDATE enterprises SET name = name || '（更名）', updated_at = '{LATER}' WHERE id IN (3, 7, 9)",
         f"INSERT INTO enterprises SELECT 9001, uscc, '上海新设有限公司', legal_rep, legal_rep_id, reg_capital, "
         f"established, status, address, industry, '{LATER}' FROM enterprises WHERE id = 5")
    report = _sync(hub)
    v2 = latest(hub.resource_code)
    # 4 changed rows, and the row at the previous watermark, read again on purpose (cursor ties)
    assert report.mode == "incremental" and report.rows_read == 5 and v2.row_count == ROWS + 1

    referenced = [e for e in v2.manifest["files"] if e.get("folder")]
    owned = [e for e in v2.manifest["files"] if not e.get("folder")]
    assert {e["folder"] for e in referenced} == {v1.path} and {e["path"] for e in referenced} == set(v1_files)
    assert [e["rows"] for e in owned] == [5]  # the delta: only what was read
    # the old copies of the 3 updated rows and of the re-read tie, which the delta now holds
    assert sum((e.get("deleted") or {}).get("rows", 0) for e in referenced) == 4
    # The previous version is untouched, and still served exactly as it was.
    assert all(file_sha256(resolve(v1.path) / p) == sha for p, sha in v1_files.items())
    assert _published(v2) == _source_rows(database)
    assert _published(v1)[3][0] + "（更名）" == _published(v2)[3][0]

    changes = v2.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 3, 0)
    kinds = pq.read_table(resolve(v2.path) / "changes.parquet").to_pydict()
    assert dict(zip(kinds["id"], kinds["_change"])) == {3: "update", 7: "update", 9: "update", 9001: "insert"}


def test_layers_stack_a_tied_re_read_is_no_change_and_a_row_updated_twice_is_replaced_in_the_delta(source) -> None:  # noqa: ANN001
    hub, database = source
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id IN (1, 2)")
    _sync(hub)
    v2 = latest(hub.resource_code)

    # Nothing changed: rows 1 and 2 sit at the watermark and are read again, identical: no change, no version.
    report = _sync(hub)
    assert report.rows_read == 2 and report.version is None and latest(hub.resource_code).number == 2
    assert _published(v2) == _source_rows(database)

    # Row 1 changes again: its live copy is in a delta part, which gets the deletion mark this time.
    _sql(database, f"UPDATE enterprises SET status = '迁出', updated_at = '{LATEST}' WHERE id = 1")
    _sync(hub)
    v3 = latest(hub.resource_code)
    assert v3.manifest["changes"]["updated"] == 1 and v3.row_count == ROWS
    assert _published(v3) == _source_rows(database) and _published(v3)[1][1] == "迁出"
    marked = {e["folder"] for e in v3.manifest["files"] if e.get("folder") and e.get("deleted")}
    assert v2.path in marked  # the delta that held row 1's live copy


def test_a_layer_marks_deletes_and_a_full_refresh_after_layers_is_a_snapshot(source) -> None:  # noqa: ANN001
    hub, database = source
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id = 1",
         "DELETE FROM enterprises WHERE id IN (20, 21)")
    _sync(hub)
    v2 = latest(hub.resource_code)
    changes = v2.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 2)  # the deletes, in the layer
    referenced = [e for e in v2.manifest["files"] if e.get("folder")]  # a layer: v1's part, rows marked deleted
    assert referenced and sum((e.get("deleted") or {}).get("rows", 0) for e in referenced) >= 3
    assert _published(v2) == _source_rows(database)

    _sql(database, "UPDATE enterprises SET status = '吊销' WHERE id = 30")  # the cursor does not move: unseen
    report = _sync(hub, full=True)
    v3 = latest(hub.resource_code)
    assert report.mode == "full" and not any(e.get("folder") for e in v3.manifest["files"])
    changes = v3.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 0)  # compared with the layers
    assert _published(v3) == _source_rows(database)


def test_layers_compact_into_a_snapshot_past_the_limit(source, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from pipeline import layering

    hub, database = source
    monkeypatch.setattr(layering, "MAX_PARTS", 3)  # the sample's one part plus two deltas
    for step in range(3):
        _sql(database, f"UPDATE enterprises SET status = '变更{step}', updated_at = '2026-07-0{step + 1}T10:00:00+08:00' "
                       f"WHERE id = {step + 10}")
        _sync(hub)
    v2, v3, v4 = versions(hub.resource_code)[-3:]
    assert any(e.get("folder") for e in v2.manifest["files"]) and any(e.get("folder") for e in v3.manifest["files"])
    assert not any(e.get("folder") for e in v4.manifest["files"]), "the third layer would pass the limit: compacted"
    assert v4.manifest["mode"] == "incremental" and v4.manifest["changes"]["updated"] == 1
    assert _published(v4) == _source_rows(database)


def test_a_layered_version_downloads_and_verifies(source, tmp_path: Path) -> None:  # noqa: ANN001
    from delivery.files import stream_version
    from delivery.verify import verify_copy

    hub, database = source
    _sql(database, f"UPDATE enterprises SET name = '上海改名有限公司', updated_at = '{LATER}' WHERE id = 2")
    _sync(hub)
    version = latest(hub.resource_code)
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(b"".join(stream_version(version, fmt="parquet")))
    downloaded = pq.read_table(copy)
    assert downloaded.num_rows == ROWS and downloaded.column("id").to_pylist().count(2) == 1
    assert verify_copy(resource_code=hub.resource_code, path=copy).match

    pq.write_table(downloaded.slice(1), copy)  # a row short
    verdict = verify_copy(resource_code=hub.resource_code, path=copy, version=version.number)
    assert not verdict.match and verdict.difference


def test_retention_keeps_the_versions_a_layer_reads(source) -> None:  # noqa: ANN001
    from pipeline.housekeeping import prune_versions
    from pipeline.paths import resolve

    hub, database = source
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id = 1")
    _sync(hub)
    v1, v2 = versions(hub.resource_code)
    assert prune_versions(keep_last=1, keep_days=0) == []  # v2 reads v1's files
    assert resolve(v1.path).is_dir() and _published(v2) == _source_rows(database)

    _sql(database, "UPDATE enterprises SET status = '吊销' WHERE id = 30")  # unseen by the cursor
    _sync(hub, full=True)  # a snapshot: nothing reads v1 or v2 any more
    assert sorted(prune_versions(keep_last=1, keep_days=0)) == [f"{hub.resource_code} v1", f"{hub.resource_code} v2"]


def test_a_text_key_is_found_by_scanning_when_it_has_no_locator(hub_home: Path, tmp_path: Path) -> None:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=43)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, key=("uscc",))
    _sync(hub)
    assert not any(e.get("locator") for e in latest(hub.resource_code).manifest["files"])
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id IN (4, 5)")
    _sync(hub)
    version = latest(hub.resource_code)
    assert version.manifest["changes"]["updated"] == 2 and version.row_count == ROWS
    assert _published(version) == _source_rows(database)


def test_dataset_rules_of_a_layer_see_the_whole_version(hub_home: Path) -> None:
    """A freshness rule judges the version's newest row, not only the rows the run read (here: none)."""
    from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
    from tests.services import require_postgres

    from samples.loaders import load_postgres

    dsn = require_postgres()
    shipped = (Path(__file__).parents[1] / "schemas" / "contracts" / "enterprises.yaml").read_text(encoding="utf-8")
    contract = hub_home / "contracts" / "layered.yaml"
    contract.parent.mkdir(parents=True, exist_ok=True)
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=44, schema=schema)
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table=f"{schema}.enterprises")

        def declare(max_age_hours: int) -> None:  # the shipped typed columns, this resource, one freshness rule
            contract.write_text(
                shipped.replace("name: enterprises", f'name: layered\nresources: ["{hub.resource_code}"]')
                + f"  - {{type: freshness, column: updated_at, max_age_hours: {max_age_hours}}}\n", encoding="utf-8")

        declare(1_000_000)
        _sync(hub)
        # The row at the watermark goes: the next run reads nothing, and the freshness rule still sees the
        # version's newest row (a rule that saw only the rows read would find no value and block).
        pg_execute(dsn, f'DELETE FROM "{schema}".enterprises WHERE updated_at = '
                        f'(SELECT max(updated_at) FROM "{schema}".enterprises)')
        report = _sync(hub)
        version = latest(hub.resource_code)
        assert report.mode == "incremental" and report.rows_read == 0 and version.row_count == ROWS - 1
        assert version.manifest["changes"]["deleted"] == 1  # found by the scan of the source's keys
        assert all(e.get("folder") for e in version.manifest["files"])  # a layer that adds no file

        declare(1)  # the newest row is months old: a blocking freshness rule stops the run
        with pytest.raises(Exception, match="数据不够新"):
            _sync(hub)


@pytest.mark.parametrize("compact", [False, True], ids=["layer", "compaction"])
def test_a_key_read_twice_is_quarantined_and_keeps_its_published_row(hub_home: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      compact: bool) -> None:
    from pipeline import layering

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=45)
    _sql(database, "CREATE TABLE extra AS SELECT * FROM enterprises WHERE 0")
    hub = register_resource(kind="sqlite", config={"path": str(database)}, table=None,
                            query="SELECT * FROM enterprises UNION ALL SELECT * FROM extra")
    _sync(hub)
    before = _published(latest(hub.resource_code))[7]
    if compact:
        monkeypatch.setattr(layering, "MAX_PARTS", 1)
    _sql(database, f"UPDATE enterprises SET name = '上海甲有限公司', updated_at = '{LATER}' WHERE id = 7",
         f"UPDATE enterprises SET name = '上海丙有限公司', updated_at = '{LATER}' WHERE id = 8",
         f"INSERT INTO extra SELECT id, uscc, '上海乙有限公司', legal_rep, legal_rep_id, reg_capital, established, "
         f"status, address, industry, '{LATER}' FROM enterprises WHERE id = 7")
    report = _sync(hub)
    version = latest(hub.resource_code)
    assert report.rows_quarantined == 2 and report.version == 2 and version.row_count == ROWS
    assert _published(version)[7] == before  # which of the two is right cannot be told: the last good row stays
    assert _published(version)[8][0] == "上海丙有限公司"
    assert any(e.get("folder") for e in version.manifest["files"]) is not compact


def test_a_lost_locator_falls_back_to_scanning(source) -> None:  # noqa: ANN001
    from pipeline.paths import resolve

    hub, database = source
    v1 = latest(hub.resource_code)
    for stem in {e["locator"] for e in v1.manifest["files"]}:
        for suffix in (".keys.npy", ".rows.npy"):
            (resolve(v1.path) / (stem + suffix)).unlink()
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id = 8")
    _sync(hub)
    version = latest(hub.resource_code)
    assert version.manifest["changes"]["updated"] == 1 and _published(version) == _source_rows(database)


def test_a_locator_is_never_built_over_null_keys(tmp_path: Path) -> None:
    """NULL keys never reach a part (a blocking rule); if one did, positions must not be guessed from floats."""
    import pyarrow as pa

    from pipeline import locator

    pq.write_table(pa.table({"id": pa.array([3, None, 1], pa.int64())}), tmp_path / "part.parquet")
    with pytest.raises(ValueError, match="holds NULLs"):
        locator.build(tmp_path / "part.parquet", "id", tmp_path / "locator" / "part")
