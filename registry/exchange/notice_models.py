"""Tables of the exchange engine's notices: update notices to subscribers (article 16) and change-capture resync marks (article 7).

registry/models.py imports them for Alembic; their migrations are
registry/migrations/versions/0006_notices.py (a branch of its own, label "notices") and 0080_notice_releases.py
(the release entry's ``releases_id``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from registry.orm import Base
from schemas.presentation import labels

__all__ = ["NoticeEndpoint", "Notice", "CdcResync", "NOTICE_STATUSES", "OWN_NOTICE"]

# pending: a webhook delivery is due or being retried; delivered: the receiver answered 2xx;
# failed: given up after the maximum attempts (reported); feed: no webhook, only in the pull feed;
# withheld: not sent, the subscriber of a resource shared on application holding no live grant (last_error says
# why, in the feed too); superseded: withheld, then covered by a later notice once the grant was live again, so
# never sent (last_error names that notice); released: withheld, then released once the grant was live again as a
# new notice (a release entry, 补发通知, whose releases_id names this one; last_error names it) that carries
# catch_up (pipeline/notice_release.py).
NOTICE_STATUSES = tuple(labels("notice_statuses"))
# The rows that are a version's own notice (not a release entry): one per subscriber and version, the partial
# unique index queueing's INSERT ... ON CONFLICT DO NOTHING names (pipeline/notify.py).
OWN_NOTICE = text("releases_id IS NULL")


class NoticeEndpoint(Base):
    """Where a subscriber's notices are POSTed; the signing secret is encrypted with GOVSHARE_SECRET_KEY."""

    __tablename__ = "notice_endpoints"
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Notice(Base):
    """One notice per subscriber and version: the unique pair makes queueing idempotent across retries. A release
    entry (补发通知) is the one other row a subscriber may have for a version: the notice it was withheld,
    released as a new entry of the feed (``releases_id``), at most one per withheld notice."""

    __tablename__ = "notices"
    __table_args__ = (Index("uq_notices_subscription_version", "subscription_id", "version_id", unique=True,
                            sqlite_where=OWN_NOTICE, postgresql_where=OWN_NOTICE),
                      UniqueConstraint("releases_id", name="uq_notices_releases_id"))
    # The id doubles as the pull feed's cursor, so it must only grow: an integer primary key. A feed entry is never
    # given a later place: what the consumer must hear again is a new entry (releases_id).
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
    # The withheld notice this entry releases; that one keeps its place, and the consumer may have read it already.
    releases_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                                    ForeignKey("notices.id", name="fk_notices_releases_id"))


class CdcResync(Base):
    """A change-capture slot dropped by the stale-slot guard: the resource must be re-read in full."""

    __tablename__ = "cdc_resyncs"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    slot: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(Text)
    retained_bytes: Mapped[int | None] = mapped_column(BigInteger)
    marked_at: Mapped[datetime] = mapped_column(default=clock.now)
