"""The notices sweep (更新通知投递): POST the due webhook notices, fairly between receivers.

A receiver (接收端) is a webhook origin, ``scheme://host:port``: one consumer system. The sweep

- first releases the withheld notices of subscribers that hold a live grant again, one per subscription
  covering what it missed (pipeline/notice_release.py);
- picks the due notices round-robin across subscriptions (each one's oldest first, then each one's second, ...),
  so one subscriber's backlog never fills the sweep's ``limit`` and starves the others;
- sends to different receivers at once, from a small pool of ``workers`` threads, and to one receiver one
  notice at a time, each subscription's in version order (a receiver sees v1 before v2, and the release of a
  withheld notice with its catch_up before a later version's notice);
- stops sending to a receiver for the rest of the sweep once it timed out or could not be reached: its
  remaining notices are not even claimed, so they stay ``pending`` with their attempts and retry time
  untouched (``DeliveryReport.deferred``), and the next sweep tries again. A slow receiver therefore costs the
  sweep one timeout on one worker, never a timeout per notice on the path of every other agency's notices.

Each attempt claims its notice first (see pipeline/notify.py), so the id, body and signature scheme of a
notice are the same on every attempt and no notice is sent twice by two sweeps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from core import clock
from pipeline.notice_payload import withheld_payload
from pipeline.notice_release import release_regranted
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import DatasetVersion
from registry.exchange.notice_models import Notice, NoticeEndpoint
from registry.exchange.notices import endpoint_for
from registry.seals import intact
from registry.sharing.models import Subscription
from registry.sharing.subscriptions import notice_withheld

SIGNATURE_HEADER = "X-Govshare-Signature"
TIMESTAMP_HEADER = "X-Govshare-Timestamp"
NOTICE_ID_HEADER = "X-Govshare-Notice-Id"


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # not tried: their receiver timed out earlier this sweep
    withheld: list[int] = field(default_factory=list)  # not sent: the subscriber's grant lapsed since queueing
    released: list[int] = field(default_factory=list)  # withheld, now due: the subscriber holds a live grant again
    superseded: list[int] = field(default_factory=list)  # withheld, never to be sent: a later notice covers them
    skipped: int = 0  # claimed by another sweep meanwhile

    def merge(self, other: DeliveryReport) -> None:
        for name in ("delivered", "retrying", "failed", "deferred", "withheld"):
            getattr(self, name).extend(getattr(other, name))
        self.skipped += other.skipped


@dataclass(frozen=True)
class _Policy:
    now: datetime
    max_attempts: int
    base_delay_seconds: float
    max_delay_seconds: float
    timeout_seconds: float
    lease_seconds: float


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value; receivers compute the same and compare with hmac.compare_digest."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notice_body(notice_id: int, payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed: canonical JSON, identical on every attempt of one notice."""
    return json.dumps({**payload, "notice_id": str(notice_id)}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"), default=str).encode()


def backoff(attempts: int, *, base_seconds: float, max_seconds: float) -> timedelta:
    """Delay after the n-th failed attempt: base, 2 x base, 4 x base, ... capped."""
    return timedelta(seconds=min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))


def _receiver(url: str | None) -> str:
    if url is None:
        return ""  # the webhook was removed: each notice only goes back to the pull feed
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _due_by_receiver(*, now: datetime, limit: int) -> list[list[tuple[int, int]]]:
    """(notice id, attempts seen) of the due notices, one list per receiver, each subscription's in version
    order."""
    # By version, not id: a withheld notice released is a new notice (pipeline/notice_release.py), whose id
    # comes after that of a later version queued under the new grant and not sent yet; its catch_up goes first.
    rank = func.row_number().over(partition_by=Notice.subscription_id,
                                  order_by=(Notice.version_number, Notice.id)).label("rank")
    due = (select(Notice.id, Notice.attempts, Notice.subscription_id, rank)
           .where(Notice.status == "pending", Notice.next_attempt_at <= now).subquery())
    with session_scope() as session:
        rows = list(session.execute(select(due.c.id, due.c.attempts, due.c.subscription_id)
                                    .order_by(due.c.rank, due.c.id).limit(limit)))
        urls = dict(session.execute(select(NoticeEndpoint.subscription_id, NoticeEndpoint.url).where(
            NoticeEndpoint.subscription_id.in_({row.subscription_id for row in rows}))).all()) if rows else {}
    queues: dict[str, list[tuple[int, int]]] = {}
    for notice_id, attempts, subscription_id in rows:  # round-robin order: each subscription's in version order
        queues.setdefault(_receiver(urls.get(subscription_id)), []).append((notice_id, attempts))
    return list(queues.values())


