"""Agencies (行政机构): providers and consumers of shared data."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.errors import ConfigError, NotFound
from registry.audit import record_event
from registry.models import Agency

LEVELS = ("city", "district")


def add_agency(
    session: Session,
    *,
    code: str,
    name: str,
    level: str = "city",
    district: str | None = None,
    parent: str | None = None,
    actor: str = "cli",
) -> Agency:
    code = code.strip().upper()
    if len(code) != 18:
        raise ConfigError(f"agency code {code!r} must be an 18-character unified social credit code (统一社会信用代码)")
    if level not in LEVELS:
        raise ConfigError(f"agency level {level!r} must be one of {', '.join(LEVELS)}")
    if level == "district" and not district:
        raise ConfigError("a district agency (区县) needs --district, e.g. 浦东新区")
    if session.scalar(select(Agency).where(or_(Agency.code == code, Agency.name == name))):
        raise ConfigError(f"an agency with code {code} or name {name} already exists; `govshare agency list` shows it")
    parent_agency = get_agency(session, ref=parent) if parent else None
    agency = Agency(code=code, name=name, level=level, district=district,
                    parent_id=parent_agency.id if parent_agency else None)
    session.add(agency)
    session.flush()
    record_event(session, actor=actor, action="agency.add", agency_code=code, detail={"name": name, "level": level})
    return agency


def get_agency(session: Session, *, ref: str) -> Agency:
    """An agency by its code or its exact name."""
    agency = session.scalar(select(Agency).where(or_(Agency.code == ref.upper(), Agency.name == ref)))
    if agency is None:
        raise NotFound(f"no agency {ref!r}; `govshare agency list` shows the registered ones")
    return agency


def list_agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.code)))
