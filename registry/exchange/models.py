"""Tables of the exchange engine: published versions, run cursors and runs, the per-resource run lock, detected
source schema changes, and pruned versions (articles 7 and 16).

Migrations: registry/migrations/versions/0001 (versions, cursors, runs), 0007_exchange.py (label "exchange"),
0075_cursor_files.py (files read by a file source), 0085_cdc_table_identity.py (a change-captured table's
identity).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base

__all__ = ["CursorFile", "CursorState", "DatasetVersion", "ResourceLock", "SchemaChange", "PrunedVersion", "SyncRun"]


class DatasetVersion(Base):
    """An immutable published version of a resource's dataset, with its manifest."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("resource_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(String(40), unique=True)
    path: Mapped[str] = mapped_column(Text, doc="folder relative to the storage root")
    row_count: Mapped[int] = mapped_column(BigInteger)
    quarantined_count: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resource: Mapped[Resource] = relationship()


class CursorState(Base):
    """Where the next incremental read starts; written in the same transaction as its version."""

    __tablename__ = "cursor_states"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    cursor_column: Mapped[str | None] = mapped_column(String(100))
    cursor_value: Mapped[str | None] = mapped_column(Text)
    source_identity: Mapped[dict[str, Any] | None] = mapped_column(
        doc="change capture: the table the position belongs to (pg_class oid, its columns' attnums and types; "
            "pipeline/cdc_identity.py); NULL for other resources and for a state from before it was kept")
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class CursorFile(Base):
    """One file of a file source's record of files read (已读文件清单, connectors/filelist.py): part of the cursor
    state, rewritten in the same transaction as it. One row a file, not one document: a run that reads three of
    100,000 files writes three rows."""

    __tablename__ = "cursor_files"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True, doc="relative to the source folder")
    size: Mapped[int] = mapped_column(BigInteger)
    modified_us: Mapped[int] = mapped_column(BigInteger, doc="modification time, microseconds since 1970 UTC")
    stamp: Mapped[str | None] = mapped_column(String(100), doc="a local file's inode and change time")
    run_id: Mapped[str] = mapped_column(String(40), doc="the run that read it last")


class SyncRun(Base):
    """One attempt to sync a resource, successful or not, for operators and evaluation."""

    __tablename__ = "sync_runs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    mode: Mapped[str] = mapped_column(String(20), default="full")
    started_at: Mapped[datetime] = mapped_column(default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column()
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_published: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_quarantined: Mapped[int] = mapped_column(BigInteger, default=0)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    error: Mapped[str | None] = mapped_column(Text)


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
