"""Catalogue entries (目录条目, articles 8 and 9): every change is a new revision; history and diffs.

The entry is the `Resource` row (code, provider, stream); its elements live in `CatalogRevision.content`, the
JSON of `CatalogEntryData` (the one validated shape of schemas/catalog_metadata.py, article 8 rules included).
The provider and provider code (elements 4 and 5) are the owning agency's name and unified social credit code,
never typed in. On publication (registry/catalog/review.py) the published revision's elements are copied into
the Resource columns the exchange reads (sharing type, modes, ...), so an edit under review changes nothing
consumers see until it is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.crypto import sha256_hex
from core.errors import AccessDenied, ConfigError, NotFound, RetriableError
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.catalog.models import CatalogRevision, Resource
from registry.catalog.resources import _next_code, shown_as_published
from registry.people.agencies import get_agency
from schemas.catalog_metadata import RESOURCE_CODE, CatalogEntryData, label_of

__all__ = [
    "UNPUBLISHED",
    "Change",
    "apply_to_resource",
    "attach_stream",
    "canonical",
    "diff_revisions",
    "entry_view",
    "get_entry",
    "get_revision",
    "latest_revision",
    "list_entries",
    "list_revisions",
    "published_content",
    "published_revision",
    "upsert_entry",
]

UNPUBLISHED = ("draft", "submitted", "returned")


def canonical(data: CatalogEntryData) -> tuple[dict[str, Any], str]:
    content = data.model_dump(mode="json")
    return content, sha256_hex(json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


def apply_to_resource(resource: Resource, data: CatalogEntryData) -> None:
    """Copy the elements the exchange reads into the entry's row (on creation and on publication)."""
    resource.name, resource.abstract = data.name, data.abstract
    resource.sharing_type, resource.sharing_condition = data.sharing_type, data.sharing_condition
    resource.sharing_modes, resource.update_cycle = list(data.sharing_modes), data.update_cycle


def upsert_entry(
    session: Session,
    *,
    agency: str,
    data: CatalogEntryData,
    code: str | None = None,
    author: str,
    actor: str = "cli",
) -> CatalogRevision:
    """Create an entry (code = classification/sequence) or add a draft revision to entry `code`.

    Idempotent: content identical to the entry's latest revision creates nothing and returns that revision.
    Without a code, an entry of the same agency with the same classification and name is that entry (a
    re-imported workbook does not duplicate it). A code unknown to the registry but well-formed and matching
    the classification creates the entry under that code (a catalogue carried over from an earlier platform).
    """
    owner = get_agency(session, ref=agency)
    checked_name(data.name, what_zh=label_of("name"), what_en="a resource name")
    for item in data.data_items:
        checked_name(item.name, what_zh=label_of("name", data_item=True), what_en="a data item name")
    resource = None
    if code is None:
        resource = session.scalar(select(Resource).where(
            Resource.agency_id == owner.id, Resource.classification == data.classification,
            Resource.name == data.name).order_by(Resource.id).limit(1))
    else:
        code = code.strip()
        resource = session.scalar(select(Resource).where(Resource.code == code))
        if resource is None and not RESOURCE_CODE.match(code):
            raise ConfigError(f"信息资源代码 {code!r} 格式不对，应为 分类代码/顺序号，如 101001/0001"
                              f" / resource code must be classification/sequence")
    if resource is not None and resource.agency_id != owner.id:
        raise AccessDenied(f"目录条目 {resource.code} 属于 {resource.agency.name}，不能由 {owner.name} 修改",
                           f"entry {resource.code} belongs to another agency")
    prefix = (resource.code if resource is not None else code or "").rpartition("/")[0]
    if prefix and prefix != data.classification:
        raise ConfigError(
            f"{label_of('classification')} {data.classification} 与信息资源代码 {resource.code if resource else code} "
            f"的分类部分 {prefix} 不一致；分类变更请新建目录条目 / the classification is part of the resource code and "
            f"cannot change: catalogue a new entry instead")
    created = resource is None
    if created:
        resource = Resource(code=code or _next_code(session, data.classification), classification=data.classification,
                            agency_id=owner.id, stream={}, catalog_status="draft")
        apply_to_resource(resource, data)
        session.add(resource)
        try:
            session.flush()
        except IntegrityError:
            # Two agencies' systems numbered the same classification at the same moment; the unique code
            # refused the second: the whole transaction rolls back and can simply be repeated.
            raise RetriableError(f"信息资源代码 {resource.code} 刚被并发占用，请重试 / the code was taken concurrently: "
                                 "retry") from None
    latest = latest_revision(session, resource=resource)
    if data.release_date is None and (released := _released_on(session, resource)):
        data = data.model_copy(update={"release_date": released})  # set at publication, kept by later revisions
    content, digest = canonical(data)
    if latest is not None and latest.content_sha256 == digest:
        return latest
    # An unreviewed draft or a pending submission is replaced by the new revision; a returned one keeps its
    # status (and its comments) as the record of the review.
    for pending in session.scalars(select(CatalogRevision).where(
            CatalogRevision.resource_id == resource.id, CatalogRevision.status.in_(("draft", "submitted")))):
        pending.status = "superseded"
    revision = CatalogRevision(resource_id=resource.id, number=(latest.number + 1) if latest else 1, content=content,
                               content_sha256=digest, status="draft", author=author, review_comments={})
    session.add(revision)
    session.flush()
    record_event(session, actor=actor, action="catalog.create" if created else "catalog.revise",
                 agency_code=owner.code, resource_code=resource.code,
                 detail={"revision": revision.number, "author": author, "name": data.name})
    flag_duplicate_collection(session, resource=resource, revision=revision, data=data, actor=actor)
    if resource.catalog_status == "published":
        from registry.catalog.obligations import open_update_obligation

        # Article 10: the elements changed, so the published entry must be brought up to date in 2 working days.
        open_update_obligation(session, resource_code=resource.code, kind="elements", actor=actor,
                               reason=f"目录要素调整（第{revision.number}版待发布） / elements changed")
    return revision


