"""Withheld notices released once their subscriber holds a live grant again (补发更新通知).

A subscriber of a resource shared on application (有条件共享) whose grant lapsed has its notices recorded
``withheld`` (registry/sharing/subscriptions.py: notice_withheld). Left so, a consumer that is granted again
hears only of the next version and never learns that versions came out meanwhile, so its copy silently skips
them. The notices sweep therefore starts here: for each subscription with withheld notices whose subscriber
now passes the same check a notice is sent under,

- the newest withheld notice is released (``pending`` for a webhook, ``feed`` otherwise), its body rebuilt
  under the grant held now and carrying ``catch_up``: the versions missed and the changes since the last
  notice the subscriber received (pipeline/notice_payload.py);
- the older withheld ones are marked ``superseded`` by it, never sent and never deleted (the audit trail and
  the feed keep them, with the reason);
- withheld notices older than a notice already handed over (delivered, in the feed, given up) are superseded
  by that one instead: the consumer already heard of a later version, and an older notice arriving after it
  would read as going back in time.

The sweep, not the grant, triggers this: a grant becomes live in several places (an approved application, a
concluded dispute, a secrecy agreement recorded later, a subscription) and all of them are in the registry,
which may not build a notice (pipeline/ is above it); at delivery time one check covers them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.notice_payload import catch_up_payload
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import DatasetVersion
from registry.exchange.notice_models import Notice, NoticeEndpoint
from registry.sharing.models import Subscription
from registry.sharing.subscriptions import notice_withheld

HANDED_OVER = ("delivered", "feed", "failed")  # the consumer heard (or the hub gave up telling it) of the version
RECEIVED = ("delivered", "feed")


@dataclass
class Released:
    released: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)


def release_regranted(*, now: datetime) -> Released:
    """Release the withheld notices of every subscriber that holds a live grant again; see the module docstring."""
    with session_scope() as session:
        subscription_ids = list(session.scalars(
            select(Notice.subscription_id).where(Notice.status == "withheld").distinct()))
    result = Released()
    for subscription_id in sorted(subscription_ids):
        with session_scope() as session:  # one subscriber per transaction: a failure undoes no one else's
            _release(session, subscription_id=subscription_id, now=now, result=result)
    return result


def _release(session: Session, *, subscription_id: int, now: datetime, result: Released) -> None:
    subscription = session.get(Subscription, subscription_id)
    if subscription.status != "active" or notice_withheld(session, subscription=subscription, now=now) is not None:
        return  # still no live grant: the notices stay withheld with their reason
    notices = list(session.scalars(select(Notice).where(Notice.subscription_id == subscription_id)
                                   .order_by(Notice.id)))
    last_handed = max((n.id for n in notices if n.status in HANDED_OVER), default=0)
    withheld = [n for n in notices if n.status == "withheld"]
    stale = [n for n in withheld if n.id < last_handed]
    fresh = [n for n in withheld if n.id > last_handed]
    if fresh:
        newest = fresh[-1]
        # Only a notice it received tells the consumer where its copy stands; a pending one may still fail.
        since = max((n.version_number for n in notices if n.status in RECEIVED and n.id < fresh[0].id), default=None)
        webhook = session.get(NoticeEndpoint, subscription_id) is not None
        version = session.get(DatasetVersion, newest.version_id)
        payload = catch_up_payload(session, version, subscription, since=since,
                                   missed=[n.version_number for n in fresh])
        # Claimed like a delivery attempt: a second sweep running now finds it no longer withheld and leaves it.
        # Attempts start again at 0: a new body gets its own retry budget (earlier tries carried the old one).
        claimed = session.execute(
            update(Notice).where(Notice.id == newest.id, Notice.status == "withheld")
            .values(status="pending" if webhook else "feed", payload=payload, last_error=None, attempts=0,
                    next_attempt_at=now if webhook else None))
        if claimed.rowcount != 1:
            session.rollback()
            return
        record_event(session, actor="pipeline", action="notice.released", agency_code=subscription.agency.code,
                     resource_code=newest.resource_code,
                     detail={"notice_id": newest.id, "version": newest.version_number, "since_version": since,
                             "withheld_versions": payload["catch_up"]["withheld_versions"],
                             "superseded": [n.id for n in fresh[:-1]]})
        result.released.append(newest.id)
        _supersede(session, fresh[:-1], by=newest, subscription=subscription, result=result)
    if stale:
        by = next(n for n in notices if n.id == last_handed)
        _supersede(session, stale, by=by, subscription=subscription, result=result)


def _supersede(session: Session, notices: list[Notice], *, by: Notice, subscription: Subscription,
               result: Released) -> None:
    for notice in notices:
        reason = f"已由第{by.version_number}版的更新通知（编号{by.id}）代替，不再单独发送"
        marked = session.execute(update(Notice).where(Notice.id == notice.id, Notice.status == "withheld")
                                 .values(status="superseded", last_error=reason, next_attempt_at=None))
        if marked.rowcount != 1:
            continue  # another sweep marked it meanwhile
        record_event(session, actor="pipeline", action="notice.superseded", agency_code=subscription.agency.code,
                     resource_code=notice.resource_code,
                     detail={"notice_id": notice.id, "version": notice.version_number, "superseded_by": by.id,
                             "superseded_by_version": by.version_number})
        result.superseded.append(notice.id)
