"""The sharing invariant (共享授权核查): every grant in force rests on a live basis.

A grant is in force (active, or pending its secrecy agreement) only while its resource's catalogue entry is
published and either the subscription it came from is live on an unconditionally shared entry, or the
application it came from stands approved (in whole or in part) with this very grant as its outcome. A refusal,
a withdrawn entry or a revoked subscription ends the grant where it happens; this check finds any grant that
escaped (a bug, an edited table) so supervision sees it, and any grant whose row no longer matches its seal
(registry/seals.py: edited outside the hub), and every other sealed row (an API token, a user, a session, a
designation, a resource) edited outside the hub, and any grant naming a column its entry does not list (made
before grants followed the entry's items: served narrowed, kept on record until the entry's next republication).
`govshare sharing check` and the daily supervision DAG run it; it reads only the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.entries import catalogued_columns
from registry.orm import Base
from registry.seals import SEALED, broken_rows, intact
from registry.sharing.grants import LIVE, filter_columns, shareable_columns
from registry.sharing.models import Application, Grant, Subscription

APPROVED = ("approved", "partial")


@dataclass(frozen=True)
class BaselessGrant:
    grant_id: int
    resource_code: str
    agency_code: str
    origin: str
    problem_zh: str
    problem_en: str


def _problem(session: Session, grant: Grant) -> tuple[str, str] | None:
    if not intact(grant):
        return ("授权记录在平台之外被改动（封签不符），读取已被拒绝", "the grant record was changed outside the hub "
                "(its seal does not match): reads on it are refused")
    resource = grant.resource
    if resource.catalog_status != "published":
        return (f"目录条目状态为 {resource.catalog_status}，未发布", f"the catalogue entry is {resource.catalog_status}, "
                "not published")
    if resource.sharing_type == "not_shared":
        return "资源不予共享", "the resource is not shared"
    if grant.application_id is not None:
        application = session.get(Application, grant.application_id)
        # a disputed partial approval stands until the coordination office's conclusion replaces it
        if application is None or application.status not in (*APPROVED, "disputed"):
            status = application.status if application else "missing"
            return f"申请状态为 {status}，未获批准", f"its application is {status}, not approved"
        if application.grant_id != grant.id:
            return "申请的结果已是另一授权", "its application's outcome is another grant"
        return None
    subscription = session.scalar(select(Subscription).where(Subscription.resource_id == grant.resource_id,
                                                             Subscription.agency_id == grant.agency_id))
    if subscription is None or subscription.status not in ("active", "pending"):
        return "没有有效的订阅或已批准的申请", "neither a live subscription nor an approved application"
    if resource.sharing_type != "unconditional":
        return "按需共享资源的授权须经申请批准", "a conditional resource is granted only by an approved application"
    return None


def baseless_grants(session: Session) -> list[BaselessGrant]:
    """Every grant in force without an approved application or a live subscription on a published entry."""
    found = []
    for grant in session.scalars(select(Grant).where(Grant.status.in_(LIVE)).order_by(Grant.id)):
        if problem := _problem(session, grant):
            found.append(BaselessGrant(grant_id=grant.id, resource_code=grant.resource.code,
                                       agency_code=grant.agency.code, origin=grant.origin,
                                       problem_zh=problem[0], problem_en=problem[1]))
    return found


@dataclass(frozen=True)
class EditedRow:
    table: str
    row_id: int


def edited_rows(session: Session) -> list[EditedRow]:
    """Every sealed row, beside grants (above), whose seal no longer matches: edited outside the hub, refused."""
    return [EditedRow(table=name, row_id=row_id) for name in SEALED if name != "grants"
            for row_id in broken_rows(session, Base.metadata.tables[name])]


@dataclass(frozen=True)
class UnlistedGrantColumns:
    grant_id: int
    resource_code: str
    agency_code: str
    columns: list[str]  # named by the grant or its row condition, not shareable (neither an item nor the key)


def unlisted_grant_columns(session: Session) -> list[UnlistedGrantColumns]:
    """Every grant in force naming, or choosing rows by, a column its published entry does not list beside the
    registered key (登记的主键). Reads never serve such a column (visibility.grant_scope); the record still says
    more than may be shared, so supervision sees it until the entry's next republication brings the grant in line."""
    found = []
    for grant in session.scalars(select(Grant).where(Grant.status.in_(LIVE)).order_by(Grant.id)):
        named = [*(grant.columns or []), *filter_columns(grant.row_filter)]
        if not named:
            continue
        shareable = shareable_columns(grant.resource, catalogued_columns(session, resource=grant.resource))
        if shareable is not None and (outside := list(dict.fromkeys(c for c in named if c not in shareable))):
            found.append(UnlistedGrantColumns(grant_id=grant.id, resource_code=grant.resource.code,
                                              agency_code=grant.agency.code, columns=outside))
    return found
