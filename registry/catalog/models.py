"""Tables of the catalogue system (目录管理系统): sources, resources, catalogue entry revisions and their review
(articles 9, 10, 19), update obligations and yearly reconfirmations (articles 10, 16), data elements.

The catalogue entry itself is `Resource` (信息资源); each change of its elements is a `CatalogRevision` whose
`content` is the JSON of `schemas.catalog_metadata.CatalogEntryData`. Migrations: registry/migrations/versions/
0001 (sources, resources), 0010_catalog.py (label "catalog").
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
from registry.orm import Base
from registry.people.models import Agency
from schemas.presentation import labels

__all__ = [
    "REVISION_STATUSES",
    "CatalogRevision",
    "ConfidentialityReview",
    "DataElement",
    "Resource",
    "Source",
    "Reconfirmation",
    "UpdateObligation",
]

# draft: being edited; submitted: awaiting review; returned: sent back with comments; published: the one
# consumers see; superseded: an older published or an abandoned unpublished revision.
REVISION_STATUSES = {code: text for code, text in labels("catalog_statuses").items() if code != "registered"}


class Source(Base):
    """A connection to an agency's business database (业务数据库); the secret part is encrypted at rest."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    kind: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    agency: Mapped[Agency] = relationship()


class Resource(Base):
    """信息资源: a catalogue resource, optionally fed by a source stream (table or query)."""

    __tablename__ = "resources"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True, doc="信息资源代码: classification/sequence")
    classification: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    abstract: Mapped[str] = mapped_column(Text, default="")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"))
    stream: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="table or query, key, cursor column")
    sharing_type: Mapped[str] = mapped_column(String(20), default="unconditional")
    sharing_condition: Mapped[str] = mapped_column(Text, default="")
    sharing_modes: Mapped[list[Any]] = mapped_column(default=list)
    update_cycle: Mapped[str] = mapped_column(String(20), default="daily")
    # registered: added with `resource add` (stream first, catalogue elements later); draft: compiled in the
    # catalogue, never published (hidden from consumers); published: the columns above mirror the published
    # revision (registry/catalog/entries.py). Migration 0010_catalog.
    catalog_status: Mapped[str] = mapped_column(String(20), default="registered", server_default="registered")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    # HMAC of what the access check reads, made whenever the hub writes the row (registry/seals.py): a row edited
    # outside the hub no longer matches it and is refused (migration 0095_row_seals)
    seal: Mapped[str | None] = mapped_column(String(64))
    agency: Mapped[Agency] = relationship()
    source: Mapped[Source | None] = relationship()


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
    # the day the hub made the revision: a draft's confidentiality review is not dated before it (migration
    # 0110_revision_created_on; revisions made before it have the Beijing day of created_at)
    created_on: Mapped[date | None] = mapped_column(Date, default=clock.today)
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime | None] = mapped_column()
    # the day the submission counts for (`--on` may record an earlier one); decisions are not dated before it
    # (migration 0105_revision_submitted_on)
    submitted_on: Mapped[date | None] = mapped_column(Date)
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


class DataElement(Base):
    """数据元: one datum about a subject (keyed by USCC or ID number) with exactly one authoritative agency and
    the resource and column where its authoritative values are published (一数一源, article 11)."""

    __tablename__ = "data_elements"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    subject_key: Mapped[str] = mapped_column(String(20), doc="uscc, idcard or orgcode")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    column: Mapped[str] = mapped_column(String(100))
    key_column: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    agency: Mapped[Agency] = relationship()
    resource: Mapped[Resource] = relationship()
