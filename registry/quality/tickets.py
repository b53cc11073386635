"""Error-correction tickets (疑义校核工单, article 23): the hub asks an agency to check and correct its data.

A ticket is opened for the provider when a run quarantines rows under a rule that has no open ticket yet (kind
``quarantine``: one open ticket per provider and rule, listing that rule's open records in all the provider's
resources, registry/quality/quarantine.py)
and for both agencies when a copy disagrees with the authoritative data (kind
``consistency``). Closing a ticket records who closed it and why; a replay of the fixed rows closes it too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.people.agencies import get_agency
from registry.people.models import Agency
from registry.quality.models import TICKET_KINDS, TICKET_STATUSES, CorrectionTicket


def open_ticket(session: Session, *, kind: str, agency: Agency, resource: Resource, title: str, rows: int,
                detail: dict[str, Any] | None = None, quarantine_set_id: int | None = None,
                consistency_check_id: int | None = None, rule: str | None = None,
                actor: str = "pipeline") -> CorrectionTicket:
    if kind not in TICKET_KINDS:
        raise ConfigError(f"ticket kind {kind!r} must be one of {', '.join(TICKET_KINDS)}")
    ticket = CorrectionTicket(kind=kind, agency_id=agency.id, resource_id=resource.id, title=title, rows=rows,
                              detail=detail or {}, quarantine_set_id=quarantine_set_id,
                              consistency_check_id=consistency_check_id, rule=rule, status="open", note="")
    session.add(ticket)
    session.flush()
    record_event(session, actor=actor, action="ticket.open", agency_code=agency.code, resource_code=resource.code,
                 detail={"ticket": ticket.id, "kind": kind, "rows": rows, **({"rule": rule} if rule else {})})
    return ticket


def list_tickets(session: Session, *, agency: str | None = None, status: str | None = None,
                 resource_code: str | None = None) -> list[CorrectionTicket]:
    """Tickets, newest first; ``agency`` is a code or exact name."""
    query = select(CorrectionTicket).order_by(CorrectionTicket.id.desc())
    if agency:
        query = query.where(CorrectionTicket.agency_id == get_agency(session, ref=agency).id)
    if status:
        if status not in TICKET_STATUSES:
            raise ConfigError(f"ticket status {status!r} must be one of {', '.join(TICKET_STATUSES)}")
        query = query.where(CorrectionTicket.status == status)
    if not resource_code:
        return list(session.scalars(query))
    resource = session.scalar(select(Resource).where(Resource.code == resource_code))
    if resource is None:
        return []
    # a quarantine ticket stands for its agency's resources: it names each in detail["resources"]
    query = query.where((CorrectionTicket.resource_id == resource.id) | (
        (CorrectionTicket.kind == "quarantine") & (CorrectionTicket.agency_id == resource.agency_id)))
    return [t for t in session.scalars(query)
            if t.resource_id == resource.id or resource_code in (t.detail or {}).get("resources", {})]


def get_ticket(session: Session, *, ticket_id: int) -> CorrectionTicket:
    ticket = session.get(CorrectionTicket, ticket_id)
    if ticket is None:
        raise NotFound(f"没有工单 {ticket_id} / no ticket {ticket_id}; `govshare ticket list` shows them")
    return ticket


def close_ticket(session: Session, *, ticket_id: int, note: str, actor: str = "cli") -> CorrectionTicket:
    ticket = get_ticket(session, ticket_id=ticket_id)
    if ticket.status == "closed":
        raise ConfigError(f"工单 {ticket_id} 已关闭 / ticket {ticket_id} is already closed ({ticket.note})")
    if not note.strip():
        raise ConfigError("closing a ticket needs a note saying what was corrected (--note)")
    ticket.status, ticket.note, ticket.closed_at = "closed", note.strip(), clock.now()
    record_event(session, actor=actor, action="ticket.close", agency_code=ticket.agency.code,
                 resource_code=ticket.resource.code, detail={"ticket": ticket.id, "note": ticket.note})
    return ticket
