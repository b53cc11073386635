"""One run per resource at a time: a lease row in the registry (SQLite and PostgreSQL alike). A second run is
refused with the holder named, or waits a bounded time. A holder that is gone is taken over at once in every
run state (staging, staged, publishing), a real SIGKILL in the publish phase included; Airflow's stage task
hands the lock over to its publish task explicitly."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from core.storage import get_storage
from samples.loaders import load_sqlite
from tests.helpers import (
    REPO,
    Hub,
    child_env,
    hub_child,
    latest,
    read_version,
    register_resource,
    run_prefixes,
    sigkill,
    sqlite_execute,
    sqlite_query,
    stored_names,
    sync_runs,
    table_rows,
    versions,
    wait_for_marker,
)

# Every test runs on the local folder and on an S3 object store (tests/s3_server.py), with each registry.
pytestmark = pytest.mark.usefixtures("storage_backend")

ROWS = 120


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Hub:
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=5)
    return register_resource(kind="sqlite", config={"path": str(database)})


def _source(hub: Hub) -> Path:
    from registry.db import session_scope
    from registry.catalog.sources import get_source

    with session_scope() as session:
        return Path(get_source(session, name=hub.source_name).config["path"])


def _change(hub: Hub, row: int, stamp: str = "2030-01-01T00:00:00+08:00") -> None:
    sqlite_execute(_source(hub), f"UPDATE enterprises SET name = name || '（变更）', updated_at = '{stamp}' "
                                 f"WHERE id = {row}")


def _sync(hub: Hub, **kwargs):  # noqa: ANN003, ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, **kwargs)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant_lock(hub: Hub, *, run_status: str | None, pid: int, host: str | None = None,
                expires_in: timedelta = timedelta(minutes=1)) -> str:
    """A lock row as another run would have left it, with its run record and staging folder."""
    from core import clock
    from pipeline import locks, paths
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock, SyncRun

    run_id = uuid.uuid4().hex
    with session_scope() as session:
        if run_status:
            session.add(SyncRun(id=run_id, resource_id=hub.resource_id, status=run_status))
            session.flush()
        session.add(ResourceLock(resource_id=hub.resource_id, run_id=run_id, host=host or locks.HOST, pid=pid,
                                 acquired_at=clock.now(), expires_at=clock.now() + expires_in))
    (paths.run_dir(hub.resource_id, run_id) / "data" / "part-00000.parquet").parent.mkdir(parents=True)
    (paths.run_dir(hub.resource_id, run_id) / "data" / "part-00000.parquet").write_bytes(b"half written")
    get_storage().push(paths.run_dir(hub.resource_id, run_id))
    return run_id


def _takeovers(code: str) -> list[dict]:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        return [e.detail for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "run.lock_takeover", AuditEvent.resource_code == code))]


def _lock(hub: Hub):  # noqa: ANN202 - ResourceLock | None
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock

    with session_scope() as session:
        lock = session.get(ResourceLock, hub.resource_id)
        if lock is not None:
            session.expunge(lock)
        return lock


def test_a_second_run_is_refused_or_waits(hub: Hub) -> None:
    from core.errors import RetriableError
    from pipeline import locks
    from pipeline.locks import resource_lock

    with resource_lock(hub.resource_id, hub.resource_code) as holder:
        with pytest.raises(RetriableError) as refused:
            _sync(hub)
        assert "is being published by another run" in str(refused.value) and holder[:8] in str(refused.value)
        from core import clock

        # The time it names is Beijing time, as `govshare runs` shows the same run's start (it said UTC).
        lock = _lock(hub)
        assert f"since {clock.to_beijing(lock.acquired_at):%H:%M:%S} 北京时间" in str(refused.value)
        assert versions(hub.resource_code) == []

    # Held now, released in a moment: a run that may wait goes through once it is free.
    locks.acquire(resource_id=hub.resource_id, resource_code=hub.resource_code, run_id="other-run")
    releaser = threading.Timer(1.0, locks.release, kwargs={"resource_id": hub.resource_id, "run_id": "other-run"})
    releaser.start()
    try:
        report = _sync(hub, wait_seconds=60)
    finally:
        releaser.join()
    assert report.version == 1
    assert [r.status for r in sync_runs(hub.resource_code)] == ["failed", "published"]  # the refused run, recorded


@pytest.mark.parametrize("state", ["staging", "staged"])
def test_a_gone_holder_is_taken_over_at_once_in_every_run_state(hub: Hub, state: str) -> None:
    from pipeline import paths

    abandoned = _plant_lock(hub, run_status=state, pid=_dead_pid())
    started = time.monotonic()
    report = _sync(hub)  # no wait: a refusal would raise
    assert report.version == 1 and time.monotonic() - started < 60
    runs = {r.id: r for r in sync_runs(hub.resource_code)}
    assert runs[abandoned].status == "failed" and "abandoned" in runs[abandoned].error
    assert abandoned not in run_prefixes(hub.resource_id)
    (takeover,) = _takeovers(hub.resource_code)
    assert takeover["abandoned_run"] == abandoned and "is gone" in takeover["reason"]
    assert takeover["removed"] == [paths.run_prefix(hub.resource_id, abandoned)]


def test_leases_on_other_hosts_end_when_the_heartbeat_stops(hub: Hub) -> None:
    from core import clock
    from core.errors import RetriableError
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock

    live = _plant_lock(hub, run_status="staging", pid=1, host="exchange-node-2")
    with pytest.raises(RetriableError, match="exchange-node-2"):
        _sync(hub)
    with session_scope() as session:  # that host stopped beating: its lease runs out
        session.get(ResourceLock, hub.resource_id).expires_at = clock.now() - timedelta(seconds=1)
    assert _sync(hub).version == 1
    (takeover,) = _takeovers(hub.resource_code)
    assert takeover["abandoned_run"] == live and "heartbeat missed" in takeover["reason"]


def test_a_holder_beats_while_it_works(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import clock
    from pipeline import locks

    monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.2)
    with locks.resource_lock(hub.resource_id, hub.resource_code):
        first = clock.as_utc(_lock(hub).expires_at)
        deadline = time.monotonic() + 30
        while clock.as_utc(_lock(hub).expires_at) == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert clock.as_utc(_lock(hub).expires_at) > first
    assert _lock(hub) is None


STAGE_AND_HAND_OVER = """
from pipeline.extract import stage_resource
print(stage_resource(resource_code={code!r}, hand_over=True).folder)
"""


def test_the_stage_task_hands_the_lock_over_to_its_publish_task(hub: Hub, tmp_path: Path) -> None:
    """Under Airflow, stage and publish run in two processes: the stage process ends after handing over."""
    from core import clock
    from core.errors import RetriableError
    from pipeline.sync import publish_run
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock

    # The stage task runs on another worker: on an object store, a working copy of its own (the publish task
    # here finds the staged run in the store).
    other_worker = {**child_env(), "GOVSHARE_STORAGE_CACHE": str(tmp_path / "other-worker")}
    staged = subprocess.run([sys.executable, "-c", STAGE_AND_HAND_OVER.format(code=hub.resource_code)],
                            cwd=REPO, env=other_worker, capture_output=True, text=True, timeout=300)
    assert staged.returncode == 0, staged.stderr[-2000:]
    folder = staged.stdout.strip().splitlines()[-1]
    lock = _lock(hub)
    assert lock.pid == 0 and lock.run_id == Path(folder).name  # no process holds it: handed over
    with pytest.raises(RetriableError, match="handed over to its publish task"):
        _sync(hub)  # the stage process is gone, but the run is not abandoned

    report = publish_run(folder=folder)  # the publish task takes it back and releases it
    assert report.version == 1 and _lock(hub) is None and _takeovers(hub.resource_code) == []
    assert read_version(latest(hub.resource_code)).num_rows == ROWS

    # A hand-over nobody takes back (the publish task never came) lasts only until its deadline.
    _change(hub, 3)
    subprocess.run([sys.executable, "-c", STAGE_AND_HAND_OVER.format(code=hub.resource_code)], cwd=REPO,
                   env=child_env(), check=True, capture_output=True, timeout=300)
    with session_scope() as session:
        session.get(ResourceLock, hub.resource_id).expires_at = clock.now() - timedelta(seconds=1)
    assert _sync(hub).version == 2
    (takeover,) = _takeovers(hub.resource_code)
    assert "hand-over to its publish task expired" in takeover["reason"]


def test_a_stale_staged_run_is_not_published(hub: Hub) -> None:
    """If a staged run lost its lock (taken over) and another run published meanwhile, its change set and
    carried rows are stale: publishing it is refused and nothing is published twice."""
    import shutil

    from core import clock
    from core.errors import FatalError, RetriableError
    from pipeline.extract import stage_resource
    from pipeline.sync import publish_run
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock

    _sync(hub)
    _change(hub, 5)
    slow = stage_resource(resource_code=hub.resource_code, hand_over=True)
    with session_scope() as session:
        session.get(ResourceLock, hub.resource_id).expires_at = clock.now() - timedelta(seconds=1)
    kept = Path(slow.folder).with_name("kept-aside")
    shutil.copytree(slow.folder, kept)
    assert _sync(hub).version == 2  # takes the expired lock over and removes the stale staging folder
    assert not Path(slow.folder).exists()
    with pytest.raises(FatalError, match="run the sync again"):  # gone for good: not retried in vain
        publish_run(folder=slow.folder)

    # Even if its folder had survived (staging on a host of its own), the stale run publishes nothing.
    shutil.copytree(kept, slow.folder)
    with pytest.raises(RetriableError, match="stage it again"):
        publish_run(folder=slow.folder)
    assert [v.number for v in versions(hub.resource_code)] == [1, 2]
    assert not Path(slow.folder).exists()
    _change(hub, 6, "2030-02-01T00:00:00+08:00")
    assert _sync(hub).version == 3


# --- a real SIGKILL in the publish phase -----------------------------------------------------------------------

PAUSED_PUBLISH = """
import sys, time
from pathlib import Path
import pipeline.publish as publish
marker, where = Path(sys.argv[1]), sys.argv[2]
def pause(original):
    def paused(*args, **kwargs):
        marker.write_text("paused")
        time.sleep(600)
        return original(*args, **kwargs)
    return paused
