"""Change sets and consumer copies: every publish records keys inserted, updated and deleted against the version
before; a consumer asks for the changes since the version it holds (service, CLI, API) and verifies a
downloaded copy against the manifest (`govshare verify`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.helpers import (
    Hub,
    bearer,
    latest,
    read_version,
    register_resource,
    running_api,
    sqlite_execute,
    sync,
    versions,
)

ROWS = 300
LATER = "2026-07-01T10:00:00+08:00"


_sync, _sql = sync, sqlite_execute


def _change_rows(version) -> dict[int, str]:  # noqa: ANN001
    from pipeline.paths import resolve

    table = pq.read_table(resolve(version.path) / version.manifest["changes"]["file"])
    return dict(zip(table.column("id").to_pylist(), table.column("_change").to_pylist()))


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=31)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    _sync(hub)
    return hub, database


def test_each_publish_records_its_change_set(source: tuple[Hub, Path]) -> None:
    hub, database = source
    v1 = latest(hub.resource_code)
    assert v1.manifest["changes"]["inserted"] == ROWS and v1.manifest["changes"]["since_version"] is None

    # Incremental: 4 rows renamed (cursor moved), 2 new rows, 3 deleted; the deletes are found by the scan of
    # the source's keys. A row updated without moving the cursor is not seen.
    _sql(database,
         f"UPDATE enterprises SET name = name || '（更名）', updated_at = '{LATER}' WHERE id IN (1, 2, 3, 4)",
         f"INSERT INTO enterprises SELECT 5001, uscc, '上海新设甲有限公司', legal_rep, legal_rep_id, reg_capital, "
         f"established, status, address, industry, '{LATER}' FROM enterprises WHERE id = 5",
         f"INSERT INTO enterprises SELECT 5002, uscc, '上海新设乙有限公司', legal_rep, legal_rep_id, reg_capital, "
         f"established, status, address, industry, '{LATER}' FROM enterprises WHERE id = 6",
         "DELETE FROM enterprises WHERE id IN (10, 11, 12)",
         "UPDATE enterprises SET status = '吊销' WHERE id = 20")
    report = _sync(hub)
    v2 = latest(hub.resource_code)
    assert report.mode == "incremental" and report.version == 2
    changes = v2.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (2, 4, 3)
    assert changes["deletes_detected"] is True and changes["since_version"] == 1
    assert _change_rows(v2) == {1: "update", 2: "update", 3: "update", 4: "update", 5001: "insert", 5002: "insert",
                                10: "delete", 11: "delete", 12: "delete"}
    assert v2.row_count == ROWS + 2 - 3 and v2.manifest["key_scan"]["source_keys"] == ROWS - 1

    # Nothing changed since: the tied rows are read again, found identical, and no version is published.
    report = _sync(hub)
    assert report.version is None and report.previous_version == 2 and report.rows_read == 6
    assert [v.number for v in versions(hub.resource_code)] == [1, 2]

    # A full refresh compares every row: it finds the update the cursor could not see.
    report = _sync(hub, full=True)
    v3 = latest(hub.resource_code)
    assert report.mode == "full" and v3.number == 3 and v3.row_count == ROWS + 2 - 3
    changes = v3.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"], changes["deletes_detected"]) == (0, 1, 0, True)
    assert _change_rows(v3) == {20: "update"}

    # The change file is part of the manifest like the data: rows and SHA-256.
    from pipeline.manifest import file_sha256
    from pipeline.paths import resolve

    folder = resolve(v2.path)
    assert v2.manifest["changes"]["rows"] == 9
    assert v2.manifest["changes"]["sha256"] == file_sha256(folder / "changes.parquet")
    # A delete carries the row as last published, so a consumer's row condition and columns apply to it.
    gone = [r for r in pq.read_table(folder / "changes.parquet").to_pylist() if r["_change"] == "delete"]
    v1_rows = {r["id"]: r for r in read_version(v1).to_pylist()}
    assert len(gone) == 3 and all(row["name"] == v1_rows[row["id"]]["name"] for row in gone)

    # The command line shows each version's change set, exact deletes included; a run with nothing new says so.
    result = _cli("sync", hub.resource_code)
    assert result.exit_code == 0 and "unchanged" in result.output and "v3 stays current" in result.output, \
        result.output
    result = _cli("versions", hub.resource_code)
    assert result.exit_code == 0 and "+0 ~1 -0" in result.output and "+2 ~4 -3" in result.output, result.output
    assert "-?" not in result.output


def test_changes_since_a_version_through_service_cli_and_api(source: tuple[Hub, Path], tmp_path: Path) -> None:
    from pipeline.changes_feed import changes_schema, changes_since, iter_changes
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    hub, database = source
    _sql(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id IN (7, 8)")
    _sync(hub)  # v2: 2 updates
    _sql(database, "DELETE FROM enterprises WHERE id = 9",
         "UPDATE enterprises SET status = '吊销', updated_at = '2026-08-01T10:00:00+08:00' WHERE id = 7")
    _sync(hub, full=True)  # v3: 1 update, 1 delete
    assert [v.number for v in versions(hub.resource_code)] == [1, 2, 3]

    with session_scope() as session:
        span = changes_since(session, resource=get_resource(session, code=hub.resource_code), since=1)
        schema = changes_schema(latest(hub.resource_code))
        rows = pa.Table.from_batches(list(iter_changes(span, schema=schema)), schema=schema).to_pylist()
    assert span.counts == {"inserted": 0, "updated": 3, "deleted": 1}
    assert [(r["_version"], r["id"], r["_change"]) for r in rows] == [(2, 7, "update"), (2, 8, "update"),
                                                                        (3, 7, "update"), (3, 9, "delete")]
    assert rows[2]["status"] == "吊销"

    # Applying the changes to the v1 copy gives exactly v3.
    copy = {r["id"]: r for r in read_version(versions(hub.resource_code)[0]).to_pylist()}
    for row in rows:
        change = {k: v for k, v in row.items() if k not in ("_version", "_change")}
        if row["_change"] == "delete":
            copy.pop(row["id"])
        else:
            copy[row["id"]] = change
    assert sorted(copy.values(), key=lambda r: r["id"]) == read_version(latest(hub.resource_code)).to_pylist()

    # CLI: the summary per version, and the rows to a file.
    out = tmp_path / "changes.parquet"
    result = _cli("changes", hub.resource_code, "--since", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "v2" in result.output and "v3" in result.output and "4 change rows written" in result.output
    assert pq.read_table(out).num_rows == 4
    result = _cli("changes", hub.resource_code, "--since", "0")
    assert result.exit_code == 1 and "download the whole version" in result.output

    # API: token-checked like the download; the same rows; 409 where only a whole copy helps.
    with running_api() as api:
        url = f"{api.base_url}/api/v1/resources/{hub.resource_code}/changes"
        assert requests.get(url, params={"since": 1}, timeout=30).status_code == 401
        answer = requests.get(url, params={"since": 2}, headers=bearer(hub.token), timeout=30)
        assert answer.status_code == 200, answer.text
        assert (answer.headers["X-Govshare-Since-Version"], answer.headers["X-Govshare-Version"]) == ("2", "3")
        assert answer.headers["X-Govshare-Deleted"] == "1" and answer.headers["X-Govshare-Updated"] == "1"
        import io

        got = pq.read_table(io.BytesIO(answer.content)).to_pylist()
        assert [(r["_version"], r["id"], r["_change"]) for r in got] == [(3, 7, "update"), (3, 9, "delete")]
        assert requests.get(url, params={"since": 3}, headers=bearer(hub.token), timeout=30).status_code == 200
        refused = requests.get(url, params={"since": 0}, headers=bearer(hub.token), timeout=30)
        assert refused.status_code == 409 and "download" in refused.json()["detail"]
        other = register_resource(kind=None, name="无授权资源", classification="103001")
        denied = requests.get(f"{api.base_url}/api/v1/resources/{other.resource_code}/changes",
                              params={"since": 1}, headers=bearer(hub.token), timeout=30)
        assert denied.status_code == 403


def test_a_resource_without_a_key_does_not_track_changes(hub_home: Path, tmp_path: Path) -> None:
    database = tmp_path / "nokey.db"
    load_sqlite(database, rows=50, seed=3)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, key=(), cursor=None)
    _sync(hub)
    _sync(hub)
    changes = latest(hub.resource_code).manifest["changes"]
    assert changes["file"] is None and "no primary key" in changes["note"]
    result = _cli("changes", hub.resource_code, "--since", "1")
    assert result.exit_code == 1 and "has no change set" in result.output


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_verify_a_downloaded_copy(source: tuple[Hub, Path], tmp_path: Path, fmt: str) -> None:
    hub, _ = source
    with running_api() as api:
        answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                              params={"format": fmt}, headers=bearer(hub.token), timeout=30)
    assert answer.status_code == 200, answer.text
    copy = tmp_path / f"{hub.resource_code.replace('/', '_')}_v1.{fmt}"
    copy.write_bytes(answer.content)

    result = _cli("verify", hub.resource_code, str(copy))
    assert result.exit_code == 0, result.output
    assert "match" in result.output and f"v1 of {hub.resource_code}" in result.output and f"{ROWS} rows" in result.output

    # One value changed in the copy: the first difference is named, row and column.
    if fmt == "parquet":
        table = pq.read_table(copy)
        names = table.column("name").to_pylist()
        names[41] = "篡改企业名称"
        pq.write_table(table.set_column(table.schema.get_field_index("name"), "name", pa.array(names)), copy)
    else:
        lines = copy.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        original = read_version(latest(hub.resource_code), sort_by=None).column("name")[41].as_py()
        assert original in lines[42]
        lines[42] = lines[42].replace(original, "篡改企业名称")
        copy.write_text("".join(lines), encoding="utf-8")
    result = _cli("verify", hub.resource_code, str(copy))
    assert result.exit_code == 1, result.output
    assert "differs" in result.output and "row 42, column name" in result.output and "篡改企业名称" in result.output

    # A truncated copy: the row count is the difference.
    truncated = tmp_path / f"short_v1.{fmt}"
    if fmt == "parquet":
        pq.write_table(pq.read_table(copy).slice(0, 100), truncated)
    else:
        truncated.write_text("".join(copy.read_text(encoding="utf-8").splitlines(keepends=True)[:101]), encoding="utf-8")
    result = _cli("verify", hub.resource_code, str(truncated), "--version", "1")
    assert result.exit_code == 1 and "ends after 100 rows" in result.output, result.output


def test_verify_refuses_to_compare_with_an_altered_version(source: tuple[Hub, Path], tmp_path: Path) -> None:
    import shutil

    from pipeline.paths import resolve

    hub, _ = source
    v1 = latest(hub.resource_code)
    data = resolve(v1.path) / v1.manifest["files"][0]["path"]
    copy = tmp_path / "copy_v1.parquet"
    shutil.copy(data, copy)  # the version's own file, byte for byte
    result = _cli("verify", hub.resource_code, str(copy))
    assert result.exit_code == 0 and "match" in result.output, result.output

    table = pq.read_table(data)
    pq.write_table(table.slice(1), data)  # someone edits the published file behind the registry's back
    result = _cli("verify", hub.resource_code, str(copy))
    assert result.exit_code == 3 and "does not match its manifest" in result.output, result.output


def test_an_incremental_resource_is_read_in_full_again_as_a_safety_net(source: tuple[Hub, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from core import clock
    from core.settings import reset_settings
    from registry.db import session_scope
    from registry.exchange.models import SyncRun

    hub, database = source
    _sql(database, "DELETE FROM enterprises WHERE id = 20", "UPDATE enterprises SET status = '吊销' WHERE id = 21")
    report = _sync(hub)
    assert report.mode == "incremental" and latest(hub.resource_code).row_count == ROWS - 1  # the delete, at once
    with session_scope() as session:  # the last full read is now 8 days old
        session.execute(update(SyncRun).where(SyncRun.mode == "full").values(finished_at=clock.now() - timedelta(days=8)))
    report = _sync(hub)
    assert report.mode == "full" and latest(hub.resource_code).manifest["changes"]["updated"] == 1  # what no cursor saw
    report = _sync(hub)
    assert report.mode == "incremental" and report.version is None  # the full read just happened; nothing new

    monkeypatch.setenv("GOVSHARE_FULL_REFRESH_DAYS", "0")  # 0: never
    reset_settings()
    with session_scope() as session:
        session.execute(update(SyncRun).values(finished_at=clock.now() - timedelta(days=90)))
    assert _sync(hub).mode == "incremental"
