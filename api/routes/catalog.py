"""The catalogue online (在线编制, article 9) and its review (article 10, 19) over HTTP.

Every action acts as the caller the bearer token authenticates, never as a name in the request. An agency's
system (API token) may compile drafts of its own agency's entries (the author recorded is the system); what the
measures give to a person (submit, confidentiality review, review decision) needs a person signed in with a
session token, checked against their dated designation on the day exactly as on the command line (`--as`), and
that person is what the revision and the audit record. A person compiling an entry must be its agency's
designated cataloguer. Anyone authenticated reads published entries.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.principal import AuditedRoute, PrincipalDep
from api.schemas import Problem
from core.errors import AccessDenied, NotFound
from registry.catalog.entries import (
    diff_revisions,
    entry_view,
    get_entry,
    latest_revision,
    list_entries,
    list_revisions,
    missing_entry,
    published_revision,
    upsert_entry,
)
from registry.catalog.models import CatalogRevision, Resource
from registry.catalog.resources import hidden_from
from registry.catalog.review import (
    record_confidentiality_review,
    review_revision,
    submit_revision,
)
from registry.people.auth import Principal
from core.calendar.due_days import AWAITING_SCHEDULE
from registry.people.persons import act_day, require_designated
from registry.catalog.obligations import overdue_obligations, unscheduled_obligations, overdue_reconfirmations
from schemas.catalog_metadata import CatalogEntryData

router = APIRouter(prefix="/api/v1/catalog", tags=["catalogue"], route_class=AuditedRoute)
ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}


class EntryCreate(BaseModel):
    """A new entry: its elements; the provider is the calling system's agency."""

    model_config = ConfigDict(extra="forbid")  # no author name in the body: the caller is the author

    data: CatalogEntryData


class EntryUpdate(EntryCreate):
    """A change of an entry's elements: a new draft revision (idempotent when nothing changed)."""


class EntryPublic(CatalogEntryData):
    """The 13 core elements of one revision, with the generated code and the provider."""

    code: str
    provider: str
    provider_code: str
    revision: int | None
    status: str


class RevisionPublic(BaseModel):
    number: int
    status: str
    author: str
    created_at: datetime
    submitted_by: str | None
    reviewed_by: str | None
    review_comments: dict[str, Any]
    content_sha256: str
    published_at: datetime | None


class ChangePublic(BaseModel):
    element: str
    label: str
    item: str | None
    kind: str
    old: Any
    new: Any


class ConfidentialityCreate(BaseModel):
    """The signed-in person (a designated reviewer or data resource administrator) records it."""

    model_config = ConfigDict(extra="forbid")

    passed: bool
    note: str = ""


class ReviewCreate(BaseModel):
    """The signed-in person decides: a designated reviewer of the entry's agency, never its author or submitter."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    comments: dict[str, str] = Field(default_factory=dict, description="要素 (field or Chinese label) -> 意见")
    item_comments: dict[str, str] = Field(default_factory=dict, description="信息项名称 -> 意见")


class OverduePublic(BaseModel):
    code: str
    name: str
    kind: str
    detail: str
    due_on: date | None = Field(description="null while the due year's working-day schedule is not installed")
    due_status: str = Field(description="overdue, or awaiting_schedule (due day unknown: 待国务院公布节假日安排)")


def owned_entry(code: str, session: SessionDep, caller: PrincipalDep) -> Resource:
    entry = get_entry(session, code=code)
    if hidden_from(entry, agency_id=caller.agency_id):
        raise missing_entry(code)  # not published: as if no such entry, to anyone but its provider
    if entry.agency_id != caller.agency_id:
        raise AccessDenied("只有提供方机构可以查看或修改该目录条目的未发布内容",
                           "only the provider agency may see or change this entry's unpublished content")
    return entry


OwnedEntryDep = Annotated[Resource, Depends(owned_entry)]


def committed(session: Session) -> None:
    """Commit before answering: the session dependency commits only after the response is sent, and a caller's
    next request (submit right after create) must see this one's effect."""
    session.commit()


def _public(entry: Resource, revision: CatalogRevision | None) -> EntryPublic:
    return EntryPublic.model_validate(entry_view(entry, revision))


def person_account(caller: Principal) -> str:
    """The signed-in person's account; a system token cannot act for a person (article 10: designated staff)."""
    if caller.kind != "user":
        raise AccessDenied("该操作须由指定人员本人登录办理，系统令牌不能代替个人",
                           f"a designated person must sign in to do this; {caller.actor} is not a person")
    return caller.name


def _author(session: Session, caller: Principal, entry_agency_id: int) -> str:
    """A system compiles as itself; a person must be the agency's designated cataloguer on the day."""
    if caller.kind != "user":
        return caller.actor
    require_designated(session, account=caller.name, agency_id=entry_agency_id, roles=("cataloguer",),
                       on=act_day(None))
    return caller.name


@router.get("/entries", response_model=list[EntryPublic], responses=ERRORS)
def entries(session: SessionDep, caller: PrincipalDep,
            agency: Annotated[str | None, Query(description="提供方代码或名称")] = None) -> list[EntryPublic]:
    """Published entries (已发布目录) with every core element."""
    listed = [_public(e, published_revision(session, resource=e))
              for e in list_entries(session, agency=agency, published_only=True, actor=caller.actor)]
    session.commit()  # an edited entry's refusal recorded before the answer leaves
    return listed


