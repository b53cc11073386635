"""Rectification orders (责令限期改正, article 23): issued against a violation with a deadline in working days;
the agency reports the fix; an order not fixed by its deadline is case (6), refusing ordered rectification.

``check_orders`` runs daily (the supervision DAG, `govshare rectification check`): it flags every order past
its deadline once (status overdue, a case-6 violation with the order and the original violation as evidence,
inbox messages to the agency and the supervisor). A fix reported after the deadline is flagged the same way.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.calendar.due_days import due_after, due_status
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.people.auth import OVERSIGHT_ROLES, Principal, require
from registry.sharing.applications import notify
from registry.supervision.due_days import due_text
from registry.supervision.findings import Finding, row_ref
from registry.supervision.models import VIOLATION_CASES, RectificationOrder
from registry.supervision.violations import get_violation, upsert_violation
from schemas.evaluation_config import load_config
from schemas.presentation import days_in

__all__ = ["check_orders", "get_order", "issue_order", "list_orders", "report_fixed"]


def _number(session: Session, day: date) -> str:
    prefix = f"ZG-{day:%Y%m%d}-"
    taken = session.scalars(select(RectificationOrder.number).where(RectificationOrder.number.like(prefix + "%")))
    return f"{prefix}{len(taken.all()) + 1:04d}"


def issue_order(session: Session, *, violation_id: int, requirement: str, by: Principal,
                working_days: int | None = None, issued_on: date | None = None) -> RectificationOrder:
    """Order the agency to put the violation right within `working_days` (default from the config file)."""
    require(by, by.has("supervisor", "coordination_office"), zh="只有监督机构可以责令整改",
            en="only the supervisor or the coordination office issues rectification orders")
    violation = get_violation(session, violation_id=violation_id)
    if violation.status != "open":
        raise ConfigError(f"违规 {violation_id} 状态为 {violation.status}，无需整改 / violation {violation_id} is "
                          f"{violation.status}: nothing to rectify")
    if not requirement.strip():
        raise ConfigError("整改通知须写明整改要求 / an order states what to put right (--requirement)")
    days = working_days if working_days is not None else load_config().thresholds.rectification_working_days
    if days < 1:
        raise ConfigError("整改期限至少 1 个工作日 / the deadline is at least 1 working day")
    day = issued_on or clock.today()
    order = RectificationOrder(number=_number(session, day), violation_id=violation.id, agency_id=violation.agency_id,
                               requirement=requirement.strip(), issued_on=day, working_days=days,
                               issued_by=by.actor, status="open", fix_note="")
    order.due_on, order.due_problem = due_after(day, days)
    session.add(order)
    session.flush()
    record_event(session, actor=by.actor, action="rectification.issue", agency_code=violation.agency.code,
                 detail={"order": order.number, "violation": violation.id, "case": violation.case,
                         "due_on": order.due_on, "due_status": due_status(order.due_on), "working_days": days})
    notify(session, kind="rectification", agency_id=violation.agency_id,
           message=f"责令整改通知 {order.number}：{days_in(violation.summary)}。整改要求：{order.requirement}。"
                   + (f"请于{due_text(order.due_on)}前完成整改并报告" if order.due_on
                      else f"整改期限{days}个工作日，到期日{due_text(None)}后确定"))
    return order


def get_order(session: Session, *, number: str) -> RectificationOrder:
    order = session.scalar(select(RectificationOrder).where(RectificationOrder.number == number))
    if order is None:
        raise NotFound(f"没有整改通知 {number} / no rectification order {number}; `govshare rectification list`")
    return order


def _flag(session: Session, order: RectificationOrder, *, on: date, actor: str) -> None:
    violation = order.violation
    state = f"{order.fixed_on} 才报告整改" if order.fixed_on else "逾期未整改"
    finding = Finding(6, "rectification_refused", order.agency_id, str(order.id), resource_id=violation.resource_id,
                      summary=f"整改通知 {order.number}（{VIOLATION_CASES[violation.case]}）限 {order.due_on} 前整改，"
                              f"{state}",
                      records=[row_ref("rectification_orders", order.id), row_ref("violations", violation.id)],
                      facts={"due_on": order.due_on.isoformat(),
                             "fixed_on": order.fixed_on.isoformat() if order.fixed_on else None})
    refusal, _ = upsert_violation(session, finding=finding, on=on, actor=actor, origin="rectification")
    order.refusal_violation_id = refusal.id
    if order.fixed_on is None:
        order.status = "overdue"
    record_event(session, actor=actor, action="rectification.overdue", agency_code=order.agency.code,
                 detail={"order": order.number, "due_on": order.due_on.isoformat(), "violation": refusal.id})
    for target in ({"agency_id": order.agency_id}, {"role": "supervisor"}):
        notify(session, kind="rectification_overdue", **target,
               message=f"整改通知 {order.number} 已过 {due_text(order.due_on)} 的整改期限，{state}，"
                       f"已认定为拒不整改（第二十三条第六项）")


def report_fixed(session: Session, *, number: str, note: str, by: Principal,
                 fixed_on: date | None = None) -> RectificationOrder:
    """The agency reports the order fixed; its violation is resolved. Late fixes are still case (6)."""
    order = get_order(session, number=number)
    require(by, by.acts_for(order.agency_id, roles=("agency_admin", "data_admin")) or by.has(*OVERSIGHT_ROLES),
            zh="只有被责令整改的机构或监督机构可以报告整改完成",
            en="only the ordered agency (or the supervisor) reports a rectification done")
    if order.fixed_on is not None:
        raise ConfigError(f"整改通知 {number} 已于 {order.fixed_on} 报告完成 / already reported fixed")
    if not note.strip():
        raise ConfigError("报告整改须说明整改情况 / say what was put right (--note)")
    day = fixed_on or clock.today()
    if day < order.issued_on:
        raise ConfigError("整改完成日期不能早于通知日期 / the fix cannot predate the order")
    order.fixed_on, order.fixed_by, order.fix_note, order.status = day, by.actor, note.strip(), "fixed"
    late = day > order.due_on if order.due_on is not None else None
    violation = order.violation
    if violation.status == "open":
        violation.status, violation.resolved_on = "resolved", day
    record_event(session, actor=by.actor, action="rectification.fixed", agency_code=order.agency.code,
                 detail={"order": number, "fixed_on": day.isoformat(), "late": late, "note": note})
    if late and order.refusal_violation_id is None:
        _flag(session, order, on=day, actor=by.actor)
    return order


def check_orders(session: Session, *, today: date | None = None, actor: str = "supervision") -> list[RectificationOrder]:
    """Flag each order not fixed by its deadline, once; returns the orders flagged now."""
    today = today or clock.today()
    flagged = []
    for order in session.scalars(select(RectificationOrder).where(
            RectificationOrder.status == "open", RectificationOrder.due_on < today,
            RectificationOrder.refusal_violation_id.is_(None)).order_by(RectificationOrder.id)):
        resolved = order.violation.resolved_on
        if order.violation.status in ("resolved", "closed") and resolved is not None and resolved <= order.due_on:
            # the records stopped showing the violation in time, or nothing was left to put right (closed: the
            # violation itself still counts): the order is done, even if nobody reported it
            order.status, order.fixed_on, order.fixed_by = "fixed", resolved, actor
            order.fix_note = ("记录显示违规情形已消除 / the records no longer show the violation"
                              if order.violation.status == "resolved" else
                              f"{days_in(order.violation.note)} / nothing is left to put right (the violation stands)")
            record_event(session, actor=actor, action="rectification.fixed", agency_code=order.agency.code,
                         detail={"order": order.number, "fixed_on": resolved.isoformat(), "late": False,
                                 "note": order.fix_note})
            continue
        _flag(session, order, on=today, actor=actor)
        flagged.append(order)
    return flagged


def list_orders(session: Session, *, by: Principal, status: str | None = None,
                agency_id: int | None = None) -> list[RectificationOrder]:
    query = select(RectificationOrder).order_by(RectificationOrder.id)
    if status:
        query = query.where(RectificationOrder.status == status)
    if agency_id is not None:
        query = query.where(RectificationOrder.agency_id == agency_id)
    rows = list(session.scalars(query))
    if by.kind == "console" or by.has(*OVERSIGHT_ROLES):
        return rows
    return [o for o in rows if o.agency_id == by.agency_id]
