"""Tables of the sharing workflows: subscriptions, grants, applications, disputes, secrecy agreements, inbox (people
and their roles: registry/people/models.py).

registry/models.py imports them for Alembic; their migration is
registry/migrations/versions/0016_sharing.py (a branch of its own, label "sharing").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency
from schemas.presentation import labels

__all__ = ["Subscription", "ResourceSensitivity", "Grant", "Application", "Dispute", "SecrecyAgreement",
           "InboxMessage", "GRANT_STATUSES", "APPLICATION_STATUSES"]

# pending_agreement: approved, waiting for a secrecy agreement (article 14); superseded: replaced by a newer grant.
GRANT_STATUSES = tuple(labels("grant_statuses"))
APPLICATION_STATUSES = tuple(labels("application_statuses"))


class Subscription(Base):
    """A consumer agency's subscription to a resource (获取方); unconditional resources grant at once."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("resource_id", "agency_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")
    purpose: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resource: Mapped[Resource] = relationship()
    agency: Mapped[Agency] = relationship()


class ResourceSensitivity(Base):
    """The provider's secrecy review (保密审查, article 19) of a resource: what it involves, which columns are
    personal identifiers. A resource involving any secret needs a secrecy agreement before a grant activates."""

    __tablename__ = "resource_sensitivity"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    state_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    commercial_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    personal_privacy: Mapped[bool] = mapped_column(Boolean, default=False)
    personal_columns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    reviewed_by: Mapped[str] = mapped_column(String(100))
    reviewed_at: Mapped[datetime] = mapped_column(default=clock.now)

    @property
    def involves_secrets(self) -> bool:
        return self.state_secret or self.commercial_secret or self.personal_privacy


class Application(Base):
    """需求申请: a consumer's application for a conditional resource (article 14) or, kind "external",
    for leave to publish or pass on data it holds under a grant (article 17)."""

    __tablename__ = "sharing_applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="use")
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    consumer_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    applicant: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    items: Mapped[list[Any]] = mapped_column(JSON)
    row_filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="submitted", index=True)
    submitted_at: Mapped[datetime] = mapped_column(default=clock.now)
    received_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date, doc="answer deadline; None while its year's schedule is missing")
    due_problem: Mapped[str | None] = mapped_column(Text, doc="why due_on is unknown (the missing schedule)")
    reminded_at: Mapped[datetime | None] = mapped_column()
    overdue_flagged_at: Mapped[datetime | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(100))
    approved_items: Mapped[list[Any] | None] = mapped_column(JSON)
    reasons: Mapped[str | None] = mapped_column(Text)
    grant_id: Mapped[int | None] = mapped_column(Integer)
    resource: Mapped[Resource] = relationship()
    consumer: Mapped[Agency] = relationship()


class Dispute(Base):
    """协调处理: the consumer disagrees with a decision; the coordination office's conclusion becomes it."""

    __tablename__ = "sharing_disputes"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("sharing_applications.id"), index=True)
    opened_by: Mapped[str] = mapped_column(String(100))
    grounds: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(default=clock.now)
    status: Mapped[str] = mapped_column(String(20), default="open")
    outcome: Mapped[str | None] = mapped_column(String(20))
    approved_items: Mapped[list[Any] | None] = mapped_column(JSON)
    conclusion: Mapped[str | None] = mapped_column(Text)
    concluded_by: Mapped[str | None] = mapped_column(String(100))
    concluded_at: Mapped[datetime | None] = mapped_column()
    application: Mapped[Application] = relationship()


class SecrecyAgreement(Base):
    """政务数据资源共享安全保密协议: parties, signing date, term, and the signed scan with its SHA-256."""

    __tablename__ = "secrecy_agreements"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    provider_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    consumer_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    parties: Mapped[list[Any]] = mapped_column(JSON)
    signed_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    scan_path: Mapped[str] = mapped_column(Text)
    scan_sha256: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Grant(Base):
    """共享授权: what one consumer agency may read of one resource, compiled for the access check."""

    __tablename__ = "grants"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    origin: Mapped[str] = mapped_column(String(20))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("sharing_applications.id"))
    columns: Mapped[list[Any] | None] = mapped_column(JSON)
    row_filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    unmask: Mapped[bool] = mapped_column(Boolean, default=False)  # every personal identifier shown
    unmasked_columns: Mapped[list[Any] | None] = mapped_column(JSON)  # only these shown (migration 0031)
    external_use: Mapped[bool] = mapped_column(Boolean, default=False)
    purpose: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    activated_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    # HMAC of what the access check reads, made whenever the hub writes the grant (registry/seals.py):
    # a row edited outside the hub no longer matches it and is refused (migration 0090_grant_seal)
    seal: Mapped[str | None] = mapped_column(String(64))
    resource: Mapped[Resource] = relationship()
    agency: Mapped[Agency] = relationship()


class InboxMessage(Base):
    """A message for an agency (its data administrators) or for a role (the coordination office)."""

    __tablename__ = "sharing_inbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    role: Mapped[str | None] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(30))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("sharing_applications.id"))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
