"""Data quality for agencies' systems: their error-correction tickets (疑义校核工单) with the rows to correct, the
data-element registry (数据元), and the duplicate-collection check (一数一源) a catalogue tool can call.

A ticket and its rows are visible only to the agency it is addressed to; every read of rows is audited.
A consistency ticket shows the other agency's values only where this agency's grant on that resource gives
them in the clear (delivery/ticket_view.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ConsumerDep, SessionDep
from api.principal import committed
from api.schemas import Problem
from core.errors import AccessDenied
from registry.audit.log import record_event

DENIED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
router = APIRouter(tags=["data quality"])


class TicketPublic(BaseModel):
    id: int
    kind: str
    resource_code: str
    resource_codes: list[str]  # a quarantine ticket stands for one rule across the provider's resources
    title: str
    rows: int
    status: str
    note: str
    created_at: datetime
    closed_at: datetime | None


class TicketRowsPublic(TicketPublic):
    columns: list[str]
    data: list[list[Any]]


class ElementPublic(BaseModel):
    code: str
    name: str
    subject_key: str
    agency_code: str
    agency_name: str
    resource_code: str
    column: str


class DuplicateCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the caller's agency is the token's, never a field
    element_codes: list[str] = Field(min_length=1, max_length=500)


class FindingPublic(BaseModel):
    kind: str
    element_code: str
    element_name: str
    message: str
    authoritative_agency_code: str | None
    authoritative_agency_name: str | None
    resource_code: str | None
    suggestion: str


def _public(ticket) -> dict[str, Any]:  # noqa: ANN001 - CorrectionTicket
    return {"id": ticket.id, "kind": ticket.kind, "resource_code": ticket.resource.code,
            "resource_codes": ticket.resource_codes, "title": ticket.title,
            "rows": ticket.rows, "status": ticket.status, "note": ticket.note, "created_at": ticket.created_at,
            "closed_at": ticket.closed_at}


@router.get("/api/v1/tickets", response_model=list[TicketPublic], responses=DENIED)
def tickets(session: SessionDep, consumer: ConsumerDep,
            status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None) -> list[TicketPublic]:
    """The caller's agency's error-correction tickets (疑义校核工单), newest first."""
    from registry.quality.tickets import list_tickets

    return [TicketPublic(**_public(t)) for t in list_tickets(session, agency=consumer.agency.code, status=status)]


@router.get("/api/v1/tickets/{ticket_id}", response_model=TicketRowsPublic, responses=DENIED)
def ticket(ticket_id: int, session: SessionDep, consumer: ConsumerDep,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> TicketRowsPublic:
    """One ticket with the rows it lists (quarantined rows with rule and reason, or value mismatches)."""
    from delivery.ticket_view import visible_rows
    from pipeline.quarantine import ticket_rows
    from registry.quality.tickets import get_ticket

    found = get_ticket(session, ticket_id=ticket_id)
    if found.agency_id != consumer.agency_id:
        record_event(session, actor=consumer.name, action="ticket.read", agency_code=consumer.agency.code,
                     resource_code=found.resource.code, result="denied", detail={"ticket": ticket_id})
        session.commit()
        raise AccessDenied("该工单不是发给贵单位的", f"ticket {ticket_id} is addressed to another agency")
    columns, rows = ticket_rows(session, ticket=found, limit=limit)
    # the other agency's values only under this agency's grant on its resource (delivery/ticket_view.py)
    rows, withheld = visible_rows(session, ticket=found, columns=columns, rows=rows, actor=consumer.name)
    record_event(session, actor=consumer.name, action="ticket.read", agency_code=consumer.agency.code,
                 resource_code=found.resource.code, detail={"ticket": ticket_id, "rows": len(rows),
                                                            "withheld": withheld})
    # committed before the answer leaves: the read is evidence, and an auditor looking at once must find it
    return committed(session, TicketRowsPublic(**_public(found), columns=columns, data=[list(r) for r in rows]))


@router.get("/api/v1/elements", response_model=list[ElementPublic], responses=DENIED)
def elements(session: SessionDep, _: ConsumerDep) -> list[ElementPublic]:
    """Data elements (数据元) and the one authoritative agency and resource of each."""
    from registry.catalog.elements import list_elements

    return [ElementPublic(code=e.code, name=e.name, subject_key=e.subject_key, agency_code=e.agency.code,
                          agency_name=e.agency.name, resource_code=e.resource.code, column=e.column)
            for e in list_elements(session)]


@router.post("/api/v1/elements/duplicate-check", response_model=list[FindingPublic], responses=DENIED)
def duplicate_check(body: DuplicateCheckCreate, session: SessionDep, consumer: ConsumerDep) -> list[FindingPublic]:
    """Would the caller's agency collect an element another agency is authoritative for? (一数一源)"""
    from registry.catalog.elements import check_duplicate_collection

    findings = check_duplicate_collection(session, agency_code=consumer.agency.code, element_codes=body.element_codes)
    return [FindingPublic(kind=f.kind, element_code=f.element_code, element_name=f.element_name, message=f.message,
                          authoritative_agency_code=f.authoritative_agency_code,
                          authoritative_agency_name=f.authoritative_agency_name, resource_code=f.resource_code,
                          suggestion=f.suggestion) for f in findings]
