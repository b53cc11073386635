"""Applications for conditional resources (按需共享申请, article 14) and for leave to publish or pass data
outside (对外提供或发布申请, article 17); the provider's decision within 10 working days; reminders; overdue flags.

Clock: the provider has 10 working days (core/calendar/workdays.py) from receipt of the written form; receipt is the
submission day in Beijing time unless the provider records another (`govshare apply receive`). A deadline in a
year whose holiday schedule is not installed is recorded as unknown (core/calendar/due_days.py): the application is
accepted, never refused for want of a calendar, and neither reminded nor flagged until the schedule arrives. Reminders go to
the provider's inbox REMIND_WORKING_DAYS before the last day; after it an undecided application is flagged to
the coordination office (领导小组办公室). Disputes are in registry/sharing/disputes.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.calendar.due_days import DECISION_WORKING_DAYS, due_after, due_status
from core.calendar.workdays import working_days_between
from core.errors import AccessDenied, ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import mark_audited, record_event
from registry.catalog.resources import get_resource, hidden_from, missing_resource
from registry.exchange.versions import latest_version
from registry.people.agencies import get_agency
from registry.people.auth import OVERSIGHT_ROLES, Principal, require, require_person
from registry.people.models import Agency
from registry.people.roles import PLATFORM_ROLES, roles_that
from registry.sharing.grants import (
    LIVE,
    create_grant,
    end_grant,
    filter_columns,
    get_grant,
    lifted_masks,
    live_grant,
    new_term,
    unpublished,
    validate_row_filter,
)
from registry.sharing.inbox import notify
from registry.sharing.models import Application, InboxMessage
from registry.supervision.due_days import due_text
from schemas.presentation import label, labels

REMIND_WORKING_DAYS = 2
KINDS = labels("application_kinds")
OUTCOMES = {"approve": "approved", "partial": "partial", "refuse": "refused"}


def _known_columns(session: Session, resource) -> list[str] | None:  # noqa: ANN001 - Resource
    """The data items one may apply for: the published entry's items (信息项) that name a column, as the
    application page offers them; for an entry without such items, the latest version's columns."""
    from registry.catalog.entries import catalogued_columns

    if items := catalogued_columns(session, resource=resource):
        return items
    version = latest_version(session, resource=resource)
    if version is None:
        return None
    return [field["name"] for field in version.manifest.get("schema", []) if "name" in field] or None


def _next_number(session: Session, kind: str, today: date) -> str:
    prefix = f"{'XQSQ' if kind == 'use' else 'DWFB'}-{today:%Y%m%d}-"
    taken = session.scalars(select(Application.number).where(Application.number.like(prefix + "%"))).all()
    return f"{prefix}{len(taken) + 1:04d}"


def _denied(session: Session, by: Principal, action: str, resource_code: str, agency: Agency | None,
            error: AccessDenied) -> AccessDenied:
    record_event(session, actor=by.actor, action=action, agency_code=agency.code if agency else None,
                 resource_code=resource_code, result="denied", detail={"reason": error.en})
    session.commit()  # a refusal is evidence too
    return mark_audited(error)


