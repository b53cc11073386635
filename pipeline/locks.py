"""One run per resource at a time (只允许一个运行发布同一资源): a lease row in the registry.

The lock is a row of ``resource_locks`` keyed by the resource, so it works the same on SQLite and PostgreSQL
and across hosts (the storage folder may be shared, the registry always is). A second run waits up to
``wait_seconds`` and is then refused with a RetriableError naming the holder. A holder that crashed cannot
block for ever: its lease runs out (long runs renew it while they read), and on the same host a dead holder
process is noticed at once, its run marked failed and its staging folder removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from core import clock
from core.errors import RetriableError
from pipeline import paths
from registry.audit import record_event
from registry.db import session_scope
from registry.models import ResourceLock, SyncRun

LEASE_SECONDS = 15 * 60
POLL_SECONDS = 0.5
HOST = socket.gethostname()[:255]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(lock: ResourceLock, run_status: str | None, now: datetime) -> str | None:
    """Why the holder's lock may be taken over, or None while it is held.

    A run that is "staged" holds the lock between its stage and publish tasks (two processes under Airflow),
    so a dead stage process is normal then: only its lease counts.
    """
    if run_status in ("failed", "published"):
        return f"run {lock.run_id[:8]} already ended ({run_status}) without releasing its lock"
    if clock.as_utc(lock.expires_at) <= now:
        return f"lease expired at {clock.as_utc(lock.expires_at).isoformat()}"
    if run_status != "staged" and lock.host == HOST and lock.pid != os.getpid() and not _process_alive(lock.pid):
        return f"holder process {lock.pid} on {lock.host} is gone"
    return None


_REENTERED = ResourceLock(resource_id=0, run_id="(re-entered)", host="", pid=0)


def _try_acquire(resource_id: int, run_id: str, resource_code: str) -> ResourceLock | None:
    """Take the lock: None when taken fresh, _REENTERED when this run held it already, else the holder."""
    now = clock.now()
    expires = now + timedelta(seconds=LEASE_SECONDS)
    try:
        with session_scope() as session:
            session.add(ResourceLock(resource_id=resource_id, run_id=run_id, host=HOST, pid=os.getpid(),
                                     acquired_at=now, expires_at=expires))
        return None
    except IntegrityError:
        pass
    with session_scope() as session:
        held = session.get(ResourceLock, resource_id)
        if held is None:
            return ResourceLock(resource_id=resource_id, run_id="", host="", pid=0, expires_at=now)  # freed: retry
        if held.run_id == run_id:  # the same run in another task (stage, then publish): re-entrant
            held.host, held.pid, held.expires_at = HOST, os.getpid(), expires
            return _REENTERED
        holder_run = session.get(SyncRun, held.run_id)
        why = _abandoned(held, holder_run.status if holder_run else None, now)
        if why is None:
            session.expunge(held)
            return held
        abandoned = held.run_id
        # Conditional on the row we looked at, so two runs taking over at once cannot both win.
        taken = session.execute(update(ResourceLock).where(
            ResourceLock.resource_id == resource_id, ResourceLock.run_id == abandoned,
            ResourceLock.expires_at == held.expires_at).values(
            run_id=run_id, host=HOST, pid=os.getpid(), acquired_at=now, expires_at=expires),
            execution_options={"synchronize_session": False})
        if taken.rowcount != 1:
            return ResourceLock(resource_id=resource_id, run_id="", host="", pid=0, expires_at=now)
        _fail_abandoned_run(session, abandoned, why)
        record_event(session, actor="pipeline", action="run.lock_takeover", resource_code=resource_code,
                     detail={"run_id": run_id, "abandoned_run": abandoned, "reason": why})
    shutil.rmtree(paths.staging_dir(abandoned), ignore_errors=True)
    return None


def _fail_abandoned_run(session, run_id: str, why: str) -> None:  # noqa: ANN001 - Session
    run = session.get(SyncRun, run_id)
    if run is not None and run.status in ("running", "staging", "staged"):
        run.status, run.finished_at = "failed", clock.now()
        run.error = f"abandoned: {why}; its lock was taken over and its staging folder removed"


def acquire(*, resource_id: int, resource_code: str, run_id: str, wait_seconds: float = 0) -> bool:
    """Hold the resource's lock for `run_id`, waiting at most `wait_seconds`; RetriableError when refused.

    True when taken now, False when `run_id` held it already (its stage task, then its publish task).
    """
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        holder = _try_acquire(resource_id, run_id, resource_code)
        if holder is None or holder is _REENTERED:
            return holder is None
        if not holder.run_id:  # the row changed under us: look again at once
            continue
        if time.monotonic() >= deadline:
            waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
            raise RetriableError(
                f"资源 {resource_code} 正由另一运行发布 / resource {resource_code} is being published by another run "
                f"({holder.run_id[:8]} on {holder.host}, pid {holder.pid}, since "
                f"{clock.as_utc(holder.acquired_at).strftime('%H:%M:%S')} UTC){waited}; wait for it to finish and retry")
        time.sleep(POLL_SECONDS)


def renew(*, resource_id: int, run_id: str) -> None:
    """Push the lease out again; long reads call this so a live run never looks abandoned."""
    with session_scope() as session:
        session.execute(update(ResourceLock).where(ResourceLock.resource_id == resource_id,
                                                   ResourceLock.run_id == run_id)
                        .values(expires_at=clock.now() + timedelta(seconds=LEASE_SECONDS)))


def release(*, resource_id: int, run_id: str) -> None:
    with session_scope() as session:
        session.execute(delete(ResourceLock).where(ResourceLock.resource_id == resource_id,
                                                   ResourceLock.run_id == run_id))


@contextmanager
def resource_lock(resource_id: int, resource_code: str, *, run_id: str | None = None,
                  wait_seconds: float = 0) -> Iterator[str]:
    """Hold the lock for the block (a fresh run id unless given); released however the block ends."""
    import uuid

    run_id = run_id or uuid.uuid4().hex
    acquire(resource_id=resource_id, resource_code=resource_code, run_id=run_id, wait_seconds=wait_seconds)
    try:
        yield run_id
    finally:
        release(resource_id=resource_id, run_id=run_id)
