"""Recorded source schema changes (结构变更记录): who saw what, when, and the catalogue obligation it opened."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.exchange.models import SchemaChange


def _open_obligation(session: Session, *, resource: Resource, reason: str, actor: str) -> str | None:
    """The catalogue's update obligation (资源目录更新义务), which only a published entry carries: a registered or
    draft entry has nothing published to keep up (supervision had counted it as an update, late or not), and it
    describes the schema as it is when it is published."""
    from registry.catalog.obligations import open_update_obligation

    if resource.catalog_status != "published":
        return None
    opened = open_update_obligation(session, resource_code=resource.code, reason=reason, actor=actor)
    return str(getattr(opened, "id", opened)) if opened is not None else None


def record_schema_change(session: Session, *, resource: Resource, run_id: str, previous_version: int,
                         signature: str, added: list[dict], dropped: list[dict], retyped: list[dict],
                         compatible: bool, reason: str, actor: str = "pipeline") -> tuple[SchemaChange, bool]:
    """Record the change once per (resource, previous version, change); (record, newly recorded)."""
    seen = session.scalar(select(SchemaChange).where(
        SchemaChange.resource_id == resource.id, SchemaChange.previous_version == previous_version,
        SchemaChange.signature == signature))
    if seen is not None:
        return seen, False
    obligation = _open_obligation(session, resource=resource, actor=actor,
                                  reason=f"数据源结构变更 / source schema changed since v{previous_version}: {reason}")
    change = SchemaChange(resource_id=resource.id, run_id=run_id, previous_version=previous_version,
                          signature=signature, added=added, dropped=dropped, retyped=retyped, compatible=compatible,
                          reason=reason, actor=actor, obligation=obligation)
    session.add(change)
    session.flush()
    record_event(session, actor=actor, action="schema.change", agency_code=resource.agency.code,
                 resource_code=resource.code, result="ok" if compatible else "blocked",
                 detail={"run_id": run_id, "previous_version": previous_version, "added": added,
                         "dropped": dropped, "retyped": retyped, "compatible": compatible, "obligation": obligation})
    return change, True


def list_schema_changes(session: Session, *, resource: Resource) -> list[SchemaChange]:
    return list(session.scalars(select(SchemaChange).where(SchemaChange.resource_id == resource.id)
                                .order_by(SchemaChange.id)))
