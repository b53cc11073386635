"""The catalogue's statutory clocks (articles 10 and 16).

- Update obligation (更新义务): when a published entry's elements change, or its shared data resource changes
  (e.g. a sync detects a schema change at the source), the catalogue must be updated within 2 working days; a
  registered or draft entry has none (nothing published to keep up; it is current when it is published). An
  obligation opens on that day (Beijing time), is due 2 working days later (core/calendar/workdays.py: counted
  strictly after the day; a year without a known calendar raises, never guesses) and closes when a revision
  of the entry is published, or when the entry is withdrawn (撤销发布: nothing is left to update). One open obligation per entry: a further change while one is open keeps the
  earlier (stricter) due date.
- Yearly full maintenance (全面维护): every published entry must be reconfirmed at least once per calendar
  year (`govshare catalog reconfirm`); a publication after element-by-element review counts as well. An
  entry whose last maintenance was before last year has missed last year's and is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.people.agencies import get_agency
from registry.audit.log import record_event
from registry.catalog.models import CatalogRevision, Reconfirmation, Resource, UpdateObligation
from core.calendar.due_days import UPDATE_WORKING_DAYS, due_after
from registry.supervision.due_days import SCHEDULER, fill_pending
from registry.people.persons import act_day, person_actor, require_designated
from schemas.presentation import labels

__all__ = [
    "OBLIGATION_KINDS",
    "UPDATE_WORKING_DAYS",
    "OverdueReconfirmation",
    "close_obligations",
    "list_obligations",
    "open_update_obligation",
    "overdue_obligations",
    "overdue_reconfirmations",
    "reconfirm_entry",
    "unscheduled_obligations",
]

OBLIGATION_KINDS = labels("obligation_kinds")


def _resource(session: Session, code: str) -> Resource:
    resource = session.scalar(select(Resource).where(Resource.code == code))
    if resource is None:
        raise NotFound(f"没有目录条目 {code!r} / no catalogue entry {code!r}")
    return resource


def open_update_obligation(session: Session, *, resource_code: str, reason: str, actor: str, kind: str = "data",
                           opened_on: date | None = None) -> UpdateObligation:
    """Open (or return the already open) obligation to update the entry within 2 working days."""
    if kind not in OBLIGATION_KINDS:
        raise ConfigError(f"obligation kind {kind!r} must be one of {', '.join(OBLIGATION_KINDS)}")
    resource = _resource(session, resource_code)
    existing = session.scalar(select(UpdateObligation).where(
        UpdateObligation.resource_id == resource.id, UpdateObligation.closed_on.is_(None)))
    if existing is not None:
        if existing.due_on is None:  # its year's schedule may have been installed since
            existing.due_on, existing.due_problem = due_after(existing.opened_on, UPDATE_WORKING_DAYS)
        return existing
    day = opened_on or clock.today()
    due, problem = due_after(day, UPDATE_WORKING_DAYS)
    obligation = UpdateObligation(resource_id=resource.id, kind=kind, reason=reason, opened_on=day, due_on=due,
                                  due_problem=problem, opened_by=actor)
    session.add(obligation)
    session.flush()
    record_event(session, actor=actor, action="catalog.obligation.open", agency_code=resource.agency.code,
                 resource_code=resource.code, result="ok" if due else "calendar_missing",
                 detail={"kind": kind, "reason": reason, "opened_on": day, "due_on": due, "problem": problem})
    return obligation


def unscheduled_obligations(session: Session, *, agency: str | None = None) -> list[UpdateObligation]:
    """Open obligations whose due day cannot be computed yet: an operator must install the year's schedule.
    Due days whose schedule has arrived meanwhile are filled in first (and audited)."""
    fill_pending(session, actor=SCHEDULER)
    query = select(UpdateObligation).join(Resource).where(
        UpdateObligation.due_on.is_(None), UpdateObligation.closed_on.is_(None)).order_by(Resource.code)
    if agency:
        query = query.where(Resource.agency_id == get_agency(session, ref=agency).id)
    return list(session.scalars(query))


def close_obligations(session: Session, *, resource: Resource, revision: CatalogRevision | None, on: date,
                      actor: str) -> list[UpdateObligation]:
    """Close every open obligation of the entry: `revision` was just published on day `on`, or (None) the entry
    was withdrawn from the catalogue that day, which is the update too: nothing of it is left to bring up to date."""
    closed = list(session.scalars(select(UpdateObligation).where(
        UpdateObligation.resource_id == resource.id, UpdateObligation.closed_on.is_(None))))
    for obligation in closed:
        obligation.closed_on, obligation.closed_by_revision_id = on, revision.id if revision else None
        record_event(session, actor=actor, action="catalog.obligation.close", agency_code=resource.agency.code,
                     resource_code=resource.code,
                     detail={"due_on": obligation.due_on, "closed_on": on,
                             "late": on > obligation.due_on if obligation.due_on else None,
                             "revision": revision.number if revision else None, "withdrawn": revision is None})
    return closed


def list_obligations(session: Session, *, agency: str | None = None, open_only: bool = True) -> list[UpdateObligation]:
    query = select(UpdateObligation).join(Resource).order_by(UpdateObligation.due_on, Resource.code)
    if open_only:
        query = query.where(UpdateObligation.closed_on.is_(None))
    if agency:
        query = query.where(Resource.agency_id == get_agency(session, ref=agency).id)
    return list(session.scalars(query))


def overdue_obligations(session: Session, *, today: date | None = None,
                        agency: str | None = None) -> list[UpdateObligation]:
    """Open obligations whose due day has passed (the due day itself is still in time)."""
    today = today or clock.today()
    fill_pending(session, actor=SCHEDULER)
    return [o for o in list_obligations(session, agency=agency) if o.due_on is not None and o.due_on < today]


def reconfirm_entry(session: Session, *, code: str, account: str, on: date | None = None,
                    note: str = "") -> Reconfirmation:
    """Record the yearly full maintenance of a published entry by a person designated by its agency."""
    resource = _resource(session, code)
    day = act_day(on)
    require_designated(session, account=account, agency_id=resource.agency_id,
                       roles=("cataloguer", "reviewer", "administrator"), on=day)
    published = session.scalar(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.status == "published"))
    if published is None:
        raise ConfigError(f"目录条目 {code} 尚未发布，无需全面维护；请先提交审核 / the entry is not published yet")
    published_on = session.scalar(select(func.min(Reconfirmation.confirmed_on)).where(
        Reconfirmation.revision_id == published.id))
    if published_on is not None and day < published_on:
        raise ConfigError(f"确认日期 {day} 早于目录条目 {code} 现行版本（第{published.number}版）的发布日 {published_on}"
                          f" / a reconfirmation cannot be dated before the published revision ({published_on})")
    pending = session.scalar(select(UpdateObligation).where(
        UpdateObligation.resource_id == resource.id, UpdateObligation.closed_on.is_(None)))
    if pending is not None:
        raise ConfigError(f"目录条目 {code} 有未完成的更新（{pending.reason}，{pending.due_on} 到期），发布更新后才能确认"
                          f" / an update is pending (due {pending.due_on}): publish it before reconfirming")
    confirmation = Reconfirmation(resource_id=resource.id, revision_id=published.id, confirmed_on=day,
                                  confirmed_by=account, note=note)
    session.add(confirmation)
    session.flush()
    record_event(session, actor=person_actor(account), action="catalog.reconfirm", agency_code=resource.agency.code,
                 resource_code=code, detail={"by": account, "on": day, "revision": published.number, "note": note})
    return confirmation


@dataclass(frozen=True)
class OverdueReconfirmation:
    resource: Resource
    last_maintained: date
    missed_year: int

    @property
    def due_on(self) -> date:
        return date(self.missed_year, 12, 31)


def overdue_reconfirmations(session: Session, *, today: date | None = None,
                            agency: str | None = None) -> list[OverdueReconfirmation]:
    """Published entries with a calendar year before this one in which they were not fully maintained."""
    today = today or clock.today()
    last = (select(Reconfirmation.resource_id, func.max(Reconfirmation.confirmed_on).label("last"))
            .group_by(Reconfirmation.resource_id).subquery())
    query = (select(Resource, last.c.last).join(last, last.c.resource_id == Resource.id)
             .where(Resource.catalog_status == "published").order_by(Resource.code))
    if agency:
        query = query.where(Resource.agency_id == get_agency(session, ref=agency).id)
    return [OverdueReconfirmation(resource, last_day, last_day.year + 1)
            for resource, last_day in session.execute(query) if last_day.year < today.year - 1]