def apply(session: Session, *, resource_code: str, consumer: str, scope: str, purpose: str, items: list[str],
          by: Principal, row_filter: dict[str, Any] | None = None, kind: str = "use",
          submitted_at: datetime | None = None) -> Application:
    """Submit an application; its form (需求申请表) is then printed with `govshare apply form NUMBER`."""
    resource = get_resource(session, code=resource_code)
    taker = get_agency(session, ref=consumer)
    require(by, by.acts_for(taker.id), zh="只能以本机构名义申请（机构管理员或数据资源管理员）",
            en="you may apply only for your own agency, as its agency or data resource administrator")
    if kind not in KINDS:
        raise ConfigError(f"application kind {kind!r} must be one of {', '.join(KINDS)}")
    if refusal := unpublished(resource, doing_zh="申请", doing_en="applied for"):
        denied = _denied(session, by, "application.submit", resource.code, taker, refusal)
        # to another agency an entry not published is answered as a code that does not exist (audited as refused);
        # the console (the operator's CLI) lists every resource anyway and is told why
        hidden = by.kind != "console" and hidden_from(resource, agency_id=taker.id)
        raise missing_resource(resource_code) if hidden else denied
    if resource.sharing_type == "not_shared":
        raise _denied(session, by, "application.submit", resource.code, taker, AccessDenied(
            f"该资源不予共享，不能申请，依据：{resource.sharing_condition}",
            f"this resource is not shared and cannot be applied for; legal basis: {resource.sharing_condition}"))
    if taker.id == resource.agency_id:
        raise ConfigError("提供方无需申请本机构的资源 / a provider does not apply for its own resource")
    if not scope.strip() or not purpose.strip():
        raise ConfigError("请填写共享范围和共享用途 / an application states its scope (共享范围) and purpose (共享用途)")
    checked_name(scope.strip(), what_zh="共享范围", what_en="the scope")
    items = [i.strip() for i in items if i.strip()]
    if not items:
        raise ConfigError("请至少选择一个申请数据项 / list the data items wanted (申请数据项): --item COLUMN, repeatable")
    if len(set(items)) != len(items):
        raise ConfigError("申请数据项重复 / a data item is listed twice")
    if kind == "use":
        if resource.sharing_type == "unconditional":
            raise ConfigError("该资源为无条件共享，请直接订阅，无需申请 / this resource is shared unconditionally: subscribe "
                              "instead (`govshare subscribe`)")
        known = _known_columns(session, resource)
        wanted = items + filter_columns(validate_row_filter(row_filter))
        if known is not None and (unknown := [i for i in wanted if i not in known]):
            raise ConfigError(f"该资源没有数据项 {'、'.join(unknown)} / unknown data item(s) {unknown}; the resource has "
                              f"{', '.join(known)}")
    else:
        grant = live_grant(session, resource=resource, agency_id=taker.id)
        if grant is None or grant.status != "active":
            raise _denied(session, by, "application.submit", resource.code, taker, AccessDenied(
                "本机构未持有该资源的有效授权，不能申请对外提供或发布",
                "your agency holds no active grant on this resource, so it cannot ask to publish or pass it on"))
        if grant.columns is not None and (outside := [i for i in items if i not in grant.columns]):
            raise ConfigError(f"data item(s) {outside} are not in your grant; only granted items can be passed on")
    submitted = submitted_at or clock.now()
    received = clock.beijing_day(submitted)
    application = Application(
        number=_next_number(session, kind, received), kind=kind, resource_id=resource.id,
        consumer_agency_id=taker.id, applicant=by.actor, scope=scope, purpose=purpose, items=items,
        row_filter=validate_row_filter(row_filter), status="submitted", submitted_at=submitted,
        received_on=received)
    application.due_on, application.due_problem = due_after(received, DECISION_WORKING_DAYS)
    session.add(application)
    session.flush()
    record_event(session, actor=by.actor, action="application.submit", agency_code=taker.code,
                 resource_code=resource.code,
                 detail={"number": application.number, "kind": kind, "scope": scope, "purpose": purpose,
                         "items": items, "row_filter": application.row_filter,
                         "due_on": application.due_on, "due_status": due_status(application.due_on)})
    notify(session, kind="application", application=application, agency_id=resource.agency_id,
           message=f"{taker.name}提交{KINDS[kind]}申请 {application.number}（{resource.name}），"
                   + (f"请于{due_text(application.due_on)}前答复" if application.due_on
                      else f"答复期限{due_text(application.due_on)}后确定"))
    return application


def get_application(session: Session, *, number: str) -> Application:
    application = session.scalar(select(Application).where(Application.number == number))
    if application is None:
        raise NotFound(f"no application {number!r}; `govshare apply list` shows them")
    return application