def _released_on(session: Session, resource: Resource):  # noqa: ANN202 - date | None
    """The release date (发布日期) the entry got at its first publication, if it was published."""
    from datetime import date

    dates = [r.content.get("release_date") for r in session.scalars(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.published_at.is_not(None)))]
    found = min((d for d in dates if d), default=None)
    return date.fromisoformat(found) if found else None


def duplicate_collection_findings(session: Session, *, resource: Resource, data: CatalogEntryData) -> list:
    """一数一源 (article 11): findings for data items carrying an element another agency is authoritative for."""
    from registry.catalog.elements import check_duplicate_collection

    codes = [item.element_code for item in data.data_items if item.element_code]
    if not codes:
        return []
    return check_duplicate_collection(session, agency_code=resource.agency.code, element_codes=codes)


def flag_duplicate_collection(session: Session, *, resource: Resource, revision: CatalogRevision,
                              data: CatalogEntryData, actor: str) -> list:
    """Record the revision's duplicate-collection findings in the audit log, the evidence supervision reads."""
    findings = [f for f in duplicate_collection_findings(session, resource=resource, data=data)
                if f.kind == "duplicate_collection"]
    if findings:
        record_event(session, actor=actor, action="catalog.duplicate_collection", result="flagged",
                     agency_code=resource.agency.code, resource_code=resource.code,
                     detail={"revision": revision.number,
                             "findings": [{"element": f.element_code, "authoritative_agency": f.authoritative_agency_code,
                                           "resource": f.resource_code, "message": f.message} for f in findings]})
    return findings


def get_entry(session: Session, *, code: str) -> Resource:
    entry = session.scalar(select(Resource).where(Resource.code == code.strip()))
    if entry is None:
        raise missing_entry(code)
    return entry


def missing_entry(code: str) -> NotFound:
    """The answer for a code no entry has, and for one another agency may not know of (resources.hidden_from)."""
    return NotFound(f"没有目录条目 {code!r}（`govshare catalog list` 列出目录） / no catalogue entry {code!r}")


def list_entries(session: Session, *, agency: str | None = None, published_only: bool = False,
                 with_subordinates: bool = False, actor: str) -> list[Resource]:
    """Entries by code; of one agency, or with `with_subordinates` of it and the agencies under it (a city
    agency's catalogue with its district agencies' catalogues, article 25). `actor` is who lists them: an edited
    entry kept out of the published ones is recorded as refused to them."""
    query = select(Resource).order_by(Resource.code)
    if agency:
        top = get_agency(session, ref=agency)
        query = query.where(Resource.agency_id.in_(_agency_tree(session, top.id) if with_subordinates else [top.id]))
    if published_only:
        query = query.where(Resource.catalog_status == "published")
        return [r for r in session.scalars(query)
                if shown_as_published(session, resource=r, actor=actor, where="catalogue list")]
    return list(session.scalars(query))


def _agency_tree(session: Session, root: int) -> list[int]:
    from registry.people.models import Agency

    found, frontier = [root], [root]
    while frontier:
        frontier = [i for i in session.scalars(select(Agency.id).where(Agency.parent_id.in_(frontier)))
                    if i not in found]
        found += frontier
    return found


def list_revisions(session: Session, *, resource: Resource) -> list[CatalogRevision]:
    return list(session.scalars(select(CatalogRevision).where(CatalogRevision.resource_id == resource.id)
                                .order_by(CatalogRevision.number)))


def latest_revision(session: Session, *, resource: Resource) -> CatalogRevision | None:
    return session.scalar(select(CatalogRevision).where(CatalogRevision.resource_id == resource.id)
                          .order_by(CatalogRevision.number.desc()).limit(1))


