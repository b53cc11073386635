"""Update notices (更新通知, article 16): webhook endpoints per subscription, and reading notices back.

Queueing and delivery live in pipeline/notify.py; this module holds the registry side every channel uses
(the CLI, the API's pull feed, the delivery sweep).

The pull feed's order (拉取游标的顺序). A consumer without a webhook reads ``GET /api/v1/notices?after=ID`` and
saves the last id it got as its cursor, so an entry that becomes visible *below* a cursor already saved is never
read by that consumer. On PostgreSQL the ids come from a sequence, drawn at INSERT and visible at COMMIT, and
transactions commit in any order: A draws 10, B draws 11 and commits first, a reader sees 11 and saves it,
A commits 10 behind the cursor, and that notice is lost to the consumer for good. So every transaction that
inserts notices first takes one transaction-scoped advisory lock (:func:`lock_feed_order`, held to COMMIT or
ROLLBACK): ids are drawn and committed one inserting transaction after another, and a reader that sees an id
sees every smaller one. Notices are inserted a few per publish, by post-publish queueing, the sweep's queueing of
missed versions and the release of withheld notices (pipeline/notify.py, pipeline/notice_release.py), so the
serialisation costs little. Not taken: the feed answering only ids below the oldest insert still in flight
(an xid column compared with ``pg_snapshot_xmin``), which keeps writers parallel but adds a column, a
migration and a wraparound-aware comparison to every read, for writers that are few and short. SQLite needs no
lock: it has one writer at a time, whose write lock is taken by the INSERT and held to COMMIT.

Lock order: a transaction that takes this lock takes it before its first write and before it records any audit
event; the audit chain's lock (registry/audit/log.py) always comes second, never the other way round, so two
publishes' notices cannot deadlock on the two locks. No transaction that holds the audit lock waits for this one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import clock
from core.crypto import decrypt, encrypt
from core.errors import ConfigError, NotFound
from core.settings import get_settings
from registry.audit.log import record_event
from registry.catalog.resources import get_resource
from registry.exchange.notice_models import Notice, NoticeEndpoint
from registry.people.agencies import get_agency
from registry.sharing.models import Subscription

FEED_PAGE_MAX = 500
# The feed-order lock's key: beside the audit chain's 7310001, so both are found in pg_locks by their prefix.
FEED_ORDER_LOCK = 7310002
WITHHELD_OR_COVERED = ("withheld", "superseded", "released")  # never sent as themselves; last_error says why


@dataclass
class EndpointSet:
    subscription_id: int
    url: str
    secret: str  # shown once to the operator; only its encrypted form is stored


def find_subscription(session: Session, *, subscription_id: int | None = None, resource_code: str | None = None,
                      agency: str | None = None) -> Subscription:
    """A subscription by its id, or by resource code and consumer agency (code or name)."""
    if subscription_id is not None:
        found = session.get(Subscription, subscription_id)
        if found is None:
            raise NotFound(f"no subscription {subscription_id}; `govshare notices subscriptions` lists them")
        return found
    if not (resource_code and agency):
        raise ConfigError("name a subscription by its id, or by resource code and agency")
    resource = get_resource(session, code=resource_code)
    consumer = get_agency(session, ref=agency)
    found = session.scalar(select(Subscription).where(Subscription.resource_id == resource.id,
                                                      Subscription.agency_id == consumer.id))
    if found is None:
        raise NotFound(f"{consumer.name} does not subscribe to {resource.code}; "
                       f"`govshare subscribe {resource.code} --agency {consumer.code}` first")
    return found


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{url!r} is not an http(s) URL; give the receiver's full address, e.g. https://host/hook")


def set_endpoint(session: Session, *, subscription: Subscription, url: str, actor: str = "cli") -> EndpointSet:
    """Set (or replace) the webhook URL and generate a new signing secret; the old secret stops working."""
    _check_url(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    encrypted = encrypt(secret, secret_key=get_settings().require_secret())
    endpoint = session.get(NoticeEndpoint, subscription.id)
    if endpoint is None:
        endpoint = NoticeEndpoint(subscription_id=subscription.id, url=url, secret_encrypted=encrypted)
        session.add(endpoint)
    else:
        endpoint.url, endpoint.secret_encrypted, endpoint.updated_at = url, encrypted, clock.now()
    session.flush()
    # the URL is recorded, never the secret
    record_event(session, actor=actor, action="notice.endpoint_set", agency_code=subscription.agency.code,
                 resource_code=subscription.resource.code, detail={"subscription_id": subscription.id, "url": url})
    return EndpointSet(subscription_id=subscription.id, url=url, secret=secret)


def lock_feed_order(session: Session) -> None:
    """Take the pull feed's order lock for the rest of the caller's transaction; call it before the transaction's
    first write and before any audit event (see the module docstring for why and for the lock order). Taking it
    again in the same transaction waits for nothing."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_ORDER_LOCK})
    # SQLite: one writer at a time already; the INSERT takes the database's write lock and holds it to COMMIT.


