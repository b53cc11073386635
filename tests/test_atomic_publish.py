"""Atomic publish: a run that fails anywhere leaves the previous version served and no trace but a failed run
(in the local folder and in an object store alike); two publishes of one resource never overlap."""

from __future__ import annotations

import io
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.helpers import (
    ApiServer,
    Hub,
    bearer,
    cursor_value,
    latest,
    read_version,
    register_resource,
    rows_digest,
    run_prefixes,
    stored_names,
    sync_runs,
    table_rows,
    versions,
)

# Each test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")

ROWS = 1_200
CHANGED = 150
INJECTED = "injected failure"


@dataclass
class Published:
    hub: Hub
    database: Path
    v1_digest: str
    v1_cursor: str
    api: ApiServer


@pytest.fixture
def published(hub_home: Path, tmp_path: Path) -> Iterator[Published]:
    """A SQLite business database synced once (v1), a consumer subscribed, and the API serving it."""
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=21)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    _sync(hub)
    v1 = latest(hub.resource_code)
    assert v1.number == 1 and v1.row_count == ROWS
    api = ApiServer().start()
    try:
        yield Published(hub=hub, database=database, v1_digest=rows_digest(table_rows(read_version(v1))),
                        v1_cursor=cursor_value(hub.resource_code), api=api)
    finally:
        api.stop()


def _sync(hub: Hub, *, full: bool = False):  # noqa: ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, full=full)


def _change_source(database: Path) -> None:
    """Rename some enterprises and move their cursor forward, so the next sync has something to publish."""
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("UPDATE enterprises SET name = name || '（变更）', updated_at = '2026-06-01T09:00:00+08:00' "
                     "WHERE id <= ?", (CHANGED,))


def _publish_events(resource_code: str) -> int:
    from sqlalchemy import func, select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "version.publish", AuditEvent.resource_code == resource_code))