if where == "before-manifest":  # staged, lock re-entered for the publish, manifest about to be written
    publish.write_manifest = pause(publish.write_manifest)
else:  # parts and manifest written (and pushed to an object store), the registry transaction not yet committed
    publish._record = pause(publish._record)
from pipeline.sync import sync_resource
sync_resource(resource_code={code!r})
"""


def _kill_in_publish(hub: Hub, where: str, tmp_path: Path) -> None:
    marker = tmp_path / f"paused-{where}"
    with hub_child(PAUSED_PUBLISH.format(code=hub.resource_code), str(marker), where) as child:
        wait_for_marker(child, marker, "reached the publish phase")
        sigkill(child)


@pytest.mark.parametrize("where", ["before-manifest", "after-manifest"])
def test_a_publish_killed_with_sigkill_is_taken_over_at_once(hub: Hub, where: str, tmp_path: Path) -> None:
    from pipeline import paths

    _sync(hub)
    v1_rows = table_rows(read_version(versions(hub.resource_code)[0]))
    _change(hub, 7)
    _kill_in_publish(hub, where, tmp_path)

    # The previous version is untouched and served; the killed run holds the lock, staged, its pid dead.
    assert [v.number for v in versions(hub.resource_code)] == [1]
    assert table_rows(read_version(versions(hub.resource_code)[0])) == v1_rows
    killed = sync_runs(hub.resource_code)[-1]
    assert killed.status == "staged" and _lock(hub).run_id == killed.id and _lock(hub).pid != 0
    # Its parts are under its own prefix (staged; with the manifest too after it was written), no version.
    assert killed.id in run_prefixes(hub.resource_id)
    manifest = f"{paths.run_prefix(hub.resource_id, killed.id)}/manifest.json"
    assert (manifest in stored_names()) == (where == "after-manifest")

    # The next run takes the lock over at once (no lease to wait out), clears what the killed run left and
    # publishes exactly the source.
    started = time.monotonic()
    report = _sync(hub)
    assert report.version == 2 and time.monotonic() - started < 60
    assert table_rows(read_version(latest(hub.resource_code)), ("id", "name", "status")) == \
        sqlite_query(_source(hub), "SELECT id, name, status FROM enterprises ORDER BY id")
    runs = {r.id: r for r in sync_runs(hub.resource_code)}
    assert runs[killed.id].status == "failed" and "abandoned" in runs[killed.id].error
    (takeover,) = _takeovers(hub.resource_code)
    assert takeover["abandoned_run"] == killed.id and "is gone" in takeover["reason"]
    assert killed.id not in run_prefixes(hub.resource_id)
    assert not any(killed.id in name for name in stored_names())
    assert takeover["removed"] == [paths.run_prefix(hub.resource_id, killed.id)]


def test_housekeeping_removes_a_run_prefix_no_registry_row_names(hub: Hub, tmp_path: Path) -> None:
    """A publish killed between its manifest and its commit leaves a prefix no version names; housekeeping
    removes it at once (no age limit): its run is dead, so it will never be committed."""
    from pipeline import paths
    from pipeline.housekeeping import clean_staging

    _sync(hub)
    _change(hub, 9)
    _kill_in_publish(hub, "after-manifest", tmp_path)
    killed = sync_runs(hub.resource_code)[-1]
    served = latest(hub.resource_code).path

    removed = clean_staging(max_age_hours=24)
    assert removed == [paths.run_prefix(hub.resource_id, killed.id)]
    assert run_prefixes(hub.resource_id) == [Path(served).name]
    assert not any(killed.id in name for name in stored_names())


KILLED_AFTER_COMMIT = """
import sys, time
from pathlib import Path
import pipeline.publish as publish
marker = Path(sys.argv[1])
original = publish._record
def committed_then_paused(*args, **kwargs):
    report = original(*args, **kwargs)  # the version is committed; Airflow has not heard of it yet
    marker.write_text("committed")
    time.sleep(600)
    return report
