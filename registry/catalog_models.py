"""Tables of issue 3: the catalogue system (目录管理系统): people and their designations (articles 10, 21),
catalogue entry revisions and their review (articles 9, 10, 19), update obligations and yearly
reconfirmations (articles 10, 16).

The catalogue entry itself is `Resource` (信息资源, registry/models.py); each change of its elements is a
`CatalogRevision` whose `content` is the JSON of `schemas.catalog_metadata.CatalogEntryData`.
Imported at the end of registry/models.py; migration registry/migrations/versions/0010_catalog.py (label
"catalog").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.models import Resource
from registry.orm import Base
from schemas.presentation import labels

__all__ = [
    "REVISION_STATUSES",
    "CatalogRevision",
    "ConfidentialityReview",
    "Reconfirmation",
    "UpdateObligation",
]

# draft: being edited; submitted: awaiting review; returned: sent back with comments; published: the one
# consumers see; superseded: an older published or an abandoned unpublished revision.
REVISION_STATUSES = {code: text for code, text in labels("catalog_statuses").items() if code != "registered"}


class CatalogRevision(Base):
    """One immutable version of a catalogue entry's elements, and where it stands in review."""

    __tablename__ = "catalog_revisions"
    __table_args__ = (UniqueConstraint("resource_id", "number", name="uq_catalog_revisions_resource_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column()
    content_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime | None] = mapped_column()
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_comments: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="{elements: {...}, data_items: {...}}")
    published_at: Mapped[datetime | None] = mapped_column()
    resource: Mapped[Resource] = relationship()


class ConfidentialityReview(Base):
    """保密审查 (article 19): recorded for a revision before it may be published."""

    __tablename__ = "confidentiality_reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("catalog_revisions.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    reviewed_on: Mapped[date] = mapped_column(Date)
    passed: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class UpdateObligation(Base):
    """A duty to bring an entry up to date within 2 working days (articles 10, 16); closed by a publication."""

    __tablename__ = "update_obligations"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), doc="elements (要素调整) or data (数据资源变化)")
    reason: Mapped[str] = mapped_column(Text)
    opened_on: Mapped[date] = mapped_column(Date)
    # None while the working-day schedule of the due year is not installed: the duty is kept, never guessed.
    due_on: Mapped[date | None] = mapped_column(Date)
    due_problem: Mapped[str | None] = mapped_column(Text, doc="why due_on is unknown (the missing schedule)")
    opened_by: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(default=clock.now)
    closed_on: Mapped[date | None] = mapped_column(Date)
    closed_by_revision_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_revisions.id"))
    resource: Mapped[Resource] = relationship()


class Reconfirmation(Base):
    """全面维护: the agency confirmed the entry's published elements are still true (at least yearly)."""

    __tablename__ = "catalog_reconfirmations"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("catalog_revisions.id"))
    confirmed_on: Mapped[date] = mapped_column(Date)
    confirmed_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
