"""Registry tables. Every change to this file needs an Alembic migration in registry/migrations/versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency


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
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


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


from registry.audit.models import *  # noqa: E402,F401,F403
from registry.catalog.models import *  # noqa: E402,F401,F403
from registry.catalog.search_models import *  # noqa: E402,F401,F403
from registry.delivery_models import *  # noqa: E402,F401,F403
from registry.exchange_models import *  # noqa: E402,F401,F403
from registry.notice_models import *  # noqa: E402,F401,F403
from registry.quality_models import *  # noqa: E402,F401,F403
from registry.people.models import *  # noqa: E402,F401,F403
from registry.sharing_models import *  # noqa: E402,F401,F403
from registry.supervision_models import *  # noqa: E402,F401,F403
