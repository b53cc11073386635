"""Tables of the exchange engine (issue 4): the per-resource run lock, detected source schema changes, and
pruned versions (articles 7 and 16).

Imported at the end of registry/models.py so they share its metadata; their migration is
registry/migrations/versions/0007_exchange.py (a branch of its own, label "exchange").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from registry.orm import Base

__all__ = ["ResourceLock", "SchemaChange", "PrunedVersion"]


class ResourceLock(Base):
    """One row while a run of the resource stages or publishes; a lease, so a crashed holder cannot block forever.

    The primary key is the lock: a second run's INSERT fails on it on SQLite and PostgreSQL alike.
    """

    __tablename__ = "resource_locks"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()


class SchemaChange(Base):
    """A column added, dropped or retyped at the source, against the previous version (who, when, what)."""

    __tablename__ = "schema_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(40))
    previous_version: Mapped[int] = mapped_column(Integer, doc="version number the source was compared with")
    signature: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the change, so a rerun is not recorded twice")
    added: Mapped[list[Any]] = mapped_column(default=list)
    dropped: Mapped[list[Any]] = mapped_column(default=list)
    retyped: Mapped[list[Any]] = mapped_column(default=list)
    compatible: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="pipeline")
    obligation: Mapped[str | None] = mapped_column(Text, doc="the catalogue update obligation opened, if any")
    detected_at: Mapped[datetime] = mapped_column(default=clock.now)


class PrunedVersion(Base):
    """A version whose files the retention rule removed; its registry row and manifest stay as the record."""

    __tablename__ = "pruned_versions"
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    pruned_at: Mapped[datetime] = mapped_column(default=clock.now)
