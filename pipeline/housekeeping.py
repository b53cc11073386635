"""Housekeeping (运维清理), run daily by the maintenance DAG or `govshare housekeep`.

- Expired staging: run folders under storage/staging older than a limit whose run no longer holds the
  resource's lock (crashed, killed or abandoned runs) are removed, and their runs marked failed. Version
  folders no registry row names (a run killed between the rename and the commit) are removed at once, unless
  their run is alive and about to commit (its lock's holder lives: pipeline.locks.live_runs).
- Retention of versions: a version's files are removed only when it is none of: the latest, one of the
  newest ``keep_last``, younger than ``keep_days``, or a version whose change set a subscriber still needs
  (the oldest version an active subscriber last read and every later one: that subscriber verifies
  its copy and asks for "changes since" it), or a version whose files a kept layered version still reads
  (pipeline.layers: until a full refresh or a compaction writes a new snapshot). The registry row and
  manifest stay, marked pruned, as the record.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from core import clock
from pipeline import paths
from registry.audit.log import record_event
from registry.audit.models import AuditEvent
from registry.catalog.models import Resource
from registry.db import session_scope
from registry.exchange.models import DatasetVersion, PrunedVersion, SyncRun
from registry.sharing.models import Subscription


def _age(path: Path, now: datetime) -> timedelta:
    return now - datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def clean_staging(*, max_age_hours: float = 24, now: datetime | None = None) -> list[str]:
    """Remove expired staging folders, and version folders no registry row names (whatever their age) unless
    their run is still publishing; the names removed."""
    from pipeline.locks import live_runs

    now = clock.as_utc(now or clock.now())
    limit = timedelta(hours=max_age_hours)
    removed: list[str] = []
    staging = paths.storage_root() / "staging"
    held = live_runs()
    with session_scope() as session:
        for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
            if folder.name in held or _age(folder, now) < limit:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"staging/{folder.name}")
            run = session.get(SyncRun, folder.name)
            if run is not None and run.status in ("running", "staging", "staged"):
                run.status, run.finished_at = "failed", now
                run.error = f"abandoned: its staging folder expired after {max_age_hours:g} h and was removed"
        recorded = set(session.scalars(select(DatasetVersion.path)))
        publishing = {run_id[:8] for run_id in held}  # a folder renamed a moment before its commit
        datasets = paths.storage_root() / "datasets"
        for folder in sorted(datasets.glob("*/*")) if datasets.is_dir() else []:
            relative = folder.relative_to(paths.storage_root()).as_posix()
            if relative not in recorded and folder.name.rpartition("-")[2] not in publishing:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(relative)
        if removed:
            record_event(session, actor="maintenance", action="housekeeping.staging", detail={"removed": removed})
    return removed


def _held_versions(session, resource: Resource) -> list[int]:  # noqa: ANN001 - Session
    """The newest version each active subscriber has read (from the audit trail of deliveries)."""
    subscribers = {s.agency.code for s in session.scalars(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.status == "active"))}
    newest: dict[str, int] = {}
    for agency_code, detail in session.execute(select(AuditEvent.agency_code, AuditEvent.detail).where(
            AuditEvent.action == "data.read", AuditEvent.result == "ok", AuditEvent.resource_code == resource.code)):
        number = (detail or {}).get("version")
        if agency_code in subscribers and isinstance(number, int):
            newest[agency_code] = max(number, newest.get(agency_code, 0))
    return list(newest.values())


def _referenced_folders(version: DatasetVersion) -> set[str]:
    """The folders of earlier versions whose files (data parts or deletion vectors) this layered version lists."""
    folders: set[str] = set()
    for entry in (version.manifest or {}).get("files", []):
        folders.update(f for f in (entry.get("folder"), (entry.get("deleted") or {}).get("folder")) if f)
    return folders


def prune_versions(*, keep_last: int = 5, keep_days: int = 30, now: datetime | None = None) -> list[str]:
    """Apply the retention rule to every resource; returns "<code> v<N>" for each version pruned."""
    now = clock.as_utc(now or clock.now())
    keep_last = max(1, keep_last)  # the latest is never pruned, whatever the setting
    pruned: list[str] = []
    with session_scope() as session:
        already = set(session.scalars(select(PrunedVersion.version_id)))
        for resource in session.scalars(select(Resource).order_by(Resource.id)):
            versions = list(session.scalars(select(DatasetVersion).where(DatasetVersion.resource_id == resource.id)
                                            .order_by(DatasetVersion.number.desc())))
            held = _held_versions(session, resource)
            oldest_needed = min(held) if held else None
            read_by_kept: set[str] = set()  # folders a kept (newer) version reads files from
            for index, version in enumerate(versions):
                if version.id in already:
                    continue
                # Kept: among the newest, young enough, held by a subscriber (to verify, or for the change sets
                # after it), or read by a later layered version that is kept.
                if (index < keep_last or now - clock.as_utc(version.created_at) < timedelta(days=keep_days)
                        or (oldest_needed is not None and version.number >= oldest_needed)
                        or version.path in read_by_kept):
                    read_by_kept |= _referenced_folders(version)
                    continue
                shutil.rmtree(paths.resolve(version.path), ignore_errors=True)
                reason = (f"retention: not among the newest {keep_last}, older than {keep_days} days"
                          + (f", no subscriber holds a version before v{oldest_needed}" if held else ""))
                session.add(PrunedVersion(version_id=version.id, reason=reason, pruned_at=now))
                record_event(session, actor="maintenance", action="version.prune", agency_code=resource.agency.code,
                             resource_code=resource.code, detail={"version": version.number, "reason": reason})
                pruned.append(f"{resource.code} v{version.number}")
    return pruned
