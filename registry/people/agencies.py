"""Agencies (行政机构): providers and consumers of shared data."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.errors import ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.people.models import Agency
from schemas.presentation import labels

LEVELS = ("city", "district", "county")  # 市级, 区级, 县级 (article 25: districts and counties follow the same rules)
LEVEL_LABELS = labels("agency_levels")


def checked_uscc(code: str) -> tuple[str, str | None]:
    """The code in canonical form and a warning (e.g. a pre-2015 pilot code), or ConfigError if invalid."""
    from quality.identifiers import Level, validate_uscc

    outcome = validate_uscc(code)
    if outcome.level is Level.INVALID:
        raise ConfigError(f"统一社会信用代码 {code!r} 无效：{outcome.message_zh} / invalid unified social credit code: "
                          f"{outcome.message_en}")
    warning = outcome.message_zh if outcome.level is Level.WARNING else None
    return outcome.normalized or code.strip().upper(), warning


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
    code, warning = checked_uscc(code)
    checked_name(name, what_zh="机构名称", what_en="an agency name")
    if level not in LEVELS:
        raise ConfigError(f"agency level {level!r} must be one of {', '.join(LEVELS)}")
    if level != "city" and not district:
        raise ConfigError("区县级机构须填写所属区县 / a district or county agency (区县) needs --district, e.g. 浦东新区")
    if session.scalar(select(Agency).where(or_(Agency.code == code, Agency.name == name))):
        raise ConfigError(f"an agency with code {code} or name {name} already exists; `govshare agency list` shows it")
    parent_agency = get_agency(session, ref=parent) if parent else None
    # District catalogues sit under the city's (article 25): a parent is city-level or of the same district.
    if parent_agency and parent_agency.level != "city" and (level == "city" or parent_agency.district != district):
        raise ConfigError(f"上级机构 {parent_agency.name} 是{parent_agency.district}的机构，不能作为本机构的上级 / a parent must "
                          "be a city-level agency or one of the same district")
    agency = Agency(code=code, name=name, level=level, district=district,
                    parent_id=parent_agency.id if parent_agency else None)
    session.add(agency)
    session.flush()
    record_event(session, actor=actor, action="agency.add", agency_code=code,
                 detail={"name": name, "level": level, "district": district, "uscc_warning": warning})
    return agency


def get_agency(session: Session, *, ref: str) -> Agency:
    """An agency by its code or its exact name."""
    agency = session.scalar(select(Agency).where(or_(Agency.code == ref.upper(), Agency.name == ref)))
    if agency is None:
        raise NotFound(f"no agency {ref!r}; `govshare agency list` shows the registered ones")
    return agency


def list_agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.code)))