@router.post("/entries", response_model=EntryPublic, status_code=201, responses=ERRORS)
def create_entry(body: EntryCreate, session: SessionDep, caller: PrincipalDep) -> EntryPublic:
    """Compile a new entry (draft revision 1) for the caller's agency."""
    if caller.agency_id is None:
        raise AccessDenied("调用方不属于任何机构", "the caller belongs to no agency")
    revision = upsert_entry(session, agency=caller.agency_code or "", data=body.data,
                            author=_author(session, caller, caller.agency_id), actor=caller.actor)
    committed(session)
    return _public(revision.resource, revision)


@router.get("/entries/{code:path}/revisions", response_model=list[RevisionPublic], responses=ERRORS)
def revisions(entry: OwnedEntryDep, session: SessionDep) -> list[RevisionPublic]:
    """Every revision of an own entry, oldest first."""
    return [RevisionPublic.model_validate(r, from_attributes=True) for r in list_revisions(session, resource=entry)]


@router.get("/entries/{code:path}/diff", response_model=list[ChangePublic], responses=ERRORS)
def diff(entry: OwnedEntryDep, session: SessionDep, old: int, new: int) -> list[ChangePublic]:
    """Per element and per data item, what changed between two revisions."""
    return [ChangePublic(**vars(c)) for c in diff_revisions(session, code=entry.code, old=old, new=new)]


@router.get("/entries/{code:path}/draft", response_model=EntryPublic, responses=ERRORS)
def draft(entry: OwnedEntryDep, session: SessionDep) -> EntryPublic:
    """The latest revision of an own entry, whatever its status."""
    latest = latest_revision(session, resource=entry)
    if latest is None:  # registered with `resource add`, never catalogued: no elements to show
        raise NotFound(f"目录条目 {entry.code} 尚无编目内容，请先编写目录（PUT 该条目） / entry {entry.code} has no "
                       f"catalogue revision yet: compile it first (PUT /api/v1/catalog/entries/{entry.code})")
    return _public(entry, latest)


@router.post("/entries/{code:path}/submit", response_model=RevisionPublic, responses=ERRORS)
def submit(entry: OwnedEntryDep, session: SessionDep, caller: PrincipalDep) -> RevisionPublic:
    """Submit the latest draft for review, as the signed-in designated cataloguer."""
    revision = submit_revision(session, code=entry.code, account=person_account(caller))
    committed(session)
    return RevisionPublic.model_validate(revision, from_attributes=True)


@router.post("/entries/{code:path}/confidentiality", status_code=201, responses=ERRORS)
def confidentiality(entry: OwnedEntryDep, body: ConfidentialityCreate, session: SessionDep,
                    caller: PrincipalDep) -> dict[str, Any]:
    """Record the agency's confidentiality review (保密审查, article 19) of the pending revision."""
    review = record_confidentiality_review(session, code=entry.code, account=person_account(caller),
                                           passed=body.passed, note=body.note)
    committed(session)
    return {"code": entry.code, "passed": review.passed, "reviewed_on": review.reviewed_on}


@router.post("/entries/{code:path}/review", response_model=RevisionPublic, responses=ERRORS)
def review(entry: OwnedEntryDep, body: ReviewCreate, session: SessionDep, caller: PrincipalDep) -> RevisionPublic:
    """Approve (publish) or return the submitted revision with comments per element and data item."""
    revision = review_revision(session, code=entry.code, account=person_account(caller), approve=body.approve,
                               comments=body.comments, item_comments=body.item_comments)
    committed(session)
    return RevisionPublic.model_validate(revision, from_attributes=True)


@router.put("/entries/{code:path}", response_model=EntryPublic, responses=ERRORS)
def update_entry(entry: OwnedEntryDep, body: EntryUpdate, session: SessionDep, caller: PrincipalDep) -> EntryPublic:
    """Change an own entry: a new draft revision; the published one stays visible until review."""
    revision = upsert_entry(session, agency=entry.agency.code, data=body.data, code=entry.code,
                            author=_author(session, caller, entry.agency_id), actor=caller.actor)
    committed(session)
    return _public(entry, revision)


@router.get("/entries/{code:path}", response_model=EntryPublic, responses=ERRORS)
def entry(code: str, session: SessionDep, caller: PrincipalDep) -> EntryPublic:
    """The published elements of an entry (404 while it has none)."""
    found = get_entry(session, code=code)
    published = published_revision(session, resource=found)
    if published is None and found.agency_id != caller.agency_id:
        raise missing_entry(code)  # another agency learns nothing of an entry not published, not even that it is
    if published is None:
        raise NotFound(f"目录条目 {code} 尚未发布 / entry {code} has no published revision")
    return _public(found, published)


@router.get("/overdue", response_model=list[OverduePublic], responses=ERRORS)
def overdue(session: SessionDep, caller: PrincipalDep) -> list[OverduePublic]:
    """The calling agency's late updates (2 working days) and missed yearly reconfirmations."""
    if caller.agency_code is None:
        raise AccessDenied("调用方不属于任何机构", "the caller belongs to no agency")
    agency = caller.agency_code
    late = [OverduePublic(code=o.resource.code, name=o.resource.name, kind="update", detail=o.reason, due_on=o.due_on,
                          due_status="overdue")
            for o in overdue_obligations(session, agency=agency)]
    unknown = [OverduePublic(code=o.resource.code, name=o.resource.name, kind="calendar_missing",
                             detail=f"{o.reason}: {o.due_problem}", due_on=None, due_status=AWAITING_SCHEDULE)
               for o in unscheduled_obligations(session, agency=agency)]
    return late + unknown + [OverduePublic(code=m.resource.code, name=m.resource.name, kind="reconfirmation",
                                           detail=f"{m.missed_year} 年度未全面维护", due_on=m.due_on,
                                           due_status="overdue")
                             for m in overdue_reconfirmations(session, agency=agency)]