def published_revision(session: Session, *, resource: Resource) -> CatalogRevision | None:
    return session.scalar(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.status == "published"))


def catalogued_columns(session: Session, *, resource: Resource) -> list[str] | None:
    """The columns the published entry's data items (信息项) name: what a consumer may be granted of it. None
    when the entry names none (then the version's columns are the items)."""
    revision = published_revision(session, resource=resource)
    return item_columns(revision) if revision is not None else None


def item_columns(revision: CatalogRevision) -> list[str] | None:
    """The columns a revision's data items name, or None when it names none."""
    return [item["column"] for item in revision.content.get("data_items", []) if item.get("column")] or None


def item_names(session: Session, *, resource: Resource) -> dict[str, str]:
    """Each column's data item name (信息项名称) as the published revision lists it, or, for a column it no
    longer lists, as the latest earlier revision did: what a consumer is told of items changed on its grant."""
    names: dict[str, str] = {}
    revisions = session.scalars(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.status.in_(("published", "superseded")))
        .order_by((CatalogRevision.status == "published").desc(), CatalogRevision.number.desc()))
    for revision in revisions:
        for item in revision.content.get("data_items", []):
            if item.get("column") and item.get("name"):
                names.setdefault(item["column"], item["name"])
    return names


def get_revision(session: Session, *, resource: Resource, number: int) -> CatalogRevision:
    revision = session.scalar(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.number == number))
    if revision is None:
        count = session.scalar(select(func.count()).where(CatalogRevision.resource_id == resource.id))
        raise NotFound(f"目录条目 {resource.code} 没有第{number}版（共{count}版） / no revision {number}")
    return revision


def published_content(session: Session, *, code: str) -> CatalogEntryData | None:
    """The elements consumers see, or None while the entry has no published revision."""
    revision = published_revision(session, resource=get_entry(session, code=code))
    return CatalogEntryData.model_validate(revision.content) if revision else None


def entry_view(resource: Resource, revision: CatalogRevision | None) -> dict[str, Any]:
    """All 13 core elements of one revision, provider and code included (for pages, API and exports)."""
    content = dict(revision.content) if revision else {}
    return {"code": resource.code, "provider": resource.agency.name, "provider_code": resource.agency.code,
            **content, "revision": revision.number if revision else None,
            "status": revision.status if revision else resource.catalog_status}


@dataclass(frozen=True)
class Change:
    """One difference between two revisions: an element, or one data item (by name) and its field."""

    element: str  # field name, or "data_items"
    label: str  # Chinese label, e.g. 共享类型 or 信息项「企业名称」·数据类型
    item: str | None  # data item name for data_items changes
    kind: str  # changed / added / removed
    old: Any
    new: Any


def diff_revisions(session: Session, *, code: str, old: int, new: int) -> list[Change]:
    """Element by element, and data item by data item (matched by name), what changed from `old` to `new`."""
    resource = get_entry(session, code=code)
    a = get_revision(session, resource=resource, number=old).content
    b = get_revision(session, resource=resource, number=new).content
    changes: list[Change] = []
    for field in dict.fromkeys([*a, *b]):
        if field == "data_items" or a.get(field) == b.get(field):
            continue
        changes.append(Change(field, label_of(field), None, "changed", a.get(field), b.get(field)))
    old_items = {item["name"]: item for item in a.get("data_items", [])}
    new_items = {item["name"]: item for item in b.get("data_items", [])}
    for name in dict.fromkeys([*old_items, *new_items]):
        before, after = old_items.get(name), new_items.get(name)
        if before is None:
            changes.append(Change("data_items", f"信息项「{name}」", name, "added", None, after))
        elif after is None:
            changes.append(Change("data_items", f"信息项「{name}」", name, "removed", before, None))
        else:
            for key in dict.fromkeys([*before, *after]):
                if before.get(key) != after.get(key):
                    label = f"信息项「{name}」·{label_of(key, data_item=True)}"
                    changes.append(Change("data_items", label, name, "changed", before.get(key), after.get(key)))
    return changes


def attach_stream(session: Session, *, code: str, source: str, table: str | None = None, query: str | None = None,
                  primary_key: list[str] | None = None, cursor_column: str | None = None,
                  actor: str = "cli") -> Resource:
    """Feed a catalogue entry from one of its provider's sources (the exchange side of the entry)."""
    from registry.exchange.streams import set_stream

    entry = get_entry(session, code=code)
    if bool(table) == bool(query):
        raise ConfigError("给出 --table 或 --query 之一 / give either a table or a query")
    set_stream(session, resource=entry, source=source, table=table, query=query, primary_key=primary_key,
               cursor_column=cursor_column, actor=actor, action="catalog.stream")
    return entry
