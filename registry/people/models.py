"""Tables of agencies and the people who act for them: agencies, staff and their designations, user accounts
and sessions, API tokens."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.orm import Base
from schemas.presentation import labels

# 编目人员 compiles entries, 审核人员 reviews them (article 10), 数据资源管理员 is filed with the commission (article 21).
DESIGNATION_ROLES = labels("designation_roles")


class Agency(Base):
    """行政机构: a government agency that provides or consumes data."""

    __tablename__ = "agencies"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(18), unique=True, doc="unified social credit code (统一社会信用代码)")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    level: Mapped[str] = mapped_column(String(20), default="city", doc="city (市级) or district (区县)")
    district: Mapped[str | None] = mapped_column(String(50))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class ApiToken(Base):
    """A consumer system's credential, issued to an agency; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    # HMAC of what the access check reads, made whenever the hub writes the row (registry/seals.py): a row edited
    # outside the hub no longer matches it and is refused (migration 0095_row_seals)
    seal: Mapped[str | None] = mapped_column(String(64))
    agency: Mapped[Agency] = relationship()


class Person(Base):
    """A staff member of an agency, identified on the platform by an account name."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    account: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    office: Mapped[str] = mapped_column(String(200), default="", doc="处室 / department within the agency")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    agency: Mapped[Agency] = relationship()


class Designation(Base):
    """A dated designation of a person to a role (指定专人); ended, never deleted, so history stays answerable."""

    __tablename__ = "designations"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date, doc="last day of the designation, inclusive")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # HMAC of what the access check reads, made whenever the hub writes the row (registry/seals.py): a row edited
    # outside the hub no longer matches it and is refused (migration 0095_row_seals)
    seal: Mapped[str | None] = mapped_column(String(64))
    person: Mapped[Person] = relationship()


class User(Base):
    """A person (用户) of an agency; the password is kept only as a scrypt hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # HMAC of what the access check reads, its lockout too, made whenever the hub writes the row
    # (registry/seals.py): a row edited outside the hub no longer matches it and is refused (migrations
    # 0095_row_seals, 0100_user_lockout_seal)
    seal: Mapped[str | None] = mapped_column(String(64))
    agency: Mapped[Agency] = relationship()


class UserSession(Base):
    """A person's API session after login; only the token's SHA-256 is stored."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    # HMAC of what the access check reads, made whenever the hub writes the row (registry/seals.py): a row edited
    # outside the hub no longer matches it and is refused (migration 0095_row_seals)
    seal: Mapped[str | None] = mapped_column(String(64))
    user: Mapped[User] = relationship()
