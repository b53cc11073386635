"""One sync of a resource: stage, then publish; the entry points the CLI and the Airflow tasks call."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.extract import record_run_failure, stage_resource
from pipeline.publish import PublishReport, publish_staged
from pipeline.staging import StagedRun


def publish_run(*, folder: str) -> PublishReport:
    """Publish a run staged earlier (the Airflow publish task); a failure leaves the previous version served."""
    staged = StagedRun.load(Path(folder))
    try:
        return publish_staged(staged)
    except BaseException as exc:
        record_run_failure(staged.run_id, exc)
        shutil.rmtree(staged.folder, ignore_errors=True)
        raise


def sync_resource(*, resource_code: str, full: bool = False) -> PublishReport:
    """Extract, check, stage and publish one resource (`govshare sync`)."""
    staged = stage_resource(resource_code=resource_code, full=full)
    return publish_run(folder=staged.folder)
