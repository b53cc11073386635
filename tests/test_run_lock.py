"""One run per resource at a time: a lease row in the registry (SQLite and PostgreSQL alike). A second run is
refused with the holder named, or waits a bounded time; a crashed holder or an expired lease is taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import Hub, register_resource, sync_runs, versions


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Hub:
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=120, seed=5)
    return register_resource(kind="sqlite", config={"path": str(database)})


def _sync(hub: Hub, **kwargs):  # noqa: ANN003, ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, **kwargs)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant_lock(hub: Hub, *, run_status: str | None, pid: int, host: str | None = None,
                expires_in: timedelta = timedelta(minutes=10)) -> str:
    """A lock row as another run would have left it, with its run record and staging folder."""
    from core import clock
    from pipeline import locks, paths
    from registry.db import session_scope
    from registry.models import ResourceLock, SyncRun

    run_id = uuid.uuid4().hex
    with session_scope() as session:
        if run_status:
            session.add(SyncRun(id=run_id, resource_id=hub.resource_id, status=run_status))
            session.flush()
        session.add(ResourceLock(resource_id=hub.resource_id, run_id=run_id, host=host or locks.HOST, pid=pid,
                                 acquired_at=clock.now(), expires_at=clock.now() + expires_in))
    (paths.staging_dir(run_id) / "data").mkdir(parents=True)
    return run_id


def _takeovers(code: str) -> list[dict]:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.models import AuditEvent

    with session_scope() as session:
        return [e.detail for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "run.lock_takeover", AuditEvent.resource_code == code))]


def test_a_second_run_is_refused_or_waits(hub: Hub) -> None:
    from core.errors import RetriableError
    from pipeline.locks import resource_lock

    with resource_lock(hub.resource_id, hub.resource_code) as holder:
        with pytest.raises(RetriableError) as refused:
            _sync(hub)
        assert "is being published by another run" in str(refused.value) and holder[:8] in str(refused.value)
        assert versions(hub.resource_code) == []

    # Held now, released in a moment: a run that may wait goes through once it is free.
    from pipeline import locks

    locks.acquire(resource_id=hub.resource_id, resource_code=hub.resource_code, run_id="other-run")
    releaser = threading.Timer(1.0, locks.release, kwargs={"resource_id": hub.resource_id, "run_id": "other-run"})
    releaser.start()
    try:
        report = _sync(hub, wait_seconds=60)
    finally:
        releaser.join()
    assert report.version == 1
    assert [r.status for r in sync_runs(hub.resource_code)] == ["failed", "published"]


def test_a_crashed_holder_is_taken_over(hub: Hub) -> None:
    from pipeline import paths

    abandoned = _plant_lock(hub, run_status="staging", pid=_dead_pid())
    report = _sync(hub)
    assert report.version == 1
    runs = {r.id: r for r in sync_runs(hub.resource_code)}
    assert runs[abandoned].status == "failed" and "abandoned" in runs[abandoned].error
    assert not paths.staging_dir(abandoned).exists()
    (takeover,) = _takeovers(hub.resource_code)
    assert takeover["abandoned_run"] == abandoned and "is gone" in takeover["reason"]


def test_leases_on_other_hosts(hub: Hub) -> None:
    from core.errors import RetriableError

    live = _plant_lock(hub, run_status="staging", pid=1, host="exchange-node-2")
    with pytest.raises(RetriableError, match="exchange-node-2"):
        _sync(hub)

    from core import clock
    from registry.db import session_scope
    from registry.models import ResourceLock

    with session_scope() as session:  # that host stopped renewing: the lease runs out
        session.get(ResourceLock, hub.resource_id).expires_at = clock.now() - timedelta(seconds=1)
    assert _sync(hub).version == 1
    assert _takeovers(hub.resource_code)[0]["abandoned_run"] == live


def test_a_staged_run_keeps_its_lock_between_tasks(hub: Hub) -> None:
    """Under Airflow, stage and publish run in two processes: a staged run's dead stage process is normal."""
    from core.errors import RetriableError
    from pipeline.extract import stage_resource
    from pipeline.sync import publish_run

    _plant_lock(hub, run_status="staged", pid=_dead_pid())
    with pytest.raises(RetriableError, match="being published by another run"):
        _sync(hub)

    from registry.db import session_scope
    from registry.models import ResourceLock

    with session_scope() as session:
        session.delete(session.get(ResourceLock, hub.resource_id))

    # The stage task keeps the lock; the publish task (same run) re-enters it and releases it.
    staged = stage_resource(resource_code=hub.resource_code)
    with pytest.raises(RetriableError):
        _sync(hub)
    report = publish_run(folder=staged.folder)
    assert report.version == 1
    assert _sync(hub).version == 2


def test_a_stale_staged_run_is_not_published(hub: Hub) -> None:
    """If a staged run lost its lock (lease ran out) and another run published meanwhile, its change set and
    carried rows are stale: publishing it is refused and nothing is published twice."""
    import shutil

    from core import clock
    from core.errors import RetriableError
    from pipeline.extract import stage_resource
    from pipeline.sync import publish_run
    from registry.db import session_scope
    from registry.models import ResourceLock

    _sync(hub)
    slow = stage_resource(resource_code=hub.resource_code)
    with session_scope() as session:
        session.get(ResourceLock, hub.resource_id).expires_at = clock.now() - timedelta(seconds=1)
    kept = Path(slow.folder).with_name("kept-aside")
    shutil.copytree(slow.folder, kept)
    assert _sync(hub).version == 2  # takes the expired lock over and removes the stale staging folder
    assert not Path(slow.folder).exists()
    with pytest.raises(RetriableError, match="run the stage step again"):
        publish_run(folder=slow.folder)

    # Even if its folder had survived (staging on a host of its own), the stale run publishes nothing.
    shutil.copytree(kept, slow.folder)
    with pytest.raises(RetriableError, match="stage it again"):
        publish_run(folder=slow.folder)
    assert [v.number for v in versions(hub.resource_code)] == [1, 2]
    assert not Path(slow.folder).exists()
    assert _sync(hub).version == 3
