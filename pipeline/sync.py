"""One sync of a resource: stage, then publish, then the one post-publish path; the entry points the CLI and
the Airflow tasks call."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from core.errors import RetriableError
from core.memory import give_back_free_memory
from pipeline.after_publish import STEPS
from pipeline.extract import stage_resource
from pipeline.publish import PublishReport
from pipeline.run import lifecycle

log = logging.getLogger(__name__)


@dataclass
class SyncReport(PublishReport):
    """A publish and what followed it (notices queued, expectations, schedules)."""

    after: dict[str, Any] = field(default_factory=dict)


def publish_run(*, folder: str, wait_seconds: float = 0) -> PublishReport:
    """Publish a run staged earlier (the Airflow publish task): pipeline.run.publish."""
    return lifecycle.publish(folder=folder, wait_seconds=wait_seconds)


def sync_resource(*, resource_code: str, full: bool = False, attempts: int = 1, wait_seconds: float = 0,
                  retry_delay_seconds: float = 2.0, after: tuple[str, ...] = STEPS) -> SyncReport:
    """Extract, check, stage and publish one resource (`govshare sync`), then the post-publish path.

    A RetriableError (a dropped connection, a busy lock) is tried again up to `attempts` times, with a
    growing delay; each attempt is a run of its own, so a failed one leaves nothing behind. Configuration
    errors (a refused password, a missing column) and fatal ones are never retried.
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
        finally:
            give_back_free_memory()  # the next run (or attempt) in this process starts from the base, not this peak
    done = lifecycle.follow_up(resource_code=report.resource_code, version=report.version, steps=after)
    return SyncReport(**vars(report), after=done)