def _assert_v1_still_served(state: Published, *, error_fragment: str) -> None:
    hub = state.hub
    # Registry: v1 is the only version, its rows unchanged; the cursor did not move.
    assert [v.number for v in versions(hub.resource_code)] == [1]
    v1 = latest(hub.resource_code)
    assert rows_digest(table_rows(read_version(v1))) == state.v1_digest
    assert cursor_value(hub.resource_code) == state.v1_cursor
    assert _publish_events(hub.resource_code) == 1

    # The failed run is recorded as failed, with the error.
    failed = sync_runs(hub.resource_code)[-1]
    assert failed.status == "failed"
    assert failed.version_id is None and failed.finished_at is not None
    assert error_fragment in (failed.error or "")

    # Storage (the object store and the working copy): nothing of the failed run, staged or published.
    assert run_prefixes(hub.resource_id) == [Path(v1.path).name]
    assert not any(failed.id in name for name in stored_names())

    # The API still serves v1's rows.
    response = requests.get(f"{state.api.base_url}/api/v1/resources/{hub.resource_code}/files",
                            params={"format": "parquet"}, headers=bearer(hub.token), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["X-Govshare-Version"] == "1"
    assert response.headers["X-Govshare-Manifest-SHA256"] == v1.manifest_sha256
    served = pq.read_table(io.BytesIO(response.content)).sort_by("id")
    assert rows_digest(table_rows(served)) == state.v1_digest


def _assert_next_sync_publishes_v2(state: Published) -> None:
    report = _sync(state.hub)
    assert report.version == 2
    v2 = latest(state.hub.resource_code)
    assert v2.number == 2 and v2.row_count == ROWS
    names = dict(zip(*(read_version(v2).column(c).to_pylist() for c in ("id", "name"))))
    assert all(names[i].endswith("（变更）") for i in range(1, CHANGED + 1))
    assert not names[CHANGED + 1].endswith("（变更）")
    assert cursor_value(state.hub.resource_code) == "2026-06-01T09:00:00+08:00"
    assert sync_runs(state.hub.resource_code)[-1].status == "published"
    assert run_prefixes(state.hub.resource_id) == sorted(Path(v.path).name for v in versions(state.hub.resource_code))


def _boom(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
    raise RuntimeError(INJECTED)


@pytest.mark.parametrize("failure_point", ["record", "record_event"])
def test_failure_at_the_commit_keeps_v1(published: Published, monkeypatch: pytest.MonkeyPatch,
                                        failure_point: str) -> None:
    """The run's parts and manifest are already written when the registry write fails: it must not become
    visible, and its files go."""
    _change_source(published.database)
    with monkeypatch.context() as patch:
        if failure_point == "record":
            patch.setattr("pipeline.publish._record", _boom)
        else:
            # Fails inside the registry transaction, after the version row and cursor state were written.
            patch.setattr("pipeline.publish.record_event", _boom)
        with pytest.raises(RuntimeError, match=INJECTED):
            _sync(published.hub)
    _assert_v1_still_served(published, error_fragment=INJECTED)
    _assert_next_sync_publishes_v2(published)


def test_failure_in_the_middle_of_the_read_keeps_v1(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.sqlite import SQLiteConnector
    from core.errors import RetriableError
    from core.settings import reset_settings

    _change_source(published.database)
    monkeypatch.setenv("GOVSHARE_BATCH_ROWS", "64")
    reset_settings()
    original = SQLiteConnector.read
    batch_sizes: list[int] = []

    def interrupted(self, stream, state):  # noqa: ANN001, ANN202
        batches = original(self, stream, state)
        first = next(batches)
        batch_sizes.append(first.num_rows)
        yield first
        batches.close()
        raise RetriableError(self.fail(f"connection lost ({INJECTED})"))

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteConnector, "read", interrupted)
        with pytest.raises(RetriableError, match=INJECTED):
            _sync(published.hub, full=True)
    assert batch_sizes == [64]  # the tiny batch size was used: the failure came after a staged batch
    _assert_v1_still_served(published, error_fragment=INJECTED)
    _assert_next_sync_publishes_v2(published)


def test_a_second_publish_of_the_same_resource_is_refused(published: Published) -> None:
    from core.errors import RetriableError
    from pipeline.publish import resource_lock

    hub = published.hub
    _change_source(published.database)
    with resource_lock(hub.resource_id, hub.resource_code):  # another run is publishing this resource
        with pytest.raises(RetriableError) as refused:
            _sync(hub)
        message = str(refused.value)
        assert hub.resource_code in message and "being published by another run" in message

        # The command line says the same in one line, with the retriable exit status.
        from cli.main import app

        result = CliRunner().invoke(app, ["sync", hub.resource_code], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert "being published by another run" in result.output and "Traceback" not in result.output
    _assert_v1_still_served(published, error_fragment="being published by another run")
    assert [r.status for r in sync_runs(hub.resource_code)] == ["published", "failed", "failed"]

    # Once the other publish is over, the next sync goes through.
    _assert_next_sync_publishes_v2(published)


def test_a_publish_whose_staged_run_is_gone_fails_at_once_and_frees_the_resource(published: Published) -> None:
    """Airflow's publish task after its staged run was removed (housekeeping, a takeover): retrying cannot bring
    it back, so it fails as fatal (not retried for a quarter of an hour), records the run failed, releases the
    lock the stage task handed over, and the next sync publishes."""
    from core.errors import FatalError
    from core.storage import get_storage
    from pipeline import paths
    from pipeline.extract import stage_resource
    from pipeline.sync import publish_run

    hub = published.hub
    _change_source(published.database)
    staged = stage_resource(resource_code=hub.resource_code, run_id="gone0000run")
    get_storage().delete(paths.run_prefix(hub.resource_id, staged.run_id))
    shutil.rmtree(staged.folder, ignore_errors=True)  # the working copy too, on an object store
    with pytest.raises(FatalError, match="重新运行同步"):
        publish_run(folder=staged.folder)
    assert sync_runs(hub.resource_code)[-1].status == "failed"
    _assert_v1_still_served(published, error_fragment="staged.json missing")
    _assert_next_sync_publishes_v2(published)  # the lock is free: no wait for its lease