def deliver_pending(*, now: datetime | None = None, max_attempts: int = 8, base_delay_seconds: float = 30,
                    max_delay_seconds: float = 3600, timeout_seconds: float = 10, lease_seconds: float = 300,
                    limit: int = 200, workers: int = 4) -> DeliveryReport:
    """Send every webhook notice that is due at `now`; see the module docstring for the guarantees."""
    policy = _Policy(now=clock.as_utc(now or clock.now()), max_attempts=max_attempts,
                     base_delay_seconds=base_delay_seconds, max_delay_seconds=max_delay_seconds,
                     timeout_seconds=timeout_seconds, lease_seconds=lease_seconds)
    # First, so a subscriber granted again is told what it missed before (in notice order) anything newer.
    released = release_regranted(now=policy.now)
    queues = _due_by_receiver(now=policy.now, limit=limit)
    report = DeliveryReport(released=released.released, superseded=released.superseded)
    if not queues:
        return report
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(queues))),
                            thread_name_prefix="govshare-notices") as pool:
        for part in pool.map(lambda queue: _deliver_queue(queue, policy=policy), queues):
            report.merge(part)
    return report


def _deliver_queue(queue: list[tuple[int, int]], *, policy: _Policy) -> DeliveryReport:
    """One receiver's due notices, in order; the rest are left alone once the receiver is unreachable."""
    report = DeliveryReport()
    for index, (notice_id, seen_attempts) in enumerate(queue):
        if not _attempt(notice_id, seen_attempts=seen_attempts, policy=policy, report=report):
            report.deferred.extend(later for later, _ in queue[index + 1:])
            break
    return report


def _attempt(notice_id: int, *, seen_attempts: int, policy: _Policy, report: DeliveryReport) -> bool:
    """Claim, send and settle one notice; False when its receiver timed out or could not be reached."""
    import requests  # only a sweep needs it

    now = policy.now
    with session_scope() as session:
        claimed = session.execute(
            update(Notice).where(Notice.id == notice_id, Notice.status == "pending", Notice.attempts == seen_attempts)
            .values(attempts=seen_attempts + 1, next_attempt_at=now + timedelta(seconds=policy.lease_seconds)))
        if claimed.rowcount != 1:
            report.skipped += 1
            return True
        notice = session.get(Notice, notice_id)
        if _withheld(session, notice, seen_attempts=seen_attempts, now=now):
            report.withheld.append(notice_id)
            return True
        target = endpoint_for(session, subscription_id=notice.subscription_id)
        payload = dict(notice.payload)
        if target is None:  # the endpoint was removed: the notice stays readable in the pull feed
            notice.status = "feed"
            return True
    attempt = seen_attempts + 1
    url, secret = target
    body = notice_body(notice_id, payload)
    timestamp = str(int(clock.now().timestamp()))  # the real clock, as the receiver compares it with its own
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "govshare-notices/1",
               NOTICE_ID_HEADER: str(notice_id), TIMESTAMP_HEADER: timestamp,
               SIGNATURE_HEADER: sign(secret=secret, timestamp=timestamp, body=body),
               "X-Govshare-Attempt": str(attempt)}
    error, reachable = None, True
    try:
        answer = requests.post(url, data=body, headers=headers, allow_redirects=False,
                               timeout=(policy.timeout_seconds, policy.timeout_seconds))
        if not 200 <= answer.status_code < 300:
            error = f"HTTP {answer.status_code}: {answer.text[:200]}"
    except (requests.Timeout, requests.ConnectionError) as exc:
        error, reachable = f"{type(exc).__name__}: {exc}"[:500], False
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    _settle(notice_id, attempt=attempt, error=error, policy=policy, report=report)
    return reachable


