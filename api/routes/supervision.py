"""Supervision over HTTP (articles 22 and 23): an agency's own standing in the evaluation and its open
items (violations with their evidence, rectification orders, update obligations, undecided applications, quality
tickets). A caller sees only its own agency; the supervisor and the coordination office see every agency."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.principal import DENIED, AuditedRoute, PrincipalDep
from core import clock
from registry.audit.log import record_event
from registry.people.auth import Principal, require
from core.calendar.due_days import due_status, schedule_warning
from schemas.presentation import label

# refusals (another agency's standing) are audited by the route class, like every workflow request
router = APIRouter(prefix="/api/v1/supervision", tags=["supervision"], responses=DENIED, route_class=AuditedRoute)
SEE_ALL = ("supervisor", "coordination_office")


class ViolationPublic(BaseModel):
    id: int
    case: int
    kind: str = Field(description="what found it, e.g. late_update (schemas/labels.yaml violation_kinds)")
    kind_zh: str = Field(description="the kind's Chinese label, as pages and notices show it: 目录逾期未更新")
    summary: str
    status: str
    detected_on: date
    resource_code: str | None
    evidence: dict[str, Any]


class OrderPublic(BaseModel):
    number: str
    violation_id: int
    requirement: str
    issued_on: date
    due_on: date | None = Field(description="the last day of the working-day clock; null while that year's "
                                "State Council holiday schedule is not installed")
    due_status: str = Field(description="awaiting_schedule (due day unknown: 待国务院公布节假日安排), pending, "
                            "overdue or closed")
    status: str
    fixed_on: date | None


class StandingPublic(BaseModel):
    agency_code: str
    agency_name: str
    period: str
    as_of: date
    score: float | None
    rank: int | None
    ranked_agencies: int
    metrics: dict[str, float | None]
    counts: dict[str, list[int]]
    clocks: dict[str, dict[str, int]]
    violations: list[ViolationPublic]
    rectification_orders: list[OrderPublic]
    open_obligations: list[dict[str, Any]]
    pending_applications: list[dict[str, Any]]
    open_tickets: list[dict[str, Any]]
    schedule_warning: str | None = Field(description="set while a working-day schedule the clocks need is "
                                         "not installed: what the operator must run")


def standing_view(session: Session, *, principal: Principal, code: str, period: str | None) -> dict[str, Any]:
    """What an agency sees of itself (the API answer and the web page): refused for another agency unless the
    caller is the supervisor or the coordination office; the read is audited."""
    from registry.people.agencies import get_agency
    from registry.catalog.models import Resource, UpdateObligation
    from registry.supervision.evaluation import evaluate
    from registry.supervision.periods import current_quarter
    from registry.quality.models import CorrectionTicket
    from registry.sharing.models import Application
    from registry.supervision.models import RectificationOrder, Violation

    agency = get_agency(session, ref=code)
    require(principal, principal.agency_id == agency.id or principal.has(*SEE_ALL),
            zh="只能查看本机构的评估情况", en="an agency sees only its own standing; the supervisor sees all")
    today = clock.today()
    result = evaluate(session, period=period or current_quarter(today))
    standing = result.standing(agency.code)
    violations = session.scalars(select(Violation).where(Violation.agency_id == agency.id, Violation.status == "open")
                                 .order_by(Violation.id))
    orders = session.scalars(select(RectificationOrder).where(
        RectificationOrder.agency_id == agency.id, RectificationOrder.status.in_(("open", "overdue")))
        .order_by(RectificationOrder.id))
    obligations = session.scalars(select(UpdateObligation).join(Resource).where(
        Resource.agency_id == agency.id, UpdateObligation.closed_on.is_(None)).order_by(UpdateObligation.due_on))
    applications = session.scalars(select(Application).join(Resource, Resource.id == Application.resource_id).where(
        Resource.agency_id == agency.id, Application.status == "submitted").order_by(Application.due_on))
    tickets = session.scalars(select(CorrectionTicket).where(CorrectionTicket.agency_id == agency.id,
                                                             CorrectionTicket.status == "open"))
    record_event(session, actor=principal.actor, action="supervision.standing_read", agency_code=agency.code,
                 detail={"period": result.period})
    return {
        "agency_code": agency.code, "agency_name": agency.name, "period": result.period, "as_of": result.as_of,
        "score": standing.score if standing else None, "rank": standing.rank if standing else None,
        "ranked_agencies": sum(1 for a in result.agencies if a.rank is not None),
        "metrics": standing.metrics if standing else {}, "counts": standing.counts if standing else {},
        "clocks": standing.clocks if standing else {},
        "violations": [ViolationPublic(id=v.id, case=v.case, kind=v.kind, kind_zh=label("violation_kinds", v.kind),
                                       summary=v.summary, status=v.status,
                                       detected_on=v.detected_on, evidence=v.evidence,
                                       resource_code=v.resource.code if v.resource else None) for v in violations],
        "rectification_orders": [OrderPublic(number=o.number, violation_id=o.violation_id, requirement=o.requirement,
                                             issued_on=o.issued_on, due_on=o.due_on, status=o.status,
                                             due_status=due_status(o.due_on, closed=o.status == "fixed", today=today),
                                             fixed_on=o.fixed_on) for o in orders],
        # due_on is None while the due year's working-day schedule is not installed (registry/supervision/due_days.py)
        "open_obligations": [{"id": o.id, "resource_code": o.resource.code, "reason": o.reason,
                              "due_on": o.due_on.isoformat() if o.due_on else None,
                              "due_status": due_status(o.due_on, today=today),
                              "overdue": due_status(o.due_on, today=today) == "overdue"} for o in obligations],
        "pending_applications": [{"number": a.number, "resource_code": a.resource.code, "consumer": a.consumer.code,
                                  "due_on": a.due_on.isoformat() if a.due_on else None,
                                  "due_status": due_status(a.due_on, today=today),
                                  "overdue": due_status(a.due_on, today=today) == "overdue"} for a in applications],
        "schedule_warning": str(warning) if (warning := schedule_warning(today)) else None,
        "open_tickets": [{"id": t.id, "kind": t.kind, "resource_code": t.resource.code, "title": t.title,
                          "rows": t.rows} for t in tickets],
    }


@router.get("/agencies/{code}", response_model=StandingPublic)
def agency_standing(code: str, session: SessionDep, principal: PrincipalDep,
                    period: Annotated[str | None, Query(description="2026, 2026Q4 or 2026-11; default this quarter")] = None
                    ) -> StandingPublic:
    """The agency's score, rank, metrics and clocks for the period, and what it still has to put right."""
    return StandingPublic(**standing_view(session, principal=principal, code=code, period=period))


@router.get("/evaluation", response_model=list[dict[str, Any]])
def ranking(session: SessionDep, principal: PrincipalDep,
            period: Annotated[str | None, Query(description="2026, 2026Q4 or 2026-11; default this quarter")] = None
            ) -> list[dict[str, Any]]:
    """Every agency's score and rank with its metrics, their numerators and denominators (`counts`) and its open
    violations, as the notice's ranking shows them (the supervisor and the coordination office only)."""
    from registry.supervision.evaluation import evaluate
    from registry.supervision.periods import current_quarter

    require(principal, principal.has(*SEE_ALL), zh="只有监督机构可以查看全部机构的评估",
            en="only the supervisor or the coordination office sees every agency's evaluation")
    result = evaluate(session, period=period or current_quarter(clock.today()))
    return [{"rank": a.rank, "code": a.code, "name": a.name, "score": a.score, "metrics": a.metrics,
             "counts": a.counts, "open_violations": a.open_violations} for a in result.agencies]
