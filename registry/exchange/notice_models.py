"""Tables of the exchange engine's notices: update notices to subscribers (article 16) and change-capture resync marks (article 7).

registry/models.py imports them for Alembic; their migration is
registry/migrations/versions/0006_notices.py (a branch of its own, label "notices").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from registry.orm import Base

__all__ = ["NoticeEndpoint", "Notice", "CdcResync", "NOTICE_STATUSES"]

# pending: a webhook delivery is due or being retried; delivered: the receiver answered 2xx;
# failed: given up after the maximum attempts (reported); feed: no webhook, only in the pull feed;
# withheld: not sent, the subscriber of a resource shared on application holding no live grant (last_error says
# why, in the feed too); superseded: withheld, then covered by a later notice once the grant was live again, so
# never sent (last_error names that notice; pipeline/notice_release.py).
NOTICE_STATUSES = ("pending", "delivered", "failed", "feed", "withheld", "superseded")


class NoticeEndpoint(Base):
    """Where a subscriber's notices are POSTed; the signing secret is encrypted with GOVSHARE_SECRET_KEY."""

    __tablename__ = "notice_endpoints"
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Notice(Base):
    """One notice per subscriber and version: the unique pair makes queueing idempotent across retries."""

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("subscription_id", "version_id", name="uq_notices_subscription_version"),)
    # The id doubles as the pull feed's cursor, so it must only grow: an integer primary key.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    resource_code: Mapped[str] = mapped_column(String(60))
    version_number: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column()


class CdcResync(Base):
    """A change-capture slot dropped by the stale-slot guard: the resource must be re-read in full."""

    __tablename__ = "cdc_resyncs"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    slot: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(Text)
    retained_bytes: Mapped[int | None] = mapped_column(BigInteger)
    marked_at: Mapped[datetime] = mapped_column(default=clock.now)
