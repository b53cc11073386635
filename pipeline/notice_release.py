"""Withheld notices released once their subscriber holds a live grant again (补发更新通知).

A subscriber of a resource shared on application (有条件共享) whose grant lapsed has its notices recorded
``withheld`` (registry/sharing/subscriptions.py: notice_withheld). Left so, a consumer that is granted again
hears only of the next version and never learns that versions came out meanwhile, so its copy silently skips
them. The notices sweep therefore starts here: for each subscription with withheld notices whose subscriber
now passes the same check a notice is sent under,

- the newest withheld notice is released: a new notice, the release entry (``releases`` names the withheld
  one), ``pending`` for a webhook and ``feed`` otherwise, its body built under the grant held now and carrying
  ``catch_up``: the versions missed and the changes since the last notice the subscriber received
  (pipeline/notice_payload.py). The withheld notice is marked ``released``, its reason naming the entry;
- the older withheld ones are marked ``superseded`` by the release entry, never sent and never deleted (the
  audit trail and the feed keep them, with the reason);
- withheld notices of versions up to one already handed over (delivered, in the feed, given up) are superseded
  by that one instead: the consumer already heard of a later version, and an older notice arriving after it
  would read as going back in time.

Why a new entry rather than the withheld notice changed in place: the pull feed's cursor is the notice id
(registry/exchange/notices.py), and a consumer reading the feed may have read the withheld entry, with its
reason, and saved a cursor past it. Changed in place, the release kept that place, so such a consumer never
saw it nor its ``catch_up``. Moving the notice to a new place (a feed sequence reassigned at release) would
show one id twice, once withheld and once released, to a consumer that processes each id once (as webhook
receivers are told to, ``X-Govshare-Notice-Id``). A new entry gets a new id, so it comes after every entry
the consumer has read, the cursor only moves on, no id is ever shown for two different things, and the entry
says which withheld one it answers (``releases`` in the feed, ``catch_up.releases`` in the body). Each feed
entry is still shown once; a withheld entry read again from an older cursor shows what became of it
(``released`` or ``superseded``, with the entry that covers it).

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
from registry.exchange.notices import lock_feed_order
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
    # Before the first write: the release entry's id then comes after every notice already committed, the audit
    # lock comes second as everywhere, and two sweeps releasing for one subscriber run one after the other.
    lock_feed_order(session)
    notices = list(session.scalars(select(Notice).where(Notice.subscription_id == subscription_id)
                                   .order_by(Notice.id)))
    # By version, not id: a release entry's id comes after notices of later versions queued before the sweep.
    latest_handed = max((n for n in notices if n.status in HANDED_OVER), key=lambda n: (n.version_number, n.id),
                        default=None)
    heard_up_to = latest_handed.version_number if latest_handed else 0
    withheld = sorted((n for n in notices if n.status == "withheld"), key=lambda n: n.version_number)
    stale = [n for n in withheld if n.version_number <= heard_up_to]
    fresh = [n for n in withheld if n.version_number > heard_up_to]
    if fresh:
        entry = _release_newest(session, fresh, notices=notices, subscription=subscription, now=now)
        if entry is None:
            session.rollback()  # another sweep released it meanwhile
            return
        result.released.append(entry.id)
        _supersede(session, fresh[:-1], by=entry, subscription=subscription, result=result)
    if stale:
        _supersede(session, stale, by=latest_handed, subscription=subscription, result=result)


def _release_newest(session: Session, fresh: list[Notice], *, notices: list[Notice], subscription: Subscription,
                    now: datetime) -> Notice | None:
    """Mark the newest withheld notice ``released`` and append its release entry; None when another sweep
    claimed it first (the conditional UPDATE, as a delivery attempt claims a notice)."""
    newest = fresh[-1]
    claimed = session.execute(update(Notice).where(Notice.id == newest.id, Notice.status == "withheld")
                              .values(status="released", next_attempt_at=None))
    if claimed.rowcount != 1:
        return None
    # Only a notice it received tells the consumer where its copy stands; a pending one may still fail.
    since = max((n.version_number for n in notices
                 if n.status in RECEIVED and n.version_number < fresh[0].version_number), default=None)
    webhook = session.get(NoticeEndpoint, subscription.id) is not None
    version = session.get(DatasetVersion, newest.version_id)
    payload = catch_up_payload(session, version, subscription, since=since,
                               missed=[n.version_number for n in fresh], releases=newest.id)
    entry = Notice(subscription_id=subscription.id, version_id=newest.version_id, resource_id=newest.resource_id,
                   agency_id=newest.agency_id, resource_code=newest.resource_code,
                   version_number=newest.version_number, payload=payload, status="pending" if webhook else "feed",
                   attempts=0, next_attempt_at=now if webhook else None, created_at=now, releases_id=newest.id)
    session.add(entry)
    session.flush()  # its id: the feed place the release takes, and the name the withheld one gets
    session.execute(update(Notice).where(Notice.id == newest.id).values(
        last_error=f"共享授权恢复后已补发为更新通知（编号{entry.id}），附 catch_up（未通知的版本及其变更）"))
    record_event(session, actor="pipeline", action="notice.released", agency_code=subscription.agency.code,
                 resource_code=newest.resource_code,
                 detail={"notice_id": entry.id, "releases": newest.id, "version": newest.version_number,
                         "since_version": since, "withheld_versions": payload["catch_up"]["withheld_versions"],
                         "superseded": [n.id for n in fresh[:-1]]})
    return entry


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
