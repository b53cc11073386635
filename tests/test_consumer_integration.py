"""A consumer system (使用部门的系统) integrating with the hub end to end, on a PostgreSQL registry and the real API:
its copy verified as it receives it (masked identifiers, its rows and items), the change feed's counts, and the
update notices it gets, all matching what its grant delivers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.delivery_helpers import ALL_MODES, ROW_FILTER, grant, set_modes
from tests.helpers import Hub, bearer, publish_entry, register_resource, running_api, sqlite_execute, sync

ROWS = 400
ITEMS = ["id", "uscc", "legal_rep_id", "status"]
LATER = "2026-07-01T10:00:00+08:00"


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def consumer(pg_hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    """A conditional resource whose legal representative's ID number is the entry's 主体标识 (so masked), granted
    to the consumer for four data items of the rows in ROW_FILTER, with a secrecy-free grant."""
    from registry.db import session_scope

    database = tmp_path / "market.db"
    load_sqlite(database, rows=ROWS, seed=73)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, sharing_type="conditional",
                            sharing_condition="仅限就业登记核验", publish=False)
    with session_scope() as session:
        publish_entry(session, hub.resource_code, personal={"legal_rep_id": "idcard"})
    set_modes(hub.resource_code, ALL_MODES)
    sync(hub)
    grant(hub.resource_code, hub.consumer_code, columns=ITEMS, row_filter=ROW_FILTER)
    return hub, database


def _download(api, hub: Hub, fmt: str, **params) -> requests.Response:  # noqa: ANN001, ANN003
    answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                          params={"format": fmt, **params}, headers=bearer(hub.token), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_consumers_masked_filtered_copy_verifies_as_it_receives_it(consumer: tuple[Hub, Path], tmp_path: Path,
                                                                     fmt: str) -> None:
    hub, _ = consumer
    with running_api() as api:
        answer = _download(api, hub, fmt)
    rows = int(answer.headers["X-Govshare-Rows"])
    assert 0 < rows < ROWS
    copy = tmp_path / f"{hub.resource_code.replace('/', '_')}_v1.{fmt}"
    copy.write_bytes(answer.content)
    assert "310****" in copy.read_bytes().decode("utf-8", "replace")  # what the consumer holds: masked

    # Against the whole version, the masked column differs, and the operator is told how to check it.
    result = _cli("verify", hub.resource_code, str(copy))
    assert result.exit_code == 1, result.output
    assert "differs" in result.output and "--agency" in result.output

    # As the consumer receives it: its rows, its items, masked: a faithful copy matches.
    result = _cli("verify", hub.resource_code, str(copy), "--agency", hub.consumer_code)
    assert result.exit_code == 0, result.output
    assert "match" in result.output and f"({rows} rows, {len(ITEMS)} columns)" in result.output

    # A copy with rows the consumer never got (its first rows again) is told apart, not a crash.
    if fmt == "parquet":
        table = pq.read_table(copy)
        longer = tmp_path / f"longer_v1.{fmt}"
        pq.write_table(pa.concat_tables([table, table.slice(0, 5)]), longer)
        result = _cli("verify", hub.resource_code, str(longer), "--version", "1", "--agency", hub.consumer_code)
        assert result.exit_code == 1, result.output
        assert "the file has 5 rows more" in result.output



def _kinds(table: pa.Table) -> dict[str, int]:
    kinds = table.column("_change").to_pylist()
    return {"inserted": kinds.count("insert"), "updated": kinds.count("update"), "deleted": kinds.count("delete")}


def test_the_change_feeds_counts_are_those_of_the_consumers_view(consumer: tuple[Hub, Path], tmp_path: Path) -> None:
    hub, database = consumer
    # Rows leave the consumer's condition (注销), one is renamed inside it, one is deleted at the source.
    sqlite_execute(database,
                   f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' "
                   "WHERE id IN (SELECT id FROM enterprises WHERE status IN ('存续', '在业') ORDER BY id LIMIT 4)",
                   f"UPDATE enterprises SET name = name || '（更名）', updated_at = '{LATER}' "
                   "WHERE id = (SELECT max(id) FROM enterprises WHERE status IN ('存续', '在业'))",
                   "DELETE FROM enterprises WHERE id = (SELECT max(id) FROM enterprises WHERE status = '存续')")
    sync(hub)
    with running_api() as api:
        answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/changes",
                              params={"since": 1}, headers=bearer(hub.token), timeout=60)
        assert answer.status_code == 200, answer.text
        delta = _download(api, hub, "parquet", since=1)
    copy = tmp_path / "changes.parquet"
    copy.write_bytes(answer.content)
    table = pq.read_table(copy)
    said = {k: int(answer.headers[f"X-Govshare-{k.capitalize()}"]) for k in ("inserted", "updated", "deleted")}
    # The four rows that left the view are deletes of the consumer's copy: what the headers say is what came.
    assert said == _kinds(table)
    assert said["deleted"] == 5 and said["inserted"] == 0
    assert sum(said.values()) == table.num_rows == int(delta.headers["X-Govshare-Rows"])


def test_an_update_notice_tells_a_restricted_consumer_only_what_its_download_confirms(
        consumer: tuple[Hub, Path]) -> None:
    from pipeline.notify import deliver_pending
    from tests.test_notices import _set_webhook, receiving

    hub, database = consumer
    sqlite_execute(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' "
                             "WHERE id IN (SELECT id FROM enterprises WHERE status IN ('存续', '在业') LIMIT 3)")
    with receiving() as receiver, running_api() as api:
        _set_webhook(hub, hub.consumer_code, receiver)
        sync(hub)
        assert deliver_pending().delivered
        (body,) = receiver.accepted
        feed = requests.get(f"{api.base_url}/api/v1/notices", headers=bearer(hub.token), timeout=30).json()
        versions = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/versions",
                                headers=bearer(hub.token), timeout=30).json()
        download = _download(api, hub, "parquet")
    assert all(r["valid"] for r in receiver.requests)
    assert body["version"] == 2 == int(download.headers["X-Govshare-Version"])
    # The whole version's row count is not the consumer's (its download has fewer rows), nor are the change
    # counts (rows leaving its condition are deletes of its copy); the change file's digest is of a file it never
    # gets. The manifest digest is the one its download carries: the notice names the version it downloads.
    (listed,) = [v for v in versions if v["number"] == 2]
    assert body["row_count"] is None and listed["row_count"] is None
    assert body["manifest_sha256"] == download.headers["X-Govshare-Manifest-SHA256"]
    assert "quarantined_count" not in body
    assert body["changes"]["since_version"] == 1
    assert not {"inserted", "updated", "deleted", "rows", "sha256", "file"} & set(body["changes"])
    assert body["changes_feed"] == f"/api/v1/resources/{hub.resource_code}/changes"
    assert [n["payload"] for n in feed["notices"] if n["version"] == 2] == [
        {k: v for k, v in body.items() if k != "notice_id"}]