def _withheld(session, notice: Notice, *, seen_attempts: int, now: datetime) -> bool:  # noqa: ANN001 - Session
    """A notice queued under a grant that has lapsed since (expired, revoked), or of a resource whose row was
    edited outside the hub since, is not sent: held (the claim undone, no attempt was made)."""
    subscription = session.get(Subscription, notice.subscription_id)
    reason = notice_withheld(session, subscription=subscription, now=now)
    if reason is None:
        return False
    hold(session, notice=notice, reason=reason, attempts=seen_attempts, actor="pipeline")
    return True


def hold(session, *, notice: Notice, reason: tuple[str, str], attempts: int, actor: str) -> bool:  # noqa: ANN001
    """Mark a notice not yet handed over withheld with the reason (zh, en), audited: its body is replaced by what a
    withheld notice says (the version exists, and why nothing more), so neither the webhook nor the pull feed
    carries it; the sweep releases it, rebuilt from the version, once nothing withholds it any more.

    One conditional UPDATE: only while the notice is still as the caller read it (status and attempts). A sweep
    may deliver or claim it between the caller's read and this hold; written back from the loaded object, the
    hold overwrote `delivered` with `withheld`, and the sweep later released the notice a second time. False
    (``notice`` refreshed to what it is) when it changed meanwhile."""
    version = session.get(DatasetVersion, notice.version_id)
    subscription = session.get(Subscription, notice.subscription_id)
    held = session.execute(
        update(Notice).where(Notice.id == notice.id, Notice.status.in_(("pending", "feed")),
                             Notice.attempts == notice.attempts)
        .values(status="withheld", attempts=attempts, last_error=reason[0], next_attempt_at=None,
                payload=withheld_payload(version, reason)).execution_options(synchronize_session=False))
    session.refresh(notice)
    if held.rowcount != 1:
        return False
    record_event(session, actor=actor, action="notice.withheld", agency_code=subscription.agency.code,
                 resource_code=notice.resource_code, result="denied",
                 detail={"notice_id": notice.id, "version": notice.version_number, "reason": reason[1]})
    return True


def hold_edited(session, *, notices: list[Notice], actor: str) -> None:  # noqa: ANN001 - Session
    """Hold the notices of a feed page not handed over yet whose resource row was edited outside the hub since
    they were queued (registry/seals.py), before the page is shown to `actor`; a notice a sweep delivered or
    claimed since the page was read is left to the sweep (hold)."""
    for notice in notices:
        subscription = session.get(Subscription, notice.subscription_id)
        if notice.status in ("pending", "feed") and not intact(subscription.resource):
            reason = notice_withheld(session, subscription=subscription, now=clock.now())
            hold(session, notice=notice, reason=reason, attempts=notice.attempts, actor=actor)


def _settle(notice_id: int, *, attempt: int, error: str | None, policy: _Policy, report: DeliveryReport) -> None:
    now = policy.now
    with session_scope() as session:
        notice = session.get(Notice, notice_id)
        subscription = session.get(Subscription, notice.subscription_id)
        detail = {"notice_id": notice_id, "version": notice.version_number, "attempts": attempt}
        if error is not None and notice.status != "pending":
            return  # held while in flight (hold) and not received: it stays held, to be released
        if error is None:
            notice.status, notice.delivered_at, notice.last_error, notice.next_attempt_at = "delivered", now, None, None
            record_event(session, actor="pipeline", action="notice.delivered", agency_code=subscription.agency.code,
                         resource_code=notice.resource_code, detail=detail)
            report.delivered.append(notice_id)
        elif attempt >= policy.max_attempts:
            notice.status, notice.last_error, notice.next_attempt_at = "failed", error, None
            record_event(session, actor="pipeline", action="notice.failed", agency_code=subscription.agency.code,
                         resource_code=notice.resource_code, result="failed", detail={**detail, "error": error})
            report.failed.append(notice_id)
        else:
            notice.last_error, notice.next_attempt_at = error, now + backoff(
                attempt, base_seconds=policy.base_delay_seconds, max_seconds=policy.max_delay_seconds)
            report.retrying.append(notice_id)
