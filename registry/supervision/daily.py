"""The supervision's daily work (the Airflow DAG dags/govshare_supervision.py and `govshare supervision daily`):
the statutory clocks (application reminders and overdue flags, rectification deadlines), violation detection,
and the evaluation of the current quarter. Each step commits on its own, so one failing leaves the others done."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from core import clock
from core.calendar.due_days import schedule_warning
from core.errors import FatalError
from registry.supervision.due_days import fill_pending
from registry.supervision.periods import current_quarter, parse_period

ACTOR = "supervision"
log = logging.getLogger(__name__)


def run_clocks(*, today: date | None = None, actor: str = ACTOR) -> dict[str, Any]:
    """Due days whose year's schedule has since been installed (filled in and audited), application reminders and
    overdue flags (registry/sharing/applications.py), consumers told of grants run out (registry/sharing/grants.py),
    catalogue update obligations past due (registry/catalog/obligations.py, listed; flagged as violations by
    detection), rectification deadlines. A missing working-day schedule the
    clocks need is logged as a warning naming the command that installs it."""
    from registry.catalog import obligations
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.applications import check_deadlines
    from registry.sharing.grants import notify_expired_grants
    from registry.supervision.rectification import check_orders

    day = (today or clock.today())
    warning = schedule_warning(day)
    if warning:
        log.warning("%s", warning)
    with session_scope() as session:
        scheduled = fill_pending(session, actor=actor)
        applications = check_deadlines(session, today=day, by=console(actor))
        expired = notify_expired_grants(session, by=console(actor))
        overdue = [o.id for o in obligations.overdue_obligations(session, today=day)]
        waiting = [o.id for o in obligations.unscheduled_obligations(session)]
        flagged = [o.number for o in check_orders(session, today=day, actor=actor)]
    return {"day": day.isoformat(), "scheduled": [f"{s.kind}:{s.reference}:{s.due_on}" for s in scheduled],
            "applications": [f"{n}:{what}" for n, what in applications], "expired_grants": expired,
            "overdue_obligations": overdue, "unscheduled_obligations": waiting, "rectification_overdue": flagged,
            "schedule_warning": str(warning) if warning else None}


def run_detection(*, today: date | None = None, actor: str = ACTOR) -> dict[str, Any]:
    from registry.db import session_scope
    from registry.supervision.violations import detect_violations

    day = (today or clock.today())
    with session_scope() as session:
        report = detect_violations(session, as_of=day, actor=actor)
        return {"day": day.isoformat(), "found": len(report.found), "new": [v.id for v in report.new],
                "resolved": [v.id for v in report.resolved], "closed": [v.id for v in report.closed]}


def run_sharing_check(*, actor: str = ACTOR) -> dict[str, Any]:
    """Grants in force without a basis, grants naming columns their entry does not list and rows edited outside
    the hub (registry/sharing/check.py); each finding is audited so it is kept."""
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants, edited_rows, unlisted_grant_columns

    with session_scope() as session:
        found, edited, unlisted = baseless_grants(session), edited_rows(session), unlisted_grant_columns(session)
        record_event(session, actor=actor, action="sharing.check",
                     result="failed" if found or edited or unlisted else "ok",
                     detail={"baseless": [{"grant": g.grant_id, "resource": g.resource_code, "agency": g.agency_code,
                                           "problem": g.problem_en} for g in found],
                             "edited": [{"table": e.table, "id": e.row_id} for e in edited],
                             "unlisted": [{"grant": u.grant_id, "resource": u.resource_code, "columns": u.columns}
                                          for u in unlisted]})
        return {"baseless_grants": [g.grant_id for g in found],
                "edited_rows": [f"{e.table}:{e.row_id}" for e in edited],
                "unlisted_columns": {u.grant_id: u.columns for u in unlisted}}


def check_sharing(*, actor: str = ACTOR) -> dict[str, Any]:
    """The sharing check as the DAG's task runs it: what it found fails the task (a failed task makes someone
    look), said in Chinese with the English as every error is, naming the grants and rows."""
    found = run_sharing_check(actor=actor)
    grants, rows, unlisted = found["baseless_grants"], found["edited_rows"], found["unlisted_columns"]
    if grants or rows or unlisted:
        listed = ", ".join(map(str, grants)) or "-"
        edited = ", ".join(rows) or "-"
        wide = "; ".join(f"{grant}: {', '.join(columns)}" for grant, columns in unlisted.items()) or "-"
        raise FatalError(zh=f"共享授权核查发现问题：无依据的授权 {len(grants)} 项（{listed}），在平台外被改动的记录 "
                            f"{len(rows)} 条（{edited}），列出目录条目未列信息项的授权 {len(unlisted)} 项（{wide}）；"
                            "请运行 govshare sharing check 查看并处理",
                         en=f"the sharing check found {len(grants)} grant(s) in force without a basis ({listed}), "
                            f"{len(rows)} row(s) edited outside the hub ({edited}) and {len(unlisted)} grant(s) naming "
                            f"columns their entry does not list ({wide}); run `govshare sharing check` to see them "
                            "and put them right")
    return found


def run_audit_anchor() -> dict[str, Any]:
    """Write the audit chain's head outside the database (GOVSHARE_AUDIT_ANCHOR_DIR) after verifying the log."""
    from registry.audit.verify import write_anchor
    from registry.db import session_scope

    with session_scope() as session:
        path, anchor = write_anchor(session)
    return {"anchor": str(path), "id": anchor["id"], "hash": anchor["hash"]}


def run_scheduled_evaluation(*, today: date | None = None, actor: str = ACTOR) -> dict[str, Any]:
    """Evaluate the current quarter (a notice can be drawn any day from the latest run), and once the quarter
    before it is over, that one too, once: the last run inside it, the morning of its last day, could not yet count
    the clocks due that day, so the record kept of a closed quarter left them out for good."""
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.supervision.evaluation import run_evaluation
    from registry.supervision.models import EvaluationRun

    day = (today or clock.today())
    current = parse_period(current_quarter(day))
    closed = current.previous()
    with session_scope() as session:
        final = session.scalar(select(EvaluationRun.id).where(
            EvaluationRun.period == closed.code, EvaluationRun.created_at >= clock.as_utc(closed.end_at)).limit(1))
        if final is None:
            run_evaluation(session, period=closed.code, as_of=day, actor=actor)
        run = run_evaluation(session, period=current.code, as_of=day, actor=actor)
        return {"run": run.id, "period": run.period, "agencies": len(run.results["agencies"]),
                "closed_period": None if final is not None else closed.code}


def run_daily(*, today: date | None = None, actor: str = ACTOR) -> dict[str, Any]:
    return {"clocks": run_clocks(today=today, actor=actor), "violations": run_detection(today=today, actor=actor),
            "sharing": run_sharing_check(actor=actor),
            "evaluation": run_scheduled_evaluation(today=today, actor=actor)}
