"""Tables of the quality layer (articles 11, 12, 23): the quarantine store, error-correction tickets (疑义校核工单),
consistency checks and great-expectations runs (the data-element registry, 数据元, is the catalogue's:
registry/catalog/models.py).

registry/models.py imports them for Alembic; their migration is
registry/migrations/versions/0005_quality.py (a branch of its own, label "quality").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency
from schemas.presentation import labels

__all__ = ["QuarantineSet", "QuarantineRecord", "CorrectionTicket", "ConsistencyCheck",
           "ExpectationRun", "QUARANTINE_STATUSES", "RECORD_STATUSES", "TICKET_STATUSES", "TICKET_KINDS"]

# open: some of its rows wait for the provider's fix; resolved: each of its rows was read again, fixed or
# deleted (their records say which); replayed: checked again into a later version (sets from before records).
QUARANTINE_STATUSES = tuple(labels("quarantine_statuses"))
# A record is one key's break of one rule: open until the key is read again (superseded by the new reading,
# or closed as fixed) or is gone from the source (closed as deleted).
RECORD_STATUSES = tuple(labels("quarantine_record_statuses"))
TICKET_STATUSES = tuple(labels("ticket_statuses"))
TICKET_KINDS = ("quarantine", "consistency")


class QuarantineSet(Base):
    """隔离区: the rows one run quarantined; the rows themselves stay in a Parquet file under the storage root."""

    __tablename__ = "quarantine_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(40), unique=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    path: Mapped[str] = mapped_column(Text, doc="Parquet file relative to the storage root")
    rows: Mapped[int] = mapped_column(BigInteger)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="rows per rule id")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    replay_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resolved_at: Mapped[datetime | None] = mapped_column()
    resource: Mapped[Resource] = relationship()


class QuarantineRecord(Base):
    """One key's break of one rule (隔离记录): at most one open per (resource, key, rule), migration 0040.

    ``key`` is the key's text (composite keys joined by U+001F); a row without a key is known by the digest
    of its values (``row:<sha256>``). The row's values are in its set's Parquet file."""

    __tablename__ = "quarantine_records"
    __table_args__ = (Index("uq_quarantine_records_open", "resource_id", "key", "rule", unique=True,
                            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    key: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    set_id: Mapped[int] = mapped_column(ForeignKey("quarantine_sets.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    closed_reason: Mapped[str | None] = mapped_column(String(20), doc="fixed or deleted")
    superseded_by: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(default=clock.now, doc="when the key first broke the rule")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    closed_at: Mapped[datetime | None] = mapped_column()


_OPEN_RULE = "status = 'open' AND kind = 'quarantine' AND rule IS NOT NULL"


class CorrectionTicket(Base):
    """疑义校核工单: asks an agency to check and correct its data (quarantined rows or inconsistent values)."""

    __tablename__ = "correction_tickets"
    # one open quarantine ticket per provider and rule (migration 0070)
    __table_args__ = (Index("uq_correction_tickets_open_rule", "agency_id", "rule", unique=True,
                            sqlite_where=text(_OPEN_RULE), postgresql_where=text(_OPEN_RULE)),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    quarantine_set_id: Mapped[int | None] = mapped_column(ForeignKey("quarantine_sets.id"))
    consistency_check_id: Mapped[int | None] = mapped_column(ForeignKey("consistency_checks.id"))
    # quarantine tickets: the rule whose open records the ticket asks about (one open ticket per provider and
    # rule, migration 0070; `resource` is the first resource it named, `detail["resources"]` every resource
    # with its open records). Empty on tickets opened per run before migration 0040.
    rule: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    closed_at: Mapped[datetime | None] = mapped_column()
    agency: Mapped[Agency] = relationship()
    resource: Mapped[Resource] = relationship()

    @property
    def resource_codes(self) -> list[str]:
        """The resources the ticket asks about: a provider-and-rule ticket's resources with open records (all
        it ever named once closed), else its one resource."""
        named = (self.detail or {}).get("resources") or {}
        return [code for code, rows in named.items() if rows] or list(named) or [self.resource.code]


class ConsistencyCheck(Base):
    """A comparison of a non-authoritative copy with the authoritative versions, by subject key."""

    __tablename__ = "consistency_checks"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    copy_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    elements: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="per element: counts and sources")
    rows_compared: Mapped[int] = mapped_column(BigInteger, default=0)
    mismatches: Mapped[int] = mapped_column(BigInteger, default=0)
    missing: Mapped[int] = mapped_column(BigInteger, default=0, doc="copy keys absent from the authority")
    path: Mapped[str | None] = mapped_column(Text, doc="Parquet file of mismatches, relative to the storage root")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resource: Mapped[Resource] = relationship()


class ExpectationRun(Base):
    """One great-expectations validation of a published version (reported, never blocking)."""

    __tablename__ = "expectation_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), doc="passed, failed or error")
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    report_path: Mapped[str | None] = mapped_column(Text, doc="folder with results.json and report.html")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
