"""The catalogue online (在线编制, article 9) and its review (article 10, 19) over HTTP.

An agency's system authenticates with its API token: it may compile and submit its own agency's entries; the
designated people act by their account (`submitted_by`, `reviewer`), checked against their dated designations
exactly as on the command line. Anyone authenticated reads published entries.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.deps import ConsumerDep, SessionDep
from api.schemas import Problem
from core.errors import AccessDenied, NotFound
from registry.catalog import (
    diff_revisions,
    entry_view,
    get_entry,
    latest_revision,
    list_entries,
    list_revisions,
    published_revision,
    upsert_entry,
)
from registry.catalog_models import CatalogRevision
from registry.catalog_review import (
    record_confidentiality_review,
    review_revision,
    submit_revision,
)
from registry.due_days import AWAITING_SCHEDULE
from registry.models import ApiToken, Resource
from registry.obligations import overdue_obligations, unscheduled_obligations, overdue_reconfirmations
from schemas.catalog_metadata import CatalogEntryData

router = APIRouter(prefix="/api/v1/catalog", tags=["catalogue"])
ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}


class EntryCreate(BaseModel):
    """A new entry: its elements; the provider is the calling system's agency."""

    data: CatalogEntryData
    author: str | None = Field(default=None, description="编目人员账号; default the calling system")


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


class SubmitCreate(BaseModel):
    submitted_by: str = Field(description="编目人员账号 (designated cataloguer)")


class ConfidentialityCreate(BaseModel):
    reviewer: str = Field(description="审查人账号 (designated reviewer or administrator)")
    passed: bool
    note: str = ""


class ReviewCreate(BaseModel):
    reviewer: str = Field(description="审核人员账号 (designated reviewer, not the author)")
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


def owned_entry(code: str, session: SessionDep, caller: ConsumerDep) -> Resource:
    entry = get_entry(session, code=code)
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


def _author(body: EntryCreate, caller: ApiToken) -> str:
    return body.author or f"system:{caller.name}"


@router.get("/entries", response_model=list[EntryPublic], responses=ERRORS)
def entries(session: SessionDep, _: ConsumerDep,
            agency: Annotated[str | None, Query(description="提供方代码或名称")] = None) -> list[EntryPublic]:
    """Published entries (已发布目录) with every core element."""
    return [_public(e, published_revision(session, resource=e))
            for e in list_entries(session, agency=agency, published_only=True)]


@router.post("/entries", response_model=EntryPublic, status_code=201, responses=ERRORS)
def create_entry(body: EntryCreate, session: SessionDep, caller: ConsumerDep) -> EntryPublic:
    """Compile a new entry (draft revision 1) for the calling system's agency."""
    revision = upsert_entry(session, agency=caller.agency.code, data=body.data, author=_author(body, caller),
                            actor=f"token:{caller.name}")
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
    return _public(entry, latest_revision(session, resource=entry))


@router.post("/entries/{code:path}/submit", response_model=RevisionPublic, responses=ERRORS)
def submit(entry: OwnedEntryDep, body: SubmitCreate, session: SessionDep, caller: ConsumerDep) -> RevisionPublic:
    revision = submit_revision(session, code=entry.code, account=body.submitted_by,
                               actor=f"token:{caller.name}")
    committed(session)
    return RevisionPublic.model_validate(revision, from_attributes=True)


@router.post("/entries/{code:path}/confidentiality", status_code=201, responses=ERRORS)
def confidentiality(entry: OwnedEntryDep, body: ConfidentialityCreate, session: SessionDep,
                    caller: ConsumerDep) -> dict[str, Any]:
    """Record the agency's confidentiality review (保密审查, article 19) of the pending revision."""
    review = record_confidentiality_review(session, code=entry.code, account=body.reviewer, passed=body.passed,
                                           note=body.note, actor=f"token:{caller.name}")
    committed(session)
    return {"code": entry.code, "passed": review.passed, "reviewed_on": review.reviewed_on}


@router.post("/entries/{code:path}/review", response_model=RevisionPublic, responses=ERRORS)
def review(entry: OwnedEntryDep, body: ReviewCreate, session: SessionDep, caller: ConsumerDep) -> RevisionPublic:
    """Approve (publish) or return the submitted revision with comments per element and data item."""
    revision = review_revision(session, code=entry.code, account=body.reviewer, approve=body.approve,
                               comments=body.comments, item_comments=body.item_comments,
                               actor=f"token:{caller.name}")
    committed(session)
    return RevisionPublic.model_validate(revision, from_attributes=True)


@router.put("/entries/{code:path}", response_model=EntryPublic, responses=ERRORS)
def update_entry(entry: OwnedEntryDep, body: EntryUpdate, session: SessionDep, caller: ConsumerDep) -> EntryPublic:
    """Change an own entry: a new draft revision; the published one stays visible until review."""
    revision = upsert_entry(session, agency=caller.agency.code, data=body.data, code=entry.code,
                            author=_author(body, caller), actor=f"token:{caller.name}")
    committed(session)
    return _public(entry, revision)


@router.get("/entries/{code:path}", response_model=EntryPublic, responses=ERRORS)
def entry(code: str, session: SessionDep, _: ConsumerDep) -> EntryPublic:
    """The published elements of an entry (404 while it has none)."""
    found = get_entry(session, code=code)
    published = published_revision(session, resource=found)
    if published is None:
        raise NotFound(f"目录条目 {code} 尚未发布 / entry {code} has no published revision")
    return _public(found, published)


@router.get("/overdue", response_model=list[OverduePublic], responses=ERRORS)
def overdue(session: SessionDep, caller: ConsumerDep) -> list[OverduePublic]:
    """The calling agency's late updates (2 working days) and missed yearly reconfirmations."""
    agency = caller.agency.code
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
