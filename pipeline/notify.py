"""Update notices after a publish (article 16: 通知该共享数据资源的获取方): queue once, deliver signed webhooks.

Two steps, both safe to run any number of times:

1. ``queue_notices(resource_code=, version_number=)`` inserts one row per active subscriber and version with
   INSERT ... ON CONFLICT DO NOTHING on the unique (subscription_id, version_id) pair of the versions' own
   notices, so a retried task, a re-run or a restart never queues a second notice (the one other row a pair may
   have is the release of a withheld notice, pipeline/notice_release.py). It first takes the pull feed's order
   lock (registry/exchange/notices.py), so the ids commit in order and no consumer's cursor passes one.
2. ``deliver_pending(now=)`` (pipeline/notice_delivery.py) POSTs the due webhook notices: receivers in
   parallel (a small pool), each receiver's notices in order and one at a time, and a receiver that timed out
   or could not be reached is left for the next sweep, so it never holds up another agency's notices. Each
   attempt first *claims* the notice (a conditional UPDATE that also pushes its next attempt out by a lease), so
   two sweeps running at once do not both send it; a delivered notice is never selected again. If the process
   dies after the receiver accepted a notice but before it was marked delivered, the notice is sent again when
   the lease ends: receivers must dedupe on the ``X-Govshare-Notice-Id`` header (the same id, body and
   signature scheme on every attempt).

What a receiver gets (``POST <url>``, JSON body, UTF-8)::

    X-Govshare-Notice-Id:  <notice id>            idempotency key: process each id once
    X-Govshare-Timestamp:  <unix seconds>         when this attempt was signed; refuse if far from your clock
    X-Govshare-Signature:  sha256=<hex>           HMAC-SHA256(secret, "<timestamp>." + raw body)
    X-Govshare-Attempt:    <n>

The timestamp is inside the signed text, so an attacker replaying an old request cannot refresh it. A 2xx
answer means delivered; anything else (or no answer) is retried with exponential backoff, and after
``max_attempts`` the notice is marked ``failed``, written to the audit log and shown by
``govshare notices list --status failed``. Consumers that cannot receive webhooks read the same notices from
``GET /api/v1/notices?after=<cursor>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from core import clock
from core.errors import NotFound
from pipeline.changes import no_change
from pipeline.notice_payload import version_payload, withheld_payload
# The sweep lives in pipeline/notice_delivery.py; its names stay importable from here.
from pipeline.notice_delivery import (  # noqa: F401 - re-exported
    NOTICE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, DeliveryReport, backoff, deliver_pending, notice_body, sign)
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import DatasetVersion
from registry.exchange.notice_models import OWN_NOTICE, Notice, NoticeEndpoint
from registry.exchange.notices import lock_feed_order
from registry.sharing.models import Subscription
from registry.catalog.resources import edited_refusal, get_resource
from registry.seals import intact
from registry.sharing.subscriptions import notice_withheld, subscribers


def _unchanged(version: DatasetVersion) -> bool:
    """A version whose change set is known and empty: same keys, same values, same columns."""
    return no_change((version.manifest or {}).get("changes") or {})


def _insert_ignoring_duplicates(session, rows: list[dict[str, Any]]) -> int:  # noqa: ANN001 - Session
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # The conflict target is the partial unique index of the versions' own notices (a release entry is not one).
    statement = insert(Notice).values(rows).on_conflict_do_nothing(index_elements=["subscription_id", "version_id"],
                                                                   index_where=OWN_NOTICE)
    return session.execute(statement).rowcount or 0


def queue_notices(*, resource_code: str, version_number: int) -> int:
    """One notice per active subscriber of the version; returns how many were new (0 when run again)."""
    with session_scope() as session:
        # First, so the ids come after every notice already committed and the audit lock comes second
        # (registry/exchange/notices.py: the pull feed's order).
        lock_feed_order(session)
        resource = get_resource(session, code=resource_code)
        version = session.scalar(select(DatasetVersion).where(DatasetVersion.resource_id == resource.id,
                                                              DatasetVersion.number == version_number))
        if version is None:
            raise NotFound(f"{resource_code} has no version {version_number}; `govshare versions {resource_code}`")
        if _unchanged(version):
            return 0  # nothing was updated (article 16 notifies updates): no notice
        if not intact(resource):  # its sharing type or status set outside the hub: not believed, nobody told
            record_event(session, actor="pipeline", action="notice.queue", resource_code=resource.code,
                         result="denied", detail={"version": version.number, "reason": edited_refusal()[1]})
            return 0
        now = clock.now()
        rows = [_row(session, version, subscription, now) for subscription in subscribers(session, resource=resource)]
        created = _insert_ignoring_duplicates(session, rows)
        if created:
            withheld = sum(1 for row in rows if row["status"] == "withheld")
            record_event(session, actor="pipeline", action="notice.queue", resource_code=resource.code,
                         detail={"version": version.number, "notices": created, "withheld": withheld})
        return created


def _row(session, version: DatasetVersion, subscription: Subscription, now: datetime) -> dict[str, Any]:  # noqa: ANN001
    row = {"subscription_id": subscription.id, "version_id": version.id, "resource_id": version.resource_id,
           "agency_id": subscription.agency_id, "resource_code": version.resource.code,
           "version_number": version.number, "attempts": 0, "created_at": now}
    reason = notice_withheld(session, subscription=subscription, now=now)
    if reason is not None:  # recorded, so the subscriber's feed says why this version was never announced
        return {**row, "payload": withheld_payload(version, reason), "status": "withheld", "last_error": reason[0],
                "next_attempt_at": None}
    webhook = session.get(NoticeEndpoint, subscription.id) is not None
    return {**row, "payload": version_payload(session, version, subscription),
            "status": "pending" if webhook else "feed", "last_error": None, "next_attempt_at": now if webhook else None}


MISSED_DAYS = 7  # how far back the sweep looks for versions whose notices were never queued


def queue_missed(*, now: datetime | None = None, days: int = MISSED_DAYS) -> int:
    """Queue the notices a publish's follow-up never queued (its process killed between the commit and the
    notices, or the notices step failed): for every version of the last ``days``, one per subscriber that was
    active when it was published and has none. The notices sweep runs it first; as idempotent as
    :func:`queue_notices` (the same unique pair), so a follow-up running meanwhile queues nothing twice."""
    now = clock.as_utc(now or clock.now())
    with session_scope() as session:
        lock_feed_order(session)  # before the first insert and the first audit event, as queue_notices
        pairs = session.execute(
            select(DatasetVersion, Subscription)
            .join(Subscription, Subscription.resource_id == DatasetVersion.resource_id)
            .outerjoin(Notice, (Notice.subscription_id == Subscription.id) & (Notice.version_id == DatasetVersion.id))
            .where(DatasetVersion.created_at >= now - timedelta(days=days), Subscription.status == "active",
                   Subscription.created_at <= DatasetVersion.created_at, Notice.id.is_(None))
            .order_by(DatasetVersion.id, Subscription.id)).all()
        by_version: dict[int, list[dict[str, Any]]] = {}
        versions = {}
        for version, subscription in pairs:
            # an edited resource's versions wait (queue_notices recorded why) until its row is put back
            if not _unchanged(version) and intact(version.resource):
                versions[version.id] = version
                by_version.setdefault(version.id, []).append(_row(session, version, subscription, now))
        queued = 0
        for version_id, rows in by_version.items():
            created = _insert_ignoring_duplicates(session, rows)
            if created:
                version = versions[version_id]
                record_event(session, actor="pipeline", action="notice.queue", resource_code=version.resource.code,
                             detail={"version": version.number, "notices": created, "missed": True})
            queued += created
        return queued


def notify_published(*, resource_code: str, version_number: int, now: datetime | None = None) -> dict[str, Any]:
    """The DAG's notify task: queue this version's notices, then send whatever is due (this one included)."""
    queued = queue_notices(resource_code=resource_code, version_number=version_number)
    report = deliver_pending(now=now)
    return {"queued": queued, "delivered": len(report.delivered), "retrying": len(report.retrying),
            "failed": len(report.failed)}
