"""The audit trail (审计追踪, article 18): append-only, each event chained to the previous by SHA-256."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.models import AuditEvent, utcnow

GENESIS = "0" * 64


def _canonical_time(at: datetime) -> str:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: AuditEvent) -> str:
    from core.crypto import sha256_hex

    body = {
        "at": _canonical_time(event.at),
        "actor": event.actor,
        "agency_code": event.agency_code,
        "action": event.action,
        "resource_code": event.resource_code,
        "result": event.result,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    return sha256_hex(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str))


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    agency_code: str | None = None,
    resource_code: str | None = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction, so it commits or rolls back with the action."""
    if session.get_bind().dialect.name == "postgresql":
        # Serialise writers on the chain's tail; released when the transaction ends.
        session.execute(text("SELECT pg_advisory_xact_lock(7310001)"))
    last = session.scalars(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        agency_code=agency_code,
        action=action,
        resource_code=resource_code,
        result=result,
        detail=json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str)),
        prev_hash=last or GENESIS,
    )
    event.hash = event_hash(event)
    session.add(event)
    session.flush()
    return event


def verify_chain(session: Session) -> list[str]:
    """Every break in the chain, described; an empty list means the log is intact."""
    problems: list[str] = []
    expected_prev = GENESIS
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        if event.prev_hash != expected_prev:
            problems.append(f"event {event.id}: does not follow the previous event (deleted, inserted or reordered)")
        if event_hash(event) != event.hash:
            problems.append(f"event {event.id}: content does not match its hash (edited)")
        expected_prev = event.hash
    return problems
