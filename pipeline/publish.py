"""Atomic publish without a rename: a staged run's own prefix becomes an immutable version by its manifest,
written last, and one registry transaction; until that commit nothing serves it.

A run that found no change (a change set with nothing inserted, updated or deleted, and no schema change)
publishes nothing: no version, no notice. It is still recorded, as ``unchanged`` with its rows and cursor, so
the update clock and supervision see that the resource was kept up, and its quarantine findings are settled.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from core import clock
from core.errors import FatalError, RetriableError
from core.storage import get_storage
from pipeline import locks, paths
from pipeline.changes import CHANGES_FILE, no_change
from pipeline.layers import live_rows, parts_of, parts_schema, version_parts
from pipeline.locks import resource_lock  # noqa: F401 - the lock publishing holds, importable from here
from pipeline.lookup_publish import build_for_publish, lookup_columns
from pipeline.manifest import (
    MANIFEST,
    describe_files,
    file_sha256,
    schema_fields,
    write_manifest,
)
from pipeline.runs import cleanup_unfinished
from pipeline.staging import StagedRun
from registry.audit.log import record_event
from registry.db import session_scope
from registry.catalog.models import Resource
from registry.exchange.file_ledger import apply_file_delta
from registry.exchange.models import CursorState, DatasetVersion, SyncRun
from registry.exchange.versions import latest_version, next_version_number


@dataclass
class PublishReport:
    resource_code: str
    run_id: str
    version: int | None  # None: nothing changed, nothing published (the run is recorded as unchanged)
    mode: str
    rows_read: int
    rows_published: int  # rows of this read that were published (read = published + quarantined + superseded)
    rows_quarantined: int
    path: str
    manifest_sha256: str
    changes: dict | None = None  # the change set's counts against the previous version
    version_rows: int = 0  # rows of the version now served
    previous_version: int | None = None

    @property
    def published(self) -> bool:
        return self.version is not None


def unchanged(staged: StagedRun) -> bool:
    """Nothing to publish: the version it would make holds exactly the previous one's rows."""
    return staged.previous_version is not None and not staged.schema_change and no_change(staged.changes or {})


