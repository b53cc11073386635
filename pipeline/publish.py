"""Atomic publish: a staged run becomes an immutable version in one rename and one transaction."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from core import clock
from core.errors import FatalError, RetriableError
from pipeline import locks, paths
from pipeline.changes import CHANGES_FILE
from pipeline.layers import live_rows, parts_of, parts_schema
from pipeline.locks import resource_lock  # noqa: F401 - the lock publishing holds, importable from here
from pipeline.manifest import describe_files, file_sha256, schema_fields, write_manifest
from pipeline.staging import StagedRun
from registry.audit import record_event
from registry.db import session_scope
from registry.models import CursorState, DatasetVersion, Resource, SyncRun
from registry.versions import latest_version, next_version_number


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
    changes: dict | None = None  # the change set's counts against the previous version


def publish_staged(staged: StagedRun, *, wait_seconds: float = 0) -> PublishReport:
    """Make a staged run the served version. Until the commit, the previous version stays served."""
    source_rows = staged.rows_staged - staged.rows_carried + staged.rows_quarantined
    if source_rows != staged.rows_read:
        # Nothing is dropped silently: every row read is either published or quarantined.
        raise FatalError(f"run {staged.run_id} does not reconcile: read {staged.rows_read} rows, published "
                         f"{staged.rows_staged - staged.rows_carried} and quarantined {staged.rows_quarantined}")
    # Re-entrant for the run that staged (it kept the lock); any other run waits or is refused.
    fresh = locks.acquire(resource_id=staged.resource_id, resource_code=staged.resource_code, run_id=staged.run_id,
                          wait_seconds=wait_seconds)
    try:
        return _publish_locked(staged, source_rows=source_rows)
    finally:
        if fresh:  # a staged run built without stage_resource (benchmarks, replays) holds no lock after this
            locks.release(resource_id=staged.resource_id, run_id=staged.run_id)


def _publish_locked(staged: StagedRun, *, source_rows: int) -> PublishReport:
    """Publish under the resource's lock (pipeline.sync.publish_run releases a lock kept since staging)."""
    with session_scope() as session:
        resource = session.get(Resource, staged.resource_id)
        current = latest_version(session, resource=resource)
        if (current.id if current else None) != staged.previous_version:
            raise RetriableError(
                f"资源 {staged.resource_code} 在暂存后已发布新版本 / {staged.resource_code} got version "
                f"v{current.number if current else 0} after run {staged.run_id[:8]} was staged; its change set "
                "and carried rows are stale: stage it again")
        number = next_version_number(session, resource=resource)
    staging = Path(staged.folder)
    final = paths.version_dir(staged.resource_id, number, staged.run_id)
    files = [*staged.referenced, *describe_files(staging, staged.files)]
    for entry in files:
        if entry["path"] in staged.locators and not entry.get("folder"):
            entry["locator"] = staged.locators[entry["path"]]
    schema = parts_schema(parts_of(staging, {"files": files}))
    manifest = {
        "resource": staged.resource_code, "version": number, "run_id": staged.run_id, "mode": staged.mode,
        "created_at": clock.now().isoformat(), "row_count": staged.rows_staged,
        "quarantined_count": staged.rows_quarantined, "rows_read": staged.rows_read,
        "schema": schema_fields(schema), "files": files,
        "watermark": staged.watermark, "source": staged.source,
        "changes": _changes_entry(staging, staged.changes), "schema_change": staged.schema_change,
    }
    if manifest["row_count"] != live_rows(manifest):
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


def _changes_entry(staging: Path, changes: dict) -> dict:
    """The change set's counts, and its file's rows and SHA-256 like every data file's."""
    entry = dict(changes)
    if entry.get("file"):
        path = staging / CHANGES_FILE
        entry.update(rows=pq.ParquetFile(path).metadata.num_rows, bytes=path.stat().st_size, sha256=file_sha256(path))
    return entry


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
            run.status, run.finished_at, run.version_id = "published", clock.now(), version.id
            run.rows_read, run.rows_published, run.rows_quarantined = source_rows, staged.rows_staged, staged.rows_quarantined
        record_event(session, actor="pipeline", action="version.publish", resource_code=staged.resource_code,
                     detail={"version": number, "run_id": staged.run_id, "mode": staged.mode,
                             "rows": staged.rows_staged, "quarantined": staged.rows_quarantined,
                             "quarantine_rules": staged.quarantine_rules, "manifest_sha256": manifest_sha256})
        if staged.rows_quarantined:  # the quarantine store and the provider's correction ticket (issue 5)
            from registry.quarantine import record_quarantine

            record_quarantine(session, resource_id=staged.resource_id, run_id=staged.run_id, version_id=version.id,
                              path=paths.quarantine_file(staged.resource_id, staged.run_id).relative_to(
                                  paths.storage_root()).as_posix(),
                              rows=staged.rows_quarantined, rules=staged.quarantine_rules)
    return PublishReport(resource_code=staged.resource_code, run_id=staged.run_id, version=number, mode=staged.mode,
                         rows_read=source_rows, rows_published=staged.rows_staged,
                         rows_quarantined=staged.rows_quarantined, path=relative, manifest_sha256=manifest_sha256,
                         changes=manifest.get("changes"))
