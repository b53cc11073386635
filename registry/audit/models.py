"""Tables of the audit log: the hash-chained events and when sealing began."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from registry.orm import Base


class AuditEvent(Base):
    """审计日志: append-only and hash-chained; each row's hash covers its content and the previous hash."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=clock.now)
    actor: Mapped[str] = mapped_column(String(100))
    agency_code: Mapped[str | None] = mapped_column(String(18))
    action: Mapped[str] = mapped_column(String(60), index=True)
    resource_code: Mapped[str | None] = mapped_column(String(60), index=True)
    result: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # a fork in the chain cannot be stored
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC of the hash under a key derived from GOVSHARE_SECRET_KEY (migration 0016_sharing): a writer with
    # database access alone cannot forge a record or re-hash an edited one (registry/audit_verify.py).
    seal: Mapped[str | None] = mapped_column(String(64))


class AuditSealing(Base):
    """When sealing began (migration 0030_audit_sealing): every record from ``sealed_from_id`` on must carry a
    valid seal, so setting seals to NULL is tampering, not an "unsealed old log". The row is itself sealed
    (HMAC under the audit key) and must exist whenever the log has records."""

    __tablename__ = "audit_sealing"
    id: Mapped[int] = mapped_column(primary_key=True)
    sealed_from_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    started_at: Mapped[datetime] = mapped_column()
    seal: Mapped[str] = mapped_column(String(64))
