"""Due days as the registry records them: filled in once their year's working-day schedule is installed
(core/calendar/due_days.py computes them), and shown as a person reads them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.calendar.due_days import DECISION_WORKING_DAYS, UPDATE_WORKING_DAYS, due_after
from registry.audit.log import record_event
from registry.catalog.models import UpdateObligation
from registry.sharing.models import Application
from registry.supervision.models import RectificationOrder
from schemas.presentation import due_day, labels

__all__ = ["DUE_STATUS_LABELS", "SCHEDULER", "Scheduled", "due_text", "fill_pending"]

SCHEDULER = "system:calendar"  # the actor of due days filled in when a reader finds their schedule installed
DUE_STATUS_LABELS = labels("due_statuses")


def due_text(due_on: date | None) -> str:
    """The due day as a person reads it: 2026年12月18日, or 待国务院公布节假日安排."""
    return due_day(due_on)


@dataclass(frozen=True)
class Scheduled:
    """A due day filled in once its year's schedule arrived."""

    kind: str  # update_obligation, application, rectification_order
    reference: str  # resource code, application number or order number
    due_on: date


def fill_pending(session: Session, *, actor: str) -> list[Scheduled]:
    """Compute every due day still unknown whose year now has a schedule; each one filled in is audited."""
    filled: list[Scheduled] = []

    def record(kind: str, reference: str, due: date, agency_code: str, resource_code: str | None) -> None:
        filled.append(Scheduled(kind, reference, due))
        record_event(session, actor=actor, action="due_day.scheduled", agency_code=agency_code,
                     resource_code=resource_code, detail={"kind": kind, "reference": reference, "due_on": due})

    for obligation in session.scalars(select(UpdateObligation).where(UpdateObligation.due_on.is_(None))):
        obligation.due_on, obligation.due_problem = due_after(obligation.opened_on, UPDATE_WORKING_DAYS)
        if obligation.due_on is not None:
            resource = obligation.resource
            record("update_obligation", resource.code, obligation.due_on, resource.agency.code, resource.code)
    for application in session.scalars(select(Application).where(Application.due_on.is_(None))):
        application.due_on, application.due_problem = due_after(application.received_on, DECISION_WORKING_DAYS)
        if application.due_on is not None:
            record("application", application.number, application.due_on, application.resource.agency.code,
                   application.resource.code)
    for order in session.scalars(select(RectificationOrder).where(RectificationOrder.due_on.is_(None))):
        order.due_on, order.due_problem = due_after(order.issued_on, order.working_days)
        if order.due_on is not None:
            record("rectification_order", order.number, order.due_on, order.agency.code, None)
    session.flush()
    return filled