publish._record = committed_then_paused
from pipeline.extract import stage_resource
from pipeline.sync import publish_run
staged = stage_resource(resource_code={code!r}, hand_over=True)  # the stage task
marker.with_suffix(".folder").write_text(staged.folder)
publish_run(folder=staged.folder)  # the publish task, killed after its commit
"""


def test_a_publish_task_retried_after_its_commit_returns_its_version_and_removes_nothing(
        hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow retries a publish task that died after the commit (SIGKILL, a lost worker): the retry used to
    find the resource 'already at v2', discard the run and delete its prefix, which is v2's folder: the served
    version lost its files and its run was marked failed. The retry now returns the committed version."""
    from pipeline.run.lifecycle import follow_up
    from pipeline.sync import publish_run

    _sync(hub)
    _change(hub, 11)
    marker = tmp_path / "committed"
    with hub_child(KILLED_AFTER_COMMIT.format(code=hub.resource_code), str(marker)) as child:
        wait_for_marker(child, marker, "committed")
        sigkill(child)
    folder = marker.with_suffix(".folder").read_text()
    v2 = latest(hub.resource_code)
    assert v2.number == 2 and _lock(hub).run_id == v2.run_id  # the killed task still names the lock

    report = publish_run(folder=folder)  # Airflow's retry of the publish task
    assert report.version == 2 and report.run_id == v2.run_id and report.manifest_sha256 == v2.manifest_sha256
    assert report.previous_version == 1
    assert follow_up(resource_code=hub.resource_code, version=report.version)["errors"] == {}
    assert [v.number for v in versions(hub.resource_code)] == [1, 2]
    expected = sqlite_query(_source(hub), "SELECT id, name, status FROM enterprises ORDER BY id")
    assert table_rows(read_version(latest(hub.resource_code)), ("id", "name", "status")) == expected
    assert sync_runs(hub.resource_code)[-1].status == "published" and _lock(hub) is None

    # An error after the commit (here: the working copy's bookkeeping) fails the call, never the version.
    import pipeline.publish as publish

    original = publish._record

    def committed_then_failed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        original(*args, **kwargs)
        raise OSError("after the commit")

    monkeypatch.setattr(publish, "_record", committed_then_failed)
    _change(hub, 12, "2030-01-02T00:00:00+08:00")
    with pytest.raises(OSError, match="after the commit"):
        _sync(hub)
    monkeypatch.setattr(publish, "_record", original)
    assert [v.number for v in versions(hub.resource_code)] == [1, 2, 3]
    expected = sqlite_query(_source(hub), "SELECT id, name, status FROM enterprises ORDER BY id")
    assert table_rows(read_version(latest(hub.resource_code)), ("id", "name", "status")) == expected
    assert sync_runs(hub.resource_code)[-1].status == "published" and _lock(hub) is None
    _change(hub, 13, "2030-01-03T00:00:00+08:00")
    assert _sync(hub).version == 4


def test_a_run_stopped_with_ctrl_c_is_recorded_with_a_reason(hub: Hub, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) during a publish: the run was cleaned up but recorded failed with an empty error, so
    `govshare runs` showed a failure without a reason; it now says it was interrupted."""
    import signal

    _sync(hub)
    _change(hub, 14)
    marker = tmp_path / "paused-before-manifest"
    with hub_child(PAUSED_PUBLISH.format(code=hub.resource_code), str(marker), "before-manifest") as child:
        wait_for_marker(child, marker, "reached the publish phase")
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    stopped = sync_runs(hub.resource_code)[-1]
    assert stopped.status == "failed" and "interrupted (KeyboardInterrupt" in stopped.error
    assert [v.number for v in versions(hub.resource_code)] == [1] and _lock(hub) is None
    assert _sync(hub).version == 2