def may_see(by: Principal, application: Application) -> bool:
    return (by.kind == "console" or by.has(*OVERSIGHT_ROLES)
            or by.agency_id in (application.consumer_agency_id, application.resource.agency_id))


def list_applications(session: Session, *, by: Principal, status: str | None = None) -> list[Application]:
    query = select(Application).order_by(Application.id)
    if status:
        query = query.where(Application.status == status)
    return [a for a in session.scalars(query) if may_see(by, a)]


def _receipt_recorded(session: Session, application: Application) -> str | None:
    """The arrival day already recorded for the application's written form, if one was."""
    from registry.audit.models import AuditEvent

    for detail in session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "application.receive", AuditEvent.resource_code == application.resource.code,
            AuditEvent.result == "ok")):
        if (detail or {}).get("number") == application.number:
            return detail.get("received_on")
    return None


def record_receipt(session: Session, *, number: str, received_on: date, by: Principal) -> Application:
    """The provider records the day the written form arrived; the 10-working-day clock restarts from it."""
    application = get_application(session, number=number)
    require(by, by.acts_for(application.resource.agency_id), zh="只有提供方可以登记收到书面申请",
            en="only the provider records receipt of the written application")
    if application.status != "submitted":
        raise ConfigError(f"申请 {number} 已答复，不能再登记收到日期 / application {number} is already "
                          f"{application.status}")
    if (recorded := _receipt_recorded(session, application)) is not None:
        raise ConfigError(f"申请 {number} 已登记收到书面申请日期 {recorded}，不能再次登记（再次登记会重新起算答复期限；"
                          f"登记有误请用 `govshare apply correct-receipt` 说明理由更正）/ the written form's arrival "
                          f"({recorded}) is already recorded: it is recorded once, so the 10-working-day clock cannot "
                          "be restarted (a wrong day is corrected, with a reason, by `govshare apply correct-receipt`)")
    _receipt_day_possible(application, received_on)
    application.received_on = received_on
    application.due_on, application.due_problem = due_after(received_on, DECISION_WORKING_DAYS)
    application.reminded_at = application.overdue_flagged_at = None
    record_event(session, actor=by.actor, action="application.receive", agency_code=application.consumer.code,
                 resource_code=application.resource.code,
                 detail={"number": number, "received_on": received_on.isoformat(),
                         "due_on": application.due_on, "due_status": due_status(application.due_on)})
    return application


def _receipt_day_possible(application: Application, received_on: date) -> None:
    """The written form arrives between the application's submission (Beijing day) and today."""
    if received_on > (today := clock.today()):
        raise ConfigError(f"收到书面申请的日期 {received_on} 晚于今天 {today}：请在收到后登记实际收到日期 / the written "
                          "form's arrival cannot be recorded before it happens")
    if received_on < (submitted := clock.beijing_day(application.submitted_at)):
        raise ConfigError(f"收到书面申请的日期 {received_on} 早于提交申请的日期 {submitted} / the written form cannot "
                          f"arrive before the application was submitted ({submitted})")


