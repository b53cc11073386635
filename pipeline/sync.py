"""One sync of a resource: stage, then publish, then queue the update notices; the entry points the CLI and
the Airflow tasks call."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

from core.errors import RetriableError
from pipeline import locks
from pipeline.extract import record_run_failure, stage_resource
from pipeline.publish import PublishReport, publish_staged
from pipeline.staging import StagedRun

log = logging.getLogger(__name__)


def publish_run(*, folder: str, wait_seconds: float = 0) -> PublishReport:
    """Publish a run staged earlier (the Airflow publish task); a failure leaves the previous version served.

    The resource's lock, held since staging, is released however this ends.
    """
    staged = StagedRun.load(Path(folder))
    try:
        return publish_staged(staged, wait_seconds=wait_seconds)
    except BaseException as exc:
        record_run_failure(staged.run_id, exc)
        shutil.rmtree(staged.folder, ignore_errors=True)
        raise
    finally:
        locks.release(resource_id=staged.resource_id, run_id=staged.run_id)


def queue_after_publish(report: PublishReport) -> int | None:
    """Queue the version's update notices once it is committed; None when queueing failed (it is idempotent,
    so `govshare notices queue` or the DAG's notify task can do it again)."""
    from pipeline.notify import queue_notices

    try:
        return queue_notices(resource_code=report.resource_code, version_number=report.version)
    except Exception:  # noqa: BLE001 - the version is published; a notice problem must not hide that
        log.exception("version %s v%s published, but its notices were not queued", report.resource_code,
                      report.version)
        return None


def sync_resource(*, resource_code: str, full: bool = False, attempts: int = 1, wait_seconds: float = 0,
                  retry_delay_seconds: float = 2.0, notify: bool = True) -> PublishReport:
    """Extract, check, stage and publish one resource (`govshare sync`), then queue its notices.

    A RetriableError (a dropped connection, a busy lock) is tried again up to `attempts` times, with a
    growing delay; each attempt is a run of its own, so a failed one leaves nothing behind.
    """
    for attempt in range(1, max(1, attempts) + 1):
        try:
            staged = stage_resource(resource_code=resource_code, full=full, run_id=uuid.uuid4().hex,
                                    wait_seconds=wait_seconds)
            report = publish_run(folder=staged.folder, wait_seconds=wait_seconds)
            break
        except RetriableError as exc:
            if attempt >= attempts:
                raise
            log.warning("sync of %s failed (attempt %d of %d), retrying: %s", resource_code, attempt, attempts, exc)
            time.sleep(retry_delay_seconds * 2 ** (attempt - 1))
    if notify:
        queue_after_publish(report)
    return report
