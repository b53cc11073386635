"""Housekeeping (运维清理), run daily by the maintenance DAG or `govshare housekeep`.

- Unreferenced run prefixes: a run writes under its own prefix ``datasets/<resource>/<run_id>/`` and only the
  registry's transaction makes it a version. A prefix no version names is a crashed, killed or abandoned
  run's leftover (staged, or even with its manifest written): removed from the storage (the object store and
  this worker's copy) at once when its run no longer holds the resource's lock (pipeline.locks.live_runs; a
  run still marked live is then marked failed); a prefix whose run the registry does not know only once it
  is older than the limit.
- Retention of versions: a version's files are removed only when it is none of: the latest, one of the
  newest ``keep_last``, younger than ``keep_days``, or a version whose change set a subscriber still needs
  (the oldest version an active subscriber last read and every later one: that subscriber verifies
  its copy and asks for "changes since" it), or a version whose files a kept layered version still reads
  (pipeline.layers: until a full refresh or a compaction writes a new snapshot). The registry row and
  manifest stay, marked pruned, as the record.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from core import clock
from core.storage import Storage, get_storage
from pipeline.paths import DATASETS
from registry.audit.log import record_event
from registry.audit.models import AuditEvent
from registry.catalog.models import Resource
from registry.db import session_scope
from registry.exchange.models import DatasetVersion, PrunedVersion, SyncRun
from registry.sharing.models import Subscription


def _run_prefixes(storage: Storage) -> list[tuple[str, datetime | None]]:
    """Every ``datasets/<resource>/<run>`` prefix in the store and in this worker's copy, with the time it was
    last written (the store's, where it keeps one)."""
    found: dict[str, datetime | None] = {}
    for resource in storage.children(DATASETS):
        for entry in storage.children(f"{DATASETS}/{Path(resource.path).name}"):
            relative = f"{DATASETS}/{Path(resource.path).name}/{Path(entry.path).name}"
            found[relative] = clock.as_utc(entry.mtime) if entry.mtime is not None else None
    local = storage.root / DATASETS
    for folder in sorted(local.glob("*/*")) if local.is_dir() else []:
        relative = folder.relative_to(storage.root).as_posix()
        if relative not in found or found[relative] is None:
            found[relative] = datetime.fromtimestamp(folder.stat().st_mtime, tz=timezone.utc)
    return sorted(found.items())


def clean_staging(*, max_age_hours: float = 24, now: datetime | None = None) -> list[str]:
    """Remove expired staging folders, and version folders no registry row names (whatever their age) unless
    their run is still publishing; the names removed."""
    from pipeline.locks import live_runs

    now = clock.as_utc(now or clock.now())
    limit = timedelta(hours=max_age_hours)
    removed: list[str] = []
    storage = get_storage()
    # Listed before asking which runs hold a lock: a run takes its lock before it makes its folder, so every
    # folder listed belongs to a run that is live below, or that has ended (a version names it, or it is dead).
    prefixes = _run_prefixes(storage)
    held = live_runs()
    with session_scope() as session:
        recorded = set(session.scalars(select(DatasetVersion.path)))
        for relative, modified in prefixes:
            run_id = relative.rpartition("/")[2]
            if relative in recorded or run_id in held:
                continue
            run = session.get(SyncRun, run_id)
            if run is None and (modified is None or now - modified < limit):
                continue  # no run recorded (yet): only an old prefix is surely nobody's
            live = run is not None and run.status in ("running", "staging", "staged")
            storage.delete(relative)
            removed.append(relative)
            if live:
                run.status, run.finished_at = "failed", now
                run.error = "abandoned: its run no longer held the resource's lock; its staged files were removed"
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
                get_storage().delete(version.path)
                reason = (f"retention: not among the newest {keep_last}, older than {keep_days} days"
                          + (f", no subscriber holds a version before v{oldest_needed}" if held else ""))
                session.add(PrunedVersion(version_id=version.id, reason=reason, pruned_at=now))
                record_event(session, actor="maintenance", action="version.prune", agency_code=resource.agency.code,
                             resource_code=resource.code, detail={"version": version.number, "reason": reason})
                pruned.append(f"{resource.code} v{version.number}")
    return pruned