def ended_report(run_id: str) -> PublishReport | None:
    """The report of a run whose publish committed already (published, or recorded unchanged), else None.

    A publish task retried after its first try committed (killed before Airflow recorded its success, or an
    error after the commit) gets this instead of publishing again: the run is done, its version served."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or run.status not in ("published", "unchanged"):
            return None
        resource = session.get(Resource, run.resource_id)
        version = session.get(DatasetVersion, run.version_id) if run.version_id is not None else None
        if run.status == "published" and version is None:
            return None
        manifest = version.manifest if version is not None else {}
        previous = session.scalar(select(DatasetVersion.number).where(
            DatasetVersion.resource_id == run.resource_id, DatasetVersion.id < run.version_id)
            .order_by(DatasetVersion.id.desc()).limit(1)) if version is not None else None
        return PublishReport(resource_code=resource.code, run_id=run.id, version=version.number if version else None,
                             mode=run.mode, rows_read=run.rows_read or 0, rows_published=run.rows_published or 0,
                             rows_quarantined=run.rows_quarantined or 0, path=version.path if version else "",
                             manifest_sha256=version.manifest_sha256 if version else "",
                             changes=manifest.get("changes"), version_rows=version.row_count if version else 0,
                             previous_version=previous)


def publish_staged(staged: StagedRun, *, wait_seconds: float = 0) -> PublishReport:
    """Make a staged run the served version. Until the commit, the previous version stays served."""
    source_rows = staged.rows_staged - staged.rows_carried + staged.rows_quarantined + staged.rows_superseded
    if source_rows != staged.rows_read:
        # Nothing is dropped silently: every row read is published, quarantined, or replaced by a newer file's.
        raise FatalError(f"run {staged.run_id} does not reconcile: read {staged.rows_read} rows, published "
                         f"{staged.rows_staged - staged.rows_carried}, quarantined {staged.rows_quarantined} and "
                         f"superseded {staged.rows_superseded}")
    # Re-entrant for the run that staged (it kept the lock); any other run waits or is refused.
    fresh = locks.acquire(resource_id=staged.resource_id, resource_code=staged.resource_code, run_id=staged.run_id,
                          wait_seconds=wait_seconds)
    try:
        return _publish_locked(staged)
    finally:
        # a staged run built without stage_resource (benchmarks, replays) holds no lock after this; a release
        # the registry refuses is a warning, never in place of the publish's own error or result
        if fresh and (problem := locks.release_in_cleanup(resource_id=staged.resource_id, run_id=staged.run_id)):
            cleanup_unfinished(staged.run_id, failed=False, undone=[locks.KEPT], cause=problem)


def _publish_locked(staged: StagedRun) -> PublishReport:
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
        previous_number = current.number if current else None
        primary_key = list((resource.stream or {}).get("primary_key") or [])
        lookups = lookup_columns(session, resource, version_parts(current) if current else [])
    staging = Path(staged.folder)
    findings = _findings(staged, staging)
    if unchanged(staged):
        return _record_unchanged(staged, findings=findings, previous_number=previous_number)
    final = staging  # the run's own prefix is the version's folder: nothing moves
    files = [*staged.referenced, *describe_files(staging, staged.files)]
    for entry in files:
        if entry["path"] in staged.locators and not entry.get("folder"):
            entry["locator"] = staged.locators[entry["path"]]
    # What a keyed lookup needs, before the version exists: its first lookup finds it ready.
    build_for_publish(staging=staging, files=files, columns=lookups, primary_key=primary_key)
    schema = parts_schema(parts_of(staging, {"files": files}))
    manifest = {
        "resource": staged.resource_code, "version": number, "run_id": staged.run_id, "mode": staged.mode,
        "created_at": clock.now().isoformat(), "row_count": staged.rows_staged,
        "quarantined_count": staged.rows_quarantined, "rows_read": staged.rows_read,
        "schema": schema_fields(schema), "files": files,
        "watermark": staged.watermark, "source": staged.source,
        "changes": _changes_entry(staging, staged.changes), "schema_change": staged.schema_change,
    }
    if staged.key_scan:
        manifest["key_scan"] = staged.key_scan
    if manifest["row_count"] != live_rows(manifest):
        raise RetriableError(f"staged run {staged.run_id} is inconsistent (file rows differ); stage it again")
    quarantine = _keep_quarantine(staged, staging)
    storage = get_storage()
    storage.push(final, skip=(MANIFEST,))  # every part first (an object store; locally they are in place) ...
    manifest_sha256 = write_manifest(staging, manifest)
    storage.push(final / MANIFEST)  # ... the manifest last: a prefix without one was never published
    report = _record(staged, number=number, final=final, manifest=manifest, manifest_sha256=manifest_sha256,
                     findings=findings, quarantine=quarantine, previous_number=previous_number)
    storage.mark_whole(final)  # this worker wrote the folder: readers here never copy it back
    return report


def _findings(staged: StagedRun, staging: Path):  # noqa: ANN202 - registry.quality.quarantine.Findings
    from pipeline.quarantine import entries_of
    from registry.quality.quarantine import Findings

    findings = Findings.from_dict(staged.findings)
    if staged.rows_quarantined:
        findings.entries = entries_of(staging / "quarantine.parquet", tuple(staged.key))
    return findings


def _keep_quarantine(staged: StagedRun, staging: Path) -> str | None:
    """Move the run's quarantined rows into the quarantine store; their storage path."""
    source = staging / "quarantine.parquet"
    if not source.exists():
        return None
    target = paths.quarantine_file(staged.resource_id, staged.run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
    get_storage().push(target)
    return target.relative_to(paths.storage_root()).as_posix()


def _changes_entry(staging: Path, changes: dict) -> dict:
    """The change set's counts, and its file's rows and SHA-256 like every data file's."""
    entry = dict(changes)
    if entry.get("file"):
        path = staging / CHANGES_FILE
        entry.update(rows=pq.ParquetFile(path).metadata.num_rows, bytes=path.stat().st_size, sha256=file_sha256(path))
    return entry


def _record_files_read(session, staged: StagedRun, folder: Path) -> None:  # noqa: ANN001
    """A file source's record of files read, with the cursor state it belongs to (connectors/filelist.py)."""
    if staged.files_read and (folder / staged.files_read).is_file():
        apply_file_delta(session, resource_id=staged.resource_id, run_id=staged.run_id,
                         delta=folder / staged.files_read)


def _close_run(session, staged: StagedRun, *, status: str, version_id: int | None) -> None:  # noqa: ANN001
    run = session.get(SyncRun, staged.run_id)
    if run is None:
        return
    run.status, run.finished_at, run.version_id, run.mode = status, clock.now(), version_id, staged.mode
    run.rows_read, run.rows_quarantined = staged.rows_read, staged.rows_quarantined
    run.rows_published = staged.rows_read - staged.rows_quarantined - staged.rows_superseded


def _settle(session, staged: StagedRun, *, findings, version_id: int | None, quarantine: str | None) -> None:  # noqa: ANN001
    """The run's quarantined rows and what it learnt about the open ones (registry.quality.quarantine)."""
    from registry.quality.quarantine import settle_quarantine

    settle_quarantine(session, resource_id=staged.resource_id, run_id=staged.run_id, version_id=version_id,
                      path=quarantine, rows=staged.rows_quarantined, rules=staged.quarantine_rules,
                      findings=findings)


def _record_unchanged(staged: StagedRun, *, findings, previous_number: int | None) -> PublishReport:  # noqa: ANN001
    """Checked, nothing changed: no version and no notice, but the run, its cursor and its quarantine count."""
    staging = Path(staged.folder)
    quarantine = _keep_quarantine(staged, staging)
    with session_scope() as session:
        state = session.get(CursorState, staged.resource_id)
        if state is not None and staged.watermark.get("value") is not None:
            state.cursor_column, state.cursor_value = staged.watermark.get("cursor_column"), staged.watermark["value"]
            if staged.source_identity is not None:  # a change-capture snapshot that changed nothing
                state.source_identity = staged.source_identity
        _record_files_read(session, staged, staging)
        _close_run(session, staged, status="unchanged", version_id=None)
        _settle(session, staged, findings=findings, version_id=None, quarantine=quarantine)
        record_event(session, actor="pipeline", action="run.unchanged", resource_code=staged.resource_code,
                     detail={"run_id": staged.run_id, "mode": staged.mode, "rows_read": staged.rows_read,
                             "quarantined": staged.rows_quarantined, "version": previous_number})
    get_storage().delete(paths.run_prefix(staged.resource_id, staged.run_id))
    return PublishReport(resource_code=staged.resource_code, run_id=staged.run_id, version=None, mode=staged.mode,
                         rows_read=staged.rows_read, rows_published=staged.rows_read - staged.rows_quarantined
                         - staged.rows_superseded, rows_quarantined=staged.rows_quarantined, path="",
                         manifest_sha256="", changes=staged.changes, version_rows=staged.rows_staged,
                         previous_version=previous_number)


def _record(staged: StagedRun, *, number: int, final: Path, manifest: dict, manifest_sha256: str, findings,  # noqa: ANN001
            quarantine: str | None, previous_number: int | None) -> PublishReport:
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
        if staged.source_identity is not None:  # change capture's table (pipeline.cdc_identity); a replay keeps it
            state.source_identity = staged.source_identity
        state.version_id = version.id
        session.add(state)
        _record_files_read(session, staged, final)
        _close_run(session, staged, status="published", version_id=version.id)
        record_event(session, actor="pipeline", action="version.publish", resource_code=staged.resource_code,
                     detail={"version": number, "run_id": staged.run_id, "mode": staged.mode,
                             "rows": staged.rows_staged, "quarantined": staged.rows_quarantined,
                             "quarantine_rules": staged.quarantine_rules, "manifest_sha256": manifest_sha256})
        _settle(session, staged, findings=findings, version_id=version.id, quarantine=quarantine)
    return PublishReport(resource_code=staged.resource_code, run_id=staged.run_id, version=number, mode=staged.mode,
                         rows_read=staged.rows_read,
                         rows_published=staged.rows_read - staged.rows_quarantined - staged.rows_superseded,
                         rows_quarantined=staged.rows_quarantined, path=relative, manifest_sha256=manifest_sha256,
                         changes=manifest.get("changes"), version_rows=staged.rows_staged,
                         previous_version=previous_number)
