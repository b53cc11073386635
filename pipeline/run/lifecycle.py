"""The steps every run goes through, written once:

1. **lease** (租约): the resource's lock in the registry (pipeline.locks), so a resource has one run at a time
   across processes and workers; a run refused here is recorded as failed with the reason;
2. **record**: the run's ``sync_runs`` row, and its own prefix ``datasets/<resource>/<run_id>/`` in the storage
   (pipeline.paths), under which the caller stages (writes its parts, quarantine and change set);
3. **validate and publish** (pipeline.publish): reconciliation (read = published + quarantined + superseded),
   the manifest written last, and one registry transaction that alone makes the prefix a version;
4. **clean-up on failure**: before the commit, any error removes the run's prefix, records the run as failed
   with its error and releases the lease; the previous version stays served. The run's own error is the one
   raised even when the registry is down then: what the clean-up could not do is a warning beside it, and the
   lease kept is taken over by the next run once its holder is seen gone (pipeline.locks);
5. **follow-up** (pipeline.after_publish): notices, the great-expectations report and the schedules, once per
   published version whatever made it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import FatalError
from core.storage import get_storage
from pipeline import locks, paths
from pipeline.after_publish import STEPS, after_publish
from pipeline.publish import PublishReport, ended_report, publish_staged
from pipeline.runs import FILES_LEFT, NOT_MARKED, cleanup_unfinished, record_run_failure, start_run
from pipeline.staging import StagedRun

log = logging.getLogger(__name__)


def lease(*, resource_id: int, resource_code: str, run_id: str, wait_seconds: float = 0) -> bool:
    """Hold the resource's lock for the run (True: taken now); a refusal is recorded as the run's failure."""
    try:
        return locks.acquire(resource_id=resource_id, resource_code=resource_code, run_id=run_id,
                             wait_seconds=wait_seconds)
    except BaseException as exc:
        record_run_failure(run_id, exc, resource_id=resource_id)
        raise


def begin(*, resource_id: int, resource_code: str, run_id: str, mode: str, wait_seconds: float = 0,
          leased: bool = False) -> Path:
    """Lease (unless ``leased``: the caller holds the lock already), record the run, and give its own folder."""
    if not leased:
        lease(resource_id=resource_id, resource_code=resource_code, run_id=run_id, wait_seconds=wait_seconds)
    with staging(resource_id=resource_id, run_id=run_id, release=not leased):
        start_run(run_id=run_id, resource_id=resource_id, mode=mode)
        folder = paths.run_dir(resource_id, run_id)
        (folder / "data").mkdir(parents=True, exist_ok=True)
    return folder


def discard(*, resource_id: int, run_id: str, exc: BaseException, release: bool = True) -> None:
    """Clean up a run that failed before its commit: its prefix removed, the failure recorded, the lease freed.
    An error after the commit discards nothing: the prefix is a served version and the run is done.

    Nothing here replaces the run's own error (``exc``, raised again by the caller): a step the registry refuses
    (it is down) is said in one warning beside it, and what it left is recovered by the next run."""
    undone: list[tuple[str, str]] = []
    cause: Exception | None = None
    try:
        committed = ended_report(run_id) is not None
    except Exception as problem:  # noqa: BLE001 - the registry is not answering: whether it committed is unknown
        committed, cause = None, problem
    if committed:
        log.error("run %s failed after its publish committed (%s); its version stays served", run_id[:8], exc)
    else:
        if committed is None:  # never remove what may be a served version's folder; housekeeping knows later
            undone.append(FILES_LEFT)
        else:
            try:
                get_storage().delete(paths.run_prefix(resource_id, run_id))
            except Exception:  # noqa: BLE001 - the run's own error matters more; housekeeping removes the leftover
                log.exception("could not remove the failed run %s's files; housekeeping will", run_id)
        if not record_run_failure(run_id, exc):
            undone.append(NOT_MARKED)
    if release and (problem := locks.release_in_cleanup(resource_id=resource_id, run_id=run_id)) is not None:
        cause = cause or problem
        undone.append(locks.KEPT)
    cleanup_unfinished(run_id, failed=True, undone=undone, cause=cause)


@contextmanager
def staging(*, resource_id: int, run_id: str, release: bool = True) -> Iterator[None]:
    """Staging code runs inside: any error discards the run (``release``: the lease too) and is raised again."""
    try:
        yield
    except BaseException as exc:
        discard(resource_id=resource_id, run_id=run_id, exc=exc, release=release)
        raise


def publish(*, folder: str, wait_seconds: float = 0) -> PublishReport:
    """Publish a staged run (the Airflow publish task, or straight after staging); a failure leaves the previous
    version served and the run's prefix removed. The lease, held since staging (or handed over to this task),
    is released however this ends."""
    if (done := ended_report(Path(folder).name)) is not None:  # a retried task whose first try committed
        locks.release(resource_id=int(Path(folder).parent.name), run_id=done.run_id)  # what a killed try kept
        return done
    try:
        staged = StagedRun.load(Path(folder))
    except FatalError as exc:  # nothing staged to publish: the run ends here, and frees what it held
        run_id = Path(folder).name
        undone = [] if record_run_failure(run_id, exc) else [NOT_MARKED]
        problem = locks.release_in_cleanup(resource_id=int(Path(folder).parent.name), run_id=run_id)
        cleanup_unfinished(run_id, failed=True, undone=undone + ([locks.KEPT] if problem else []), cause=problem)
        raise
    try:
        report = publish_staged(staged, wait_seconds=wait_seconds)
    except BaseException as exc:
        discard(resource_id=staged.resource_id, run_id=staged.run_id, exc=exc)
        raise
    # Published: a lock the registry would not let go of belongs to a run that ended, taken over at once.
    if (problem := locks.release_in_cleanup(resource_id=staged.resource_id, run_id=staged.run_id)) is not None:
        cleanup_unfinished(staged.run_id, failed=False, undone=[locks.KEPT], cause=problem)
    return report


def follow_up(*, resource_code: str, version: int | None, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    """The post-publish path (notices, expectations, schedules); errors are returned, never raised."""
    return after_publish(resource_code=resource_code, version=version, steps=steps)