def correct_receipt(session: Session, *, number: str, received_on: date, reason: str, by: Principal) -> Application:
    """Correct a recorded arrival day entered wrongly (更正收件日期): by the provider's staff or the platform
    operator, with a reason, while the application is unanswered; audited with the old and the new day, the due
    day recomputed from the new one. Notices already sent (reminder, overdue flag) stay sent: the correction and
    its reason are on record for the coordination office to weigh."""
    application = get_application(session, number=number)
    correctors = roles_that("correct_receipts")  # the provider's staff, and the platform operator for any agency
    require(by, by.acts_for(application.resource.agency_id, correctors) or by.has(*correctors & PLATFORM_ROLES),
            zh="只有提供方或平台运维人员可以更正收到书面申请的日期",
            en="only the provider's staff or the platform operator correct the written form's arrival day")
    if not reason.strip():
        raise ConfigError("更正收件日期须说明理由 / a correction of the arrival day needs its reason (--reason)")
    if application.status != "submitted":
        raise ConfigError(f"申请 {number} 已答复，收件日期不能再更正 / application {number} is already "
                          f"{application.status}: its arrival day is no longer corrected")
    if _receipt_recorded(session, application) is None:
        raise ConfigError(f"申请 {number} 尚未登记收到书面申请日期，请由提供方用 `govshare apply receive` 登记 / no "
                          "arrival day is recorded yet: the provider records it with `govshare apply receive`")
    if received_on == (before := application.received_on):
        raise ConfigError(f"申请 {number} 登记的收件日期已是 {received_on}，无需更正 / the arrival day is already "
                          f"{received_on}")
    _receipt_day_possible(application, received_on)
    application.received_on = received_on
    application.due_on, application.due_problem = due_after(received_on, DECISION_WORKING_DAYS)
    record_event(session, actor=by.actor, action="application.receipt_correct",
                 agency_code=application.consumer.code, resource_code=application.resource.code,
                 detail={"number": number, "from": before.isoformat(), "to": received_on.isoformat(),
                         "reason": reason.strip(), "due_on": application.due_on,
                         "due_status": due_status(application.due_on)})
    return application


def apply_decision(session: Session, *, application: Application, outcome: str, approved_items: list[str] | None,
                   reasons: str, by: Principal, origin: str, unmask: bool | list[str] = False,
                   expires_at: datetime | None = None, row_filter: dict[str, Any] | None = None) -> Application:
    """Record a decision (the provider's, or the coordination office's conclusion) and grant what it approves."""
    if outcome not in OUTCOMES:
        raise ConfigError(f"decision must be one of {', '.join(OUTCOMES)}")
    if not reasons.strip():
        raise ConfigError("请填写意见及理由 / a decision always gives its reasons (意见及理由): --reason")
    if outcome == "refuse":
        approved: list[str] = []
    else:
        # No items named approves every item applied for; a partial approval, or an empty list, names none: an
        # approval of everything by omission is refused rather than granted.
        if (outcome == "partial" or approved_items is not None) and not approved_items:
            raise ConfigError("部分同意须列出同意共享的数据项（--item），或选择不予共享 / a partial approval names the "
                              "approved data items (--item COLUMN, repeatable); to approve none, refuse")
        approved = list(approved_items) if approved_items else list(application.items)
        if extra := [i for i in approved if i not in application.items]:
            raise ConfigError(f"同意的数据项 {'、'.join(extra)} 不在申请范围内 / approved item(s) {extra} were not applied for")
        if outcome == "approve" and set(approved) != set(application.items):
            outcome = "partial"
        if outcome == "partial" and set(approved) == set(application.items):
            outcome = "approve"
    if not approved and application.grant_id is not None:
        # A refusal (a dispute concluded "refuse" included) takes back what an earlier decision granted.
        earlier = get_grant(session, grant_id=application.grant_id)
        if earlier.status in LIVE:
            end_grant(session, grant=earlier, reason=f"申请 {application.number} 的意见为不予共享：{reasons}", by=by)
    application.status = OUTCOMES[outcome]
    application.approved_items, application.reasons = approved, reasons
    application.decided_at, application.decided_by = clock.now(), by.actor
    resource, taker = application.resource, application.consumer
    if approved:
        if application.kind == "use":
            grant = create_grant(session, resource=resource, agency=taker, origin=origin, by=by,
                                 columns=approved, purpose=application.purpose, unmask=unmask, expires_at=expires_at,
                                 row_filter=row_filter if row_filter is not None else application.row_filter,
                                 application_id=application.id)
        else:
            current = live_grant(session, resource=resource, agency_id=taker.id)
            if current is None:
                raise ConfigError("the consumer's grant was revoked meanwhile: nothing to extend")
            grant = create_grant(session, resource=resource, agency=taker, origin=origin, by=by,
                                 columns=current.columns, row_filter=current.row_filter,
                                 unmask=lifted_masks(current),
                                 purpose=f"{current.purpose}；对外提供或发布：{application.purpose}",
                                 external_use=True, expires_at=current.expires_at, application_id=application.id)
        application.grant_id = grant.id
    today = clock.today()
    record_event(session, actor=by.actor, action="application.decide", agency_code=taker.code,
                 resource_code=resource.code,
                 detail={"number": application.number, "outcome": application.status, "approved_items": approved,
                         "reasons": reasons, "origin": origin, "grant": application.grant_id,
                         "late": today > application.due_on if application.due_on else None})
    notify(session, kind="decision", application=application, agency_id=taker.id,
           message=f"申请 {application.number} 的意见：{label('application_statuses', application.status)}；"
                   f"理由：{reasons}")
    return application


