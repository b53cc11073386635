"""Tables of the delivery channels: offline exchange targets (SFTP) and the delivery record that prevents a double delivery.

registry/models.py imports them for Alembic; their migration is
registry/migrations/versions/0007_delivery.py (a branch of its own, label "delivery").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from registry.orm import Base

__all__ = ["DELIVERY_STATUSES", "Delivery", "SftpTarget"]

# pending: claimed, being written; delivered: renamed into place on the peer; failed: gave up after retries.
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class SftpTarget(Base):
    """A consumer agency's SFTP server (离线交换目标); the password or private key is encrypted at rest."""

    __tablename__ = "sftp_targets"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    username: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(Text, default=".")
    host_key: Mapped[str | None] = mapped_column(Text, doc="known_hosts line or SHA256: fingerprint of the server key")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Delivery(Base):
    """One pushed version (or change set) per consumer: the unique key makes a second push a no-op."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("agency_id", "version_id", "kind", "channel", name="uq_deliveries_once"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    kind: Mapped[str] = mapped_column(String(20), default="full", doc="full, or changes:<since version>")
    channel: Mapped[str] = mapped_column(String(20), default="sftp")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    remote_path: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column()
