"""One run per resource at a time (只允许一个运行发布同一资源): a lease row in the registry.

The lock is a row of ``resource_locks`` keyed by the resource, so it works the same on SQLite and PostgreSQL
and across hosts (the storage folder may be shared, the registry always is). A second run waits up to
``wait_seconds`` and is then refused with a RetriableError naming the holder.

A holder that is gone never blocks the resource, whatever its run was doing (staging, staged, publishing):

- the holder process renews its lease from a heartbeat thread while it holds the lock, so a lease that ran
  out means the holder stopped beating (killed, frozen, its host down): the lock is taken over;
- on the same host, a holder process that no longer exists is noticed at once (a SIGKILL);
- a run that already ended (failed, published, unchanged) without releasing is taken over.

Airflow runs stage and publish in two processes. The stage task hands the lock over explicitly
(:func:`hand_over`): the row then names no process, only a deadline (``HANDOVER_SECONDS``) by which the
publish task of the same run takes it back (:func:`acquire` with the same run id). A takeover is audited,
the abandoned run is marked failed, its staging folder and any version folder it renamed but never committed
are removed, and runs of the resource left in ``staging`` (killed before they held the lock) are closed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from core import clock
from core.errors import RetriableError
from core.storage import get_storage
from pipeline import paths
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import DatasetVersion, ResourceLock, SyncRun

LEASE_SECONDS = 120  # a holder that has not beaten for this long is gone
HEARTBEAT_SECONDS = 20  # how often a holder's heartbeat renews its lease
HANDOVER_SECONDS = 10 * 60  # how long a lock handed over by a stage task waits for its publish task
POLL_SECONDS = 0.5
HOST = socket.gethostname()[:255]
LIVE_RUN_STATES = ("running", "staging", "staged")
log = logging.getLogger(__name__)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(lock: ResourceLock, run_status: str | None, now: datetime) -> str | None:
    """Why the holder's lock may be taken over, or None while it is held."""
    if run_status is not None and run_status not in LIVE_RUN_STATES:
        return f"run {lock.run_id[:8]} already ended ({run_status}) without releasing its lock"
    if clock.as_utc(lock.expires_at) <= now:
        what = "hand-over to its publish task expired" if not lock.pid else "heartbeat missed"
        return f"{what}: lease ran out at {clock.as_utc(lock.expires_at).isoformat()}"
    if lock.pid and lock.host == HOST and lock.pid != os.getpid() and not _process_alive(lock.pid):
        return f"holder process {lock.pid} on {lock.host} is gone"
    return None


# --- the heartbeat: a holder's lease stays fresh while its process lives --------------------------------------

_BEATING: dict[tuple[int, str], threading.Event] = {}
_BEATING_LOCK = threading.Lock()