def decide(session: Session, *, number: str, outcome: str, reasons: str, by: Principal,
           approved_items: list[str] | None = None, unmask: bool | list[str] = False,
           expires_on: date | None = None) -> Application:
    """The provider approves all or some data items, or refuses; always with reasons."""
    application = get_application(session, number=number)
    require_person(by, doing_zh="审核共享申请", doing_en="deciding an application")
    require(by, by.acts_for(application.resource.agency_id),
            zh="只有提供方的机构管理员或数据资源管理员可以审核申请",
            en="only the provider's agency or data resource administrator may decide an application")
    if application.status != "submitted":
        raise ConfigError(f"申请 {number} 已答复；需求方如有异议可申请协调处理 / application {number} is already "
                          f"{application.status}; a consumer who disagrees opens a dispute (`govshare dispute open`)")
    expires_at = new_term(expires_on) if expires_on else None
    return apply_decision(session, application=application, outcome=outcome, approved_items=approved_items,
                          reasons=reasons, by=by, origin="application", unmask=unmask, expires_at=expires_at)


def check_deadlines(session: Session, *, today: date | None = None, by: Principal) -> list[tuple[str, str]]:
    """Send due reminders and flag overdue applications; returns (number, "reminder"|"overdue") pairs.
    Run daily (`govshare apply deadlines`); running it twice sends nothing twice."""
    today = today or clock.today()
    done: list[tuple[str, str]] = []
    for application in session.scalars(select(Application).where(Application.status == "submitted")
                                       .order_by(Application.id)):
        resource = application.resource
        if application.due_on is None:
            continue  # its year's schedule is not installed: neither reminded nor overdue until it is
        if today > application.due_on:
            if application.overdue_flagged_at is None:
                application.overdue_flagged_at = clock.now()
                notify(session, kind="overdue", application=application, role="coordination_office",
                       message=f"申请 {application.number}（{resource.agency.name}，{resource.name}）已超过"
                               f"{due_text(application.due_on)}的答复期限，未作出意见")
                record_event(session, actor=by.actor, action="application.overdue",
                             agency_code=resource.agency.code, resource_code=resource.code,
                             detail={"number": application.number, "due_on": application.due_on})
                done.append((application.number, "overdue"))
        elif application.reminded_at is None and working_days_between(today, application.due_on) <= REMIND_WORKING_DAYS:
            application.reminded_at = clock.now()
            notify(session, kind="reminder", application=application, agency_id=resource.agency_id,
                   message=f"申请 {application.number} 须于{due_text(application.due_on)}前答复")
            record_event(session, actor=by.actor, action="application.reminder", agency_code=resource.agency.code,
                         resource_code=resource.code,
                         detail={"number": application.number, "due_on": application.due_on})
            done.append((application.number, "reminder"))
    return done


def inbox(session: Session, *, by: Principal) -> list[InboxMessage]:
    query = select(InboxMessage).order_by(InboxMessage.id)
    rows = list(session.scalars(query))
    if by.kind == "console":
        return rows
    return [m for m in rows if (m.agency_id is not None and m.agency_id == by.agency_id)
            or (m.role is not None and by.has(m.role))]


def grant_for(session: Session, *, application: Application):  # noqa: ANN201 - Grant | None
    return get_grant(session, grant_id=application.grant_id) if application.grant_id else None
