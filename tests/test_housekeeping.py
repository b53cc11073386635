"""Housekeeping: expired staging folders and unrecorded version folders go; old versions are pruned by the
retention rule, which never touches the latest version or one a subscriber still needs."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from core.storage import get_storage
from samples.loaders import load_sqlite
from tests.helpers import (
    Hub,
    bearer,
    latest,
    register_resource,
    run_prefixes,
    running_api,
    sync_runs,
    versions,
)

# Crashed runs' leftovers and pruned versions go from the local folder and from an object store alike.
pytestmark = pytest.mark.usefixtures("storage_backend")


def _sync(hub: Hub, **kwargs):  # noqa: ANN003, ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, **kwargs)


def _age(path: Path, hours: float) -> None:
    old = time.time() - hours * 3600
    for item in [path, *path.rglob("*")]:
        os.utime(item, (old, old))


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=80, seed=2)
    return register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True), database


def _new_version(hub: Hub, database: Path, n: int) -> None:
    """A snapshot version (a full read): each stands alone, so retention is only about subscribers and age.
    Layered versions, which keep the versions they read, are covered in test_layered_versions.py."""
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(f"UPDATE enterprises SET status = '变更{n}', updated_at = '2026-0{n}-01T08:00:00+08:00' "
                     f"WHERE id = {n}")
    _sync(hub, full=True)


def _backdate_versions(hub: Hub, days: int) -> None:
    from sqlalchemy import update

    from core import clock
    from registry.db import session_scope
    from registry.exchange.models import DatasetVersion

    with session_scope() as session:
        session.execute(update(DatasetVersion).where(DatasetVersion.resource_id == hub.resource_id)
                        .values(created_at=clock.now() - timedelta(days=days)))


def test_clean_staging_removes_only_what_no_run_needs(source: tuple[Hub, Path]) -> None:
    from pipeline import locks, paths
    from pipeline.extract import stage_resource
    from pipeline.housekeeping import clean_staging
    from registry.db import session_scope
    from registry.exchange.models import SyncRun

    hub, _ = source
    _sync(hub)
    # An old staged run that still holds its lock (waiting for its publish task) is kept.
    waiting = stage_resource(resource_code=hub.resource_code, hand_over=True)
    _age(Path(waiting.folder), hours=30)
    # A run killed mid-stage a day ago: its folder and its run record are left behind.
    with session_scope() as session:
        session.add(SyncRun(id="killed-run", resource_id=hub.resource_id, status="staging"))
    dead = paths.run_dir(hub.resource_id, "killed-run")
    (dead / "data").mkdir(parents=True)
    (dead / "data" / "part-00000.parquet").write_bytes(b"half written")
    get_storage().push(dead)
    _age(dead, hours=30)
    fresh = paths.run_dir(hub.resource_id, "fresh-run")
    fresh.mkdir(parents=True)
    _age(fresh, hours=0)  # made now by the hub's clock, which a test may pin ahead of the file system's
    # A run prefix the registry never recorded as a version: killed after its manifest, before the commit.
    orphan = paths.run_dir(hub.resource_id, "deadbeef" * 4)
    (orphan / "data").mkdir(parents=True)
    (orphan / "manifest.json").write_text("{}")
    get_storage().push(orphan)
    _age(orphan, hours=30)
    served = paths.resolve(latest(hub.resource_code).path)
    _age(served, hours=30)

    removed = clean_staging(max_age_hours=24)

    assert sorted(removed) == sorted([f"datasets/{hub.resource_id}/killed-run",
                                      f"datasets/{hub.resource_id}/{'deadbeef' * 4}"])
    assert run_prefixes(hub.resource_id) == sorted(["fresh-run", Path(waiting.folder).name, served.name])
    assert not dead.exists() and not orphan.exists()
    assert fresh.exists() and Path(waiting.folder).exists() and served.exists()
    runs = {r.id: r for r in sync_runs(hub.resource_code)}
    assert runs["killed-run"].status == "failed" and "abandoned" in runs["killed-run"].error
    locks.release(resource_id=hub.resource_id, run_id=waiting.run_id)


def test_retention_keeps_the_latest_and_what_a_subscriber_needs(source: tuple[Hub, Path]) -> None:
    from pipeline.changes_feed import FullCopyNeeded, changes_since
    from pipeline.housekeeping import prune_versions
    from pipeline.paths import resolve
    from delivery.verify import verify_copy
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    hub, database = source
    _sync(hub)
    _new_version(hub, database, 2)
    with running_api() as api:  # the consumer downloads v2 and keeps it
        answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                              headers=bearer(hub.token), timeout=30)
        assert answer.status_code == 200 and answer.headers["X-Govshare-Version"] == "2"
    for n in (3, 4, 5):
        _new_version(hub, database, n)
    assert [v.number for v in versions(hub.resource_code)] == [1, 2, 3, 4, 5]

    assert prune_versions(keep_last=1, keep_days=30) == []  # all younger than 30 days
    _backdate_versions(hub, days=60)
    pruned = prune_versions(keep_last=1, keep_days=30)

    assert pruned == [f"{hub.resource_code} v1"]  # v2 is held by the subscriber, v3-v5 carry its changes
    by_number = {v.number: v for v in versions(hub.resource_code)}
    assert not resolve(by_number[1].path).exists() and resolve(by_number[2].path).exists()
    with session_scope() as session:
        resource = get_resource(session, code=hub.resource_code)
        assert [v.number for v in changes_since(session, resource=resource, since=2).versions] == [3, 4, 5]
    with pytest.raises(Exception, match="pruned by the retention rule"):
        verify_copy(resource_code=hub.resource_code, path=Path(__file__), version=1)
    assert prune_versions(keep_last=1, keep_days=30) == []  # nothing twice

    # Once the subscriber is gone, everything but the latest may go; the latest never does.
    from sqlalchemy import update

    from registry.sharing.models import Subscription

    with session_scope() as session:
        session.execute(update(Subscription).values(status="cancelled"))
    assert prune_versions(keep_last=0, keep_days=0) == [f"{hub.resource_code} v{n}" for n in (4, 3, 2)]
    assert resolve(latest(hub.resource_code).path).exists()
    with session_scope() as session:
        resource = get_resource(session, code=hub.resource_code)
        with pytest.raises(FullCopyNeeded, match="removed by the retention rule"):
            changes_since(session, resource=resource, since=2)
        assert changes_since(session, resource=resource, since=5).versions == []


def test_a_run_that_starts_while_housekeeping_looks_keeps_its_folder(source: tuple[Hub, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Housekeeping asked which runs hold a lock, then listed the run folders: a run that took its lock and
    staged in between (the maintenance DAG beside a sync) was taken for abandoned, its staged files removed and
    the live run marked failed, so its publish task found nothing. The folders are now listed first."""
    import pipeline.locks as locks
    from pipeline.extract import stage_resource
    from pipeline.housekeeping import clean_staging
    from pipeline.sync import publish_run

    hub, database = source
    _sync(hub)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("UPDATE enterprises SET status = '注销', updated_at = '2026-03-01T08:00:00+08:00' WHERE id = 3")
    original = locks.live_runs
    started = []

    def live_runs_then_a_run_starts() -> set[str]:
        held = original()
        if not started:  # the stage task of a scheduled sync, between housekeeping's two looks
            started.append(stage_resource(resource_code=hub.resource_code, full=True, hand_over=True))
        return held

    monkeypatch.setattr(locks, "live_runs", live_runs_then_a_run_starts)
    clean_staging()
    monkeypatch.setattr(locks, "live_runs", original)
    (staged,) = started
    assert sync_runs(hub.resource_code)[-1].status == "staged"
    assert publish_run(folder=staged.folder).version == 2
    assert clean_staging() == [] and latest(hub.resource_code).number == 2