def _beat(resource_id: int, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if not renew(resource_id=resource_id, run_id=run_id):
                return  # taken over or released meanwhile: nothing to keep alive
        except Exception:
            log.warning("heartbeat of run %s could not renew its lock", run_id[:8], exc_info=True)


def _start_heartbeat(resource_id: int, run_id: str) -> None:
    with _BEATING_LOCK:
        if (resource_id, run_id) in _BEATING:
            return
        stop = threading.Event()
        _BEATING[(resource_id, run_id)] = stop
    threading.Thread(target=_beat, args=(resource_id, run_id, stop), daemon=True,
                     name=f"govshare-lock-{run_id[:8]}").start()


def _stop_heartbeat(resource_id: int, run_id: str) -> None:
    with _BEATING_LOCK:
        stop = _BEATING.pop((resource_id, run_id), None)
    if stop is not None:
        stop.set()


# --- taking and giving up the lock ----------------------------------------------------------------------------

_REENTERED = ResourceLock(resource_id=0, run_id="(re-entered)", host="", pid=0)


def _retry(now: datetime) -> ResourceLock:
    return ResourceLock(resource_id=0, run_id="", host="", pid=0, expires_at=now)  # the row changed: look again


def _try_acquire(resource_id: int, run_id: str, resource_code: str) -> ResourceLock | None:
    """Take the lock: None when taken fresh, _REENTERED when this run held it already, else the holder."""
    now = clock.now()
    expires = now + timedelta(seconds=LEASE_SECONDS)
    try:
        with session_scope() as session:
            session.add(ResourceLock(resource_id=resource_id, run_id=run_id, host=HOST, pid=os.getpid(),
                                     acquired_at=now, expires_at=expires))
            _close_stray_runs(session, resource_id, keep=run_id)
        return None
    except IntegrityError:
        pass
    abandoned = None
    with session_scope() as session:
        held = session.get(ResourceLock, resource_id)
        if held is None:
            return _retry(now)
        if held.run_id == run_id:  # the same run in another task (stage, then publish): it takes the lock back
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
            return _retry(now)
        removed = _remove_leftovers(session, resource_id, abandoned)
        _close_stray_runs(session, resource_id, keep=run_id, why=f"abandoned: {why}")
        record_event(session, actor="pipeline", action="run.lock_takeover", resource_code=resource_code,
                     detail={"run_id": run_id, "abandoned_run": abandoned, "reason": why,
                             "holder": {"host": held.host, "pid": held.pid}, "removed": removed})
    return None


def _close_stray_runs(session, resource_id: int, *, keep: str, why: str | None = None) -> None:
    """Runs of the resource still marked live are not: only the lock's holder runs, and it is ``keep`` now.
    (A run killed before it held the lock, or whose lock was just taken over.)"""
    for run in session.scalars(select(SyncRun).where(SyncRun.resource_id == resource_id, SyncRun.id != keep,
                                                     SyncRun.status.in_(LIVE_RUN_STATES))):
        run.status, run.finished_at = "failed", clock.now()
        run.error = (why or "abandoned: it ended without holding the resource's lock (killed before taking it)") \
            + "; its staging folder was removed"
        _remove_prefix(session, resource_id, run.id)


def _remove_leftovers(session, resource_id: int, run_id: str) -> list[str]:
    """The abandoned run's own prefix, staged or even with its manifest written (killed before the commit): no
    version names it, so it is not served, and never will be."""
    return [prefix] if (prefix := _remove_prefix(session, resource_id, run_id)) else []


def _remove_prefix(session, resource_id: int, run_id: str) -> str | None:
    """Remove a run's prefix from the storage unless a version names it; the prefix, if it existed."""
    prefix = paths.run_prefix(resource_id, run_id)
    if session.scalar(select(DatasetVersion.id).where(DatasetVersion.path == prefix)) is not None:
        return None
    storage = get_storage()
    if not (storage.local(prefix).exists() or storage.exists(prefix)):
        return None
    storage.delete(prefix)
    return prefix


def acquire(*, resource_id: int, resource_code: str, run_id: str, wait_seconds: float = 0) -> bool:
    """Hold the resource's lock for `run_id`, waiting at most `wait_seconds`; RetriableError when refused.

    True when taken now, False when `run_id` held it already (its stage task, then its publish task). While
    held, a heartbeat thread of this process keeps the lease fresh.
    """
    deadline = time.monotonic() + max(0.0, wait_seconds)
    announced = False
    while True:
        holder = _try_acquire(resource_id, run_id, resource_code)
        if holder is None or holder is _REENTERED:
            _start_heartbeat(resource_id, run_id)
            return holder is None
        if not holder.run_id:  # the row changed under us: look again at once
            continue
        if time.monotonic() >= deadline:
            waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
            raise RetriableError(f"{_busy(resource_code, holder)}{waited}; wait for it to finish and retry")
        if not announced:  # a waiting run says once what it waits for (the CLI shows it on stderr)
            log.warning("%s; waiting up to %g s (等待中)", _busy(resource_code, holder), wait_seconds)
            announced = True
        time.sleep(POLL_SECONDS)


def _busy(resource_code: str, holder: ResourceLock) -> str:
    # Beijing time, as `govshare runs` and every page show it (北京时间)
    who = (f"handed over to its publish task until {clock.to_beijing(holder.expires_at):%H:%M:%S} 北京时间"
           if not holder.pid else f"on {holder.host}, pid {holder.pid}")
    return (f"资源 {resource_code} 正由另一运行发布 / resource {resource_code} is being published by another run "
            f"({holder.run_id[:8]} {who}, since {clock.to_beijing(holder.acquired_at):%H:%M:%S} 北京时间)")


def renew(*, resource_id: int, run_id: str) -> bool:
    """Push the lease out again (the heartbeat does this); False when ``run_id`` no longer holds the lock."""
    with session_scope() as session:
        done = session.execute(update(ResourceLock).where(ResourceLock.resource_id == resource_id,
                                                          ResourceLock.run_id == run_id, ResourceLock.pid != 0)
                               .values(expires_at=clock.now() + timedelta(seconds=LEASE_SECONDS)))
        return done.rowcount == 1


def hand_over(*, resource_id: int, run_id: str, seconds: float = HANDOVER_SECONDS) -> None:
    """A stage task ends: the lock stays the run's, held by no process, until its publish task takes it back
    (or the deadline passes and another run takes it over)."""
    _stop_heartbeat(resource_id, run_id)
    with session_scope() as session:
        session.execute(update(ResourceLock).where(ResourceLock.resource_id == resource_id,
                                                   ResourceLock.run_id == run_id)
                        .values(pid=0, host=HOST, expires_at=clock.now() + timedelta(seconds=seconds)))


def release(*, resource_id: int, run_id: str) -> None:
    _stop_heartbeat(resource_id, run_id)
    with session_scope() as session:
        session.execute(delete(ResourceLock).where(ResourceLock.resource_id == resource_id,
                                                   ResourceLock.run_id == run_id))


# What a run's clean-up says when it could not release (pipeline.runs.cleanup_unfinished).
KEPT = (f"未能释放资源锁，待确认其持有者已不在（运行已结束、本进程退出，或心跳停止 {LEASE_SECONDS} 秒后）时由下一次运行接管",
        f"the resource's lock is kept: the next run takes it over once its holder is seen gone (the run ended, this "
        f"process exited, or its heartbeat stopped for {LEASE_SECONDS} s)")


def release_in_cleanup(*, resource_id: int, run_id: str) -> Exception | None:
    """Release as a run's clean-up does: an error (the registry unreachable) is returned, not raised, so the
    run's own error stays the one reported. The heartbeat has stopped either way, so the lock kept is taken over
    once its holder is seen gone (its lease runs out, or its process has ended)."""
    try:
        release(resource_id=resource_id, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - said by the caller, beside the run's own error
        return exc
    return None


INTERRUPTED = ("运行进程已不在（被终止，或所在主机停机），本次运行未发布数据；该资源的下一次运行将接管资源锁并清理其暂存文件",
               "the run's process is gone (killed, or its host down) and it published nothing; the resource's next "
               "run takes its lock over and removes what it staged")


def interrupted_runs(session, runs: Sequence[SyncRun]) -> dict[str, str]:  # noqa: ANN001 - Session
    """Runs still recorded live whose holder is gone (killed mid-way), run id -> why, in Chinese and English.
    The registry keeps them live until the resource's next run takes over (and closes them failed); an operator
    reading the runs meanwhile is told so instead of reading 暂存中 for a process that no longer exists."""
    now, gone = clock.now(), {}
    for run in runs:
        if run.status not in LIVE_RUN_STATES:
            continue
        lock = session.get(ResourceLock, run.resource_id)
        if lock is None or lock.run_id != run.id:  # a live run holds its lock from before its record
            why = "it does not hold the resource's lock"
        elif (why := _abandoned(lock, run.status, now)) is None:
            continue
        gone[run.id] = f"{INTERRUPTED[0]} / {INTERRUPTED[1]} ({why})"
    return gone


def live_runs() -> set[str]:
    """Run ids whose lock is held by a live holder now (housekeeping leaves their folders alone)."""
    now = clock.now()
    with session_scope() as session:
        live = set()
        for lock in session.scalars(select(ResourceLock)):
            run = session.get(SyncRun, lock.run_id)
            if _abandoned(lock, run.status if run else None, now) is None:
                live.add(lock.run_id)
        return live


@contextmanager
def resource_lock(resource_id: int, resource_code: str, *, run_id: str | None = None,
                  wait_seconds: float = 0) -> Iterator[str]:
    """Hold the lock for the block (a fresh run id unless given); released however the block ends (a release
    the registry refuses is a warning: the lock is taken over once its holder is seen gone)."""
    import uuid

    from pipeline.runs import cleanup_unfinished

    run_id = run_id or uuid.uuid4().hex
    acquire(resource_id=resource_id, resource_code=resource_code, run_id=run_id, wait_seconds=wait_seconds)
    failed = False
    try:
        yield run_id
    except BaseException:
        failed = True
        raise
    finally:  # a release the registry refuses is said beside the block's own error, never in its place
        if (problem := release_in_cleanup(resource_id=resource_id, run_id=run_id)) is not None:
            cleanup_unfinished(run_id, failed=failed, undone=[KEPT], cause=problem)
