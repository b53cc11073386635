"""Published dataset versions (数据版本) and the cursor state committed with each."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from registry.catalog.models import Resource
from registry.exchange.models import CursorState, DatasetVersion


def latest_version(session: Session, *, resource: Resource) -> DatasetVersion | None:
    return session.scalar(
        select(DatasetVersion).where(DatasetVersion.resource_id == resource.id).order_by(DatasetVersion.number.desc()).limit(1)
    )


def require_latest_version(session: Session, *, resource: Resource) -> DatasetVersion:
    version = latest_version(session, resource=resource)
    if version is None:
        raise NotFound(f"resource {resource.code} has no published version yet; run `govshare sync {resource.code}`")
    return version


def list_versions(session: Session, *, resource: Resource) -> list[DatasetVersion]:
    return list(session.scalars(
        select(DatasetVersion).where(DatasetVersion.resource_id == resource.id).order_by(DatasetVersion.number.desc())
    ))


def next_version_number(session: Session, *, resource: Resource) -> int:
    return (session.scalar(select(func.max(DatasetVersion.number)).where(DatasetVersion.resource_id == resource.id)) or 0) + 1


def cursor_state(session: Session, *, resource: Resource) -> CursorState | None:
    return session.get(CursorState, resource.id)


def change_summary(changes: dict | None) -> str:
    """'+inserted ~updated -deleted' of a version's change set, as the CLI and pages show it."""
    if not changes:
        return "-"
    if changes.get("file") is None and changes.get("since_version") is not None:
        return "not tracked (no key)"
    deleted = changes.get("deleted", 0) if changes.get("deletes_detected") else "?"
    return f"+{changes.get('inserted', 0)} ~{changes.get('updated', 0)} -{deleted}"