def endpoint_for(session: Session, *, subscription_id: int) -> tuple[str, str] | None:
    """(url, secret) of a subscription's webhook, or None when it reads the pull feed only."""
    endpoint = session.get(NoticeEndpoint, subscription_id)
    if endpoint is None:
        return None
    return endpoint.url, decrypt(endpoint.secret_encrypted, secret_key=get_settings().require_secret())


def list_notices(session: Session, *, resource_code: str | None = None, status: str | None = None,
                 agency_id: int | None = None, after: int | None = None, limit: int = 100,
                 newest: bool = False) -> list[Notice]:
    """Notices oldest first (by id); `after` is the pull feed's cursor, the id of the last notice seen. With
    ``newest``, the newest ``limit`` of them (still oldest first): what an operator looking now wants.

    A notice keeps its id, so its place in the feed, for good: a notice the consumer must hear of again after
    its cursor passed it (a withheld one released, pipeline/notice_release.py) is a new notice, whose
    ``releases`` names the one it answers. The cursor therefore only moves on and no entry is shown twice."""
    query = select(Notice).order_by(Notice.id.desc() if newest else Notice.id)
    if resource_code:
        query = query.where(Notice.resource_code == resource_code)
    if status:
        query = query.where(Notice.status == status)
    if agency_id is not None:
        query = query.where(Notice.agency_id == agency_id)
    if after is not None:
        query = query.where(Notice.id > after)
    found = list(session.scalars(query.limit(max(1, min(limit, FEED_PAGE_MAX)))))
    return found[::-1] if newest else found


def parse_cursor(after: str | None) -> int | None:
    if after in (None, ""):
        return None
    # ASCII digits only ("²" is a digit to str.isdigit and no number to int), within a notice id's range
    if not (after.isascii() and after.isdigit() and int(after) < 2**63):
        raise ConfigError(zh=f"游标“{after}”不是本通知接口返回的；请传回上一页的 next_cursor，或不传从头读取",
                          en=f"cursor {after!r} is not one this feed returned; pass next_cursor from the last page, "
                          "or nothing to start from the beginning")
    return int(after)


def notice_public(notice: Notice) -> dict[str, Any]:
    """What a consumer sees of a notice in the feed: the payload the webhook carries plus delivery state, and for
    a release entry (补发通知) the id of the withheld notice it releases."""
    return {"id": str(notice.id), "resource": notice.resource_code, "version": notice.version_number,
            "created_at": notice.created_at.isoformat(), "webhook_status": notice.status,
            # why a notice was not sent (withheld: no live grant; superseded: a later notice covers it; released:
            # the release entry that carries it), in Chinese as the consumer reads it
            "withheld_reason": notice.last_error if notice.status in WITHHELD_OR_COVERED else None,
            "releases": str(notice.releases_id) if notice.releases_id is not None else None,
            "payload": notice.payload}
