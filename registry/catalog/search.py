"""Search of the published catalogue (article 15): keywords over names, abstracts and data item names, filtered
by agency, classification (prefix), sharing type and sharing mode.

The search reads its own index table (plain text, so `LIKE '%企业%'` finds 企业基本信息 on SQLite and
PostgreSQL alike, whatever the revision JSON's escaping), kept in step with the published revisions by
`refresh_published`: one query finds the entries whose published revision is not the one indexed; it also
registers or withdraws their interface services. Every search, listing and export calls it first, so the index
is never behind what consumers see; the publication code may call it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ConfigError, NotFound
from registry.catalog.interface_services import register_service, withdraw_service
from registry.catalog.models import CatalogRevision, Resource
from registry.catalog.search_models import CatalogSearchEntry, InterfaceService
from registry.catalog.resources import shown_as_published
from registry.people.agencies import get_agency
from registry.seals import intact
from schemas.catalog_metadata import CLASSIFICATION, code_list

MAX_LIMIT = 500


def _published():
    return (select(CatalogRevision.id, CatalogRevision.resource_id)
            .join(Resource, Resource.id == CatalogRevision.resource_id)
            .where(CatalogRevision.status == "published", Resource.catalog_status == "published"))


def offered_modes(content: dict[str, Any]) -> list[str]:
    """The sharing modes a published entry offers consumers: none for a not-shared one (article 8), whatever its
    共享方式 element was filled in with; no service, search by mode or DCAT distribution may point to its data."""
    return [] if content["sharing_type"] == "not_shared" else list(content.get("sharing_modes", []))


def search_text(content: dict[str, Any]) -> str:
    parts = [content.get("name", ""), content.get("abstract", "")]
    parts += [item.get("name", "") for item in content.get("data_items", [])]
    return "\n".join(parts).lower()


def refresh_published(session: Session, *, actor: str = "system") -> int:
    """Bring the index and the interface services up to the published revisions; the number of entries changed."""
    published = _published().subquery()
    # A resource row edited outside the hub (its seal broken) is not believed published: it leaves the index
    # (audited once, when it leaves) and comes back once put back as the hub wrote it.
    edited = [r.id for r in session.scalars(select(Resource).where(Resource.id.in_(select(published.c.resource_id))))
              if not intact(r)]
    stale = session.execute(
        select(published.c.id, published.c.resource_id)
        .outerjoin(CatalogSearchEntry, CatalogSearchEntry.resource_id == published.c.resource_id)
        .where(or_(CatalogSearchEntry.resource_id.is_(None), CatalogSearchEntry.revision_id != published.c.id),
               published.c.resource_id.not_in(edited))
    ).all()
    changed = 0
    for revision_id, resource_id in stale:
        revision = session.get(CatalogRevision, revision_id)
        resource = session.get(Resource, resource_id)
        content = revision.content
        try:
            with session.begin_nested():
                row = session.get(CatalogSearchEntry, resource_id) or CatalogSearchEntry(resource_id=resource_id)
                row.revision_id, row.code, row.agency_id = revision_id, resource.code, resource.agency_id
                row.classification, row.sharing_type = content["classification"], content["sharing_type"]
                row.sharing_modes = " " + " ".join(offered_modes(content)) + " "
                row.name, row.search_text = content["name"], search_text(content)
                session.add(row)
                session.flush()
                if "interface" in offered_modes(content):
                    register_service(session, resource=resource, revision_id=revision_id,
                                     revision_number=revision.number, content=content, actor=actor)
                else:
                    withdraw_service(session, resource=resource, actor=actor)
            changed += 1
        except IntegrityError:
            continue  # a concurrent refresh indexed it first
    gone = session.scalars(select(CatalogSearchEntry.resource_id).where(or_(
        CatalogSearchEntry.resource_id.not_in(select(published.c.resource_id)),
        CatalogSearchEntry.resource_id.in_(edited)))).all()
    for resource_id in gone:
        resource = session.get(Resource, resource_id)
        if resource_id in edited:
            shown_as_published(session, resource=resource, actor=actor, where="search")  # records the refusal
        withdraw_service(session, resource=resource, actor=actor)
        session.execute(delete(CatalogSearchEntry).where(CatalogSearchEntry.resource_id == resource_id))
        changed += 1
    session.flush()
    return changed


@dataclass
class SearchHit:
    code: str
    name: str
    abstract: str
    provider: str
    provider_code: str
    classification: str
    sharing_type: str
    sharing_modes: list[str]
    update_cycle: str
    matched_items: list[str] = field(default_factory=list)
    interface_service: str | None = None


@dataclass
class SearchResult:
    total: int
    hits: list[SearchHit]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_catalog(session: Session, *, keyword: str | None = None, agency: str | None = None,
                   classification: str | None = None, sharing_type: str | None = None, mode: str | None = None,
                   limit: int = 50, offset: int = 0) -> SearchResult:
    """Published entries matching every keyword (whitespace-separated) and every filter, by resource code."""
    refresh_published(session)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise ConfigError(f"limit 应在 1..{MAX_LIMIT} 之间，offset 不能为负 / limit must be 1..{MAX_LIMIT}")
    conditions = []
    words = (keyword or "").lower().split()
    for word in words:
        conditions.append(CatalogSearchEntry.search_text.like(_like(word), escape="\\"))
    if agency:
        conditions.append(CatalogSearchEntry.agency_id == get_agency(session, ref=agency).id)
    if classification:
        if not classification.isdigit():
            raise ConfigError(f"分类代码 {classification!r} 应为数字（可为前缀，如 1 或 101）/ classification must be digits")
        conditions.append(CatalogSearchEntry.classification.like(classification + "%"))
    if sharing_type:
        sharing_type = _code("sharing_types", sharing_type)
        conditions.append(CatalogSearchEntry.sharing_type == sharing_type)
    if mode:
        conditions.append(CatalogSearchEntry.sharing_modes.like(f"% {_code('sharing_modes', mode)} %"))
    where = and_(*conditions) if conditions else true()
    total = session.scalar(select(func.count()).select_from(CatalogSearchEntry).where(where)) or 0
    rows = session.scalars(select(CatalogSearchEntry).where(where).order_by(CatalogSearchEntry.code)
                           .limit(limit).offset(offset)).all()
    services = dict(session.execute(select(InterfaceService.resource_id, InterfaceService.path).where(
        InterfaceService.status == "active", InterfaceService.resource_id.in_([r.resource_id for r in rows]))).all())
    contents = dict(session.execute(select(CatalogRevision.id, CatalogRevision.content).where(
        CatalogRevision.id.in_([r.revision_id for r in rows]))).tuples().all())
    hits = []
    for row in rows:
        content = contents[row.revision_id]
        matched = [item["name"] for item in content.get("data_items", [])
                   if words and any(w in item["name"].lower() for w in words)]
        hits.append(SearchHit(row.code, content["name"], content["abstract"], row.agency.name, row.agency.code,
                              row.classification, row.sharing_type, offered_modes(content),
                              content.get("update_cycle", ""), matched, services.get(row.resource_id)))
    return SearchResult(total, hits)


def _code(list_name: str, value: str) -> str:
    codes = code_list(list_name)
    if value in codes:
        return value
    for code, label in codes.items():
        if value in (label, label.split("（")[0]):
            return code
    raise ConfigError(f"{value!r} 无效，可选：{'、'.join(codes.values())} / must be one of {', '.join(codes)}")


def get_service(session: Session, *, code: str) -> InterfaceService:
    refresh_published(session)
    service = session.scalar(select(InterfaceService).where(InterfaceService.code == code,
                                                            InterfaceService.status == "active"))
    if service is None:
        raise NotFound(f"目录条目 {code} 没有已注册的接口服务（须已发布且共享方式含接口交换）"
                       f" / entry {code} has no registered interface service (published with the interface mode)")
    return service


def list_services(session: Session) -> list[InterfaceService]:
    refresh_published(session)
    return list(session.scalars(select(InterfaceService).where(InterfaceService.status == "active")
                                .order_by(InterfaceService.code)))


__all__ = ["CLASSIFICATION", "SearchHit", "SearchResult", "get_service", "list_services", "offered_modes",
           "refresh_published", "search_catalog"]
