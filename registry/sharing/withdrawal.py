"""An application withdrawn by its consumer (撤回共享申请) before the provider answered it.

The withdrawal is audited as ``application.withdraw``; that record's moment is the withdrawal day the evaluation
reads (registry/supervision/evaluation.py): an application withdrawn after its 10-working-day due day had passed
unanswered still counts as answered late in 申请答复及时率, one withdrawn by its due day is not counted (the
provider had nothing left to answer). Only an undecided application can be withdrawn: once answered, the consumer
disputes the answer (registry/sharing/disputes.py) or lets its grant be revoked.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError
from registry.audit.log import record_event
from registry.audit.models import AuditEvent
from registry.people.auth import Principal, require
from registry.sharing.applications import get_application, notify
from registry.sharing.models import Application
from schemas.presentation import label

__all__ = ["WITHDRAW_ACTION", "withdraw_application", "withdrawn_on"]

WITHDRAW_ACTION = "application.withdraw"


def withdraw_application(session: Session, *, number: str, reason: str, by: Principal) -> Application:
    """The consumer withdraws its undecided application, with the reason; the provider is told."""
    application = get_application(session, number=number)
    require(by, by.acts_for(application.consumer_agency_id), zh="只有申请机构可以撤回本机构的共享申请",
            en="only the applying agency's administrators withdraw its application")
    if application.status != "submitted":
        state = ("已经撤回" if application.status == "withdrawn"
                 else f"已答复（{label('application_statuses', application.status)}）")
        raise ConfigError(f"申请 {number} {state}，不能撤回；只有待答复的申请可以撤回，如对答复有异议请申请协调处理 / "
                          f"application {number} is already {application.status} and cannot be withdrawn; dispute "
                          f"an answer instead (`govshare dispute open`)")
    if not reason.strip():
        raise ConfigError("撤回申请须说明理由 / withdrawing an application needs a reason (--reason)")
    today = clock.today()
    application.status = "withdrawn"
    record_event(session, actor=by.actor, action=WITHDRAW_ACTION, agency_code=application.consumer.code,
                 resource_code=application.resource.code,
                 detail={"number": number, "reason": reason.strip(), "due_on": application.due_on,
                         "after_due_day": today > application.due_on if application.due_on else None})
    notify(session, kind="withdrawal", application=application, agency_id=application.resource.agency_id,
           message=f"{application.consumer.name}撤回了共享申请 {number}（{application.resource.name}）：{reason.strip()}")
    return application


def withdrawn_on(session: Session, *, numbers: list[str]) -> dict[str, date]:
    """The Beijing day each of these applications was withdrawn, from the audit record of its withdrawal."""
    wanted, days = set(numbers), {}
    if not wanted:
        return days
    for at, detail in session.execute(select(AuditEvent.at, AuditEvent.detail).where(
            AuditEvent.action == WITHDRAW_ACTION).order_by(AuditEvent.id)):
        if (number := (detail or {}).get("number")) in wanted:
            days[number] = clock.beijing_day(at)
    return days
