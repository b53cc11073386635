"""Atomic publish: a staged run becomes an immutable version in one rename and one transaction."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from core.errors import FatalError, RetriableError
from pipeline import paths
from pipeline.manifest import describe_files, schema_fields, write_manifest
from pipeline.staging import StagedRun
from registry.audit import record_event
from registry.db import session_scope
from registry.models import CursorState, DatasetVersion, Resource, SyncRun, utcnow
from registry.versions import next_version_number


@dataclass
class PublishReport:
    resource_code: str
    run_id: str
    version: int
    mode: str
    rows_read: int
    rows_published: int
    rows_quarantined: int
    path: str
    manifest_sha256: str


@contextmanager
def resource_lock(resource_id: int, resource_code: str) -> Iterator[None]:
    """Only one publish per resource at a time; a second is refused at once, with the reason."""
    with paths.lock_file(resource_id).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RetriableError(
                f"resource {resource_code} is being published by another run; wait for it to finish and retry") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_staged(staged: StagedRun) -> PublishReport:
    """Make a staged run the served version. Until the commit, the previous version stays served."""
    source_rows = staged.rows_staged - staged.rows_carried + staged.rows_quarantined
    if source_rows != staged.rows_read:
        # Nothing is dropped silently: every row read is either published or quarantined.
        raise FatalError(f"run {staged.run_id} does not reconcile: read {staged.rows_read} rows, published "
                         f"{staged.rows_staged - staged.rows_carried} and quarantined {staged.rows_quarantined}")
    with resource_lock(staged.resource_id, staged.resource_code):
        with session_scope() as session:
            resource = session.get(Resource, staged.resource_id)
            number = next_version_number(session, resource=resource)
        staging = Path(staged.folder)
        final = paths.version_dir(staged.resource_id, number, staged.run_id)
        schema = pq.ParquetFile(staging / staged.files[0]).schema_arrow
        manifest = {
            "resource": staged.resource_code, "version": number, "run_id": staged.run_id, "mode": staged.mode,
            "created_at": utcnow().isoformat(), "row_count": staged.rows_staged,
            "quarantined_count": staged.rows_quarantined, "rows_read": staged.rows_read,
            "schema": schema_fields(schema), "files": describe_files(staging, staged.files),
            "watermark": staged.watermark, "source": staged.source,
        }
        if manifest["row_count"] != sum(f["rows"] for f in manifest["files"]):
            raise RetriableError(f"staged run {staged.run_id} is inconsistent (file rows differ); stage it again")
        manifest_sha256 = write_manifest(staging, manifest)
        quarantine = staging / "quarantine.parquet"
        if quarantine.exists():
            target = paths.quarantine_file(staged.resource_id, staged.run_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(quarantine, target)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)  # atomic on one file system: the folder is whole or absent
        try:
            report = _record(staged, number=number, final=final, manifest=manifest, manifest_sha256=manifest_sha256,
                             source_rows=source_rows)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)  # unregistered, so never served; remove the files too
            raise
    return report


def _record(staged: StagedRun, *, number: int, final: Path, manifest: dict, manifest_sha256: str,
            source_rows: int) -> PublishReport:
    relative = final.relative_to(paths.storage_root()).as_posix()
    with session_scope() as session:
        version = DatasetVersion(
            resource_id=staged.resource_id, number=number, run_id=staged.run_id, path=relative,
            row_count=staged.rows_staged, quarantined_count=staged.rows_quarantined,
            manifest_sha256=manifest_sha256, manifest=manifest,
        )
        session.add(version)
        session.flush()
        state = session.get(CursorState, staged.resource_id) or CursorState(resource_id=staged.resource_id)
        state.cursor_column = staged.watermark.get("cursor_column")
        state.cursor_value = staged.watermark.get("value")
        state.version_id = version.id
        session.add(state)
        run = session.get(SyncRun, staged.run_id)
        if run is not None:
            run.status, run.finished_at, run.version_id = "published", utcnow(), version.id
            run.rows_read, run.rows_published, run.rows_quarantined = source_rows, staged.rows_staged, staged.rows_quarantined
        record_event(session, actor="pipeline", action="version.publish", resource_code=staged.resource_code,
                     detail={"version": number, "run_id": staged.run_id, "mode": staged.mode,
                             "rows": staged.rows_staged, "quarantined": staged.rows_quarantined,
                             "quarantine_rules": staged.quarantine_rules, "manifest_sha256": manifest_sha256})
    return PublishReport(resource_code=staged.resource_code, run_id=staged.run_id, version=number, mode=staged.mode,
                         rows_read=source_rows, rows_published=staged.rows_staged,
                         rows_quarantined=staged.rows_quarantined, path=relative, manifest_sha256=manifest_sha256)
