"""Sharing workflows over HTTP: subscriptions, applications and their PDF form, decisions, disputes, secrecy
review and agreements, grants, inbox (people, tokens and the audit log are in api/routes/people.py).

Every call names its caller with a bearer token (a person's session from /auth/login, or a system's API token);
the services check roles and agencies and audit the action; refusals come back as 403 with Chinese and English,
and are audited too.
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.principal import DENIED, AuditedRoute, PrincipalDep, committed
from core.errors import AccessDenied
from registry.sharing import agreements, applications, disputes, grants
from registry.people.auth import Principal
from core.calendar.due_days import due_status
from registry.catalog.resources import get_resource
from registry.sharing.subscriptions import subscribe
from schemas.presentation import label

router = APIRouter(prefix="/api/v1", responses=DENIED, route_class=AuditedRoute)


# Request bodies name nobody: the caller is the principal its token authenticates. A field the model does not
# declare (a "consumer", "by" or "decided_by" naming another agency or person) is a 422, never dropped.
NO_NAMES = ConfigDict(extra="forbid")


class SubscriptionCreate(BaseModel):
    model_config = NO_NAMES
    resource_code: str
    purpose: str


class ApplicationCreate(BaseModel):
    model_config = NO_NAMES
    resource_code: str
    scope: str
    purpose: str
    items: list[str]
    row_filter: dict[str, Any] | None = None
    kind: Literal["use", "external"] = "use"


class ApplicationPublic(BaseModel):
    number: str
    kind: str
    resource_code: str
    consumer_code: str
    scope: str
    purpose: str
    items: list[str]
    row_filter: dict[str, Any] | None
    status: str
    received_on: date
    due_on: date | None = Field(description="the last day of the working-day clock; null while that year's "
                                "State Council holiday schedule is not installed")
    due_status: str = Field(description="awaiting_schedule (due day unknown: 待国务院公布节假日安排), pending, "
                            "overdue or closed")
    approved_items: list[str] | None
    reasons: str | None
    decided_by: str | None
    grant_id: int | None


class ReceiptCreate(BaseModel):
    model_config = NO_NAMES
    received_on: date


class ReceiptCorrection(BaseModel):
    model_config = NO_NAMES
    received_on: date
    reason: str


class DecisionCreate(BaseModel):
    model_config = NO_NAMES
    outcome: Literal["approve", "partial", "refuse"]
    reasons: str
    approved_items: list[str] | None = None
    unmask: bool | list[str] = Field(default=False, description="lift the masking of personal identifiers: "
                                     "true for every one, or the column names")
    expires_on: date | None = None


class DisputeCreate(BaseModel):
    model_config = NO_NAMES
    grounds: str


class ConclusionCreate(BaseModel):
    model_config = NO_NAMES
    outcome: Literal["approve", "partial", "refuse"]
    conclusion: str
    approved_items: list[str] | None = None
    expires_on: date | None = None  # needed when the provider's term has ended


class SensitivityUpdate(BaseModel):
    model_config = NO_NAMES
    state_secret: bool = False
    commercial_secret: bool = False
    personal_privacy: bool = False
    personal_columns: list[str] = []
    note: str = ""


class GrantPublic(BaseModel):
    id: int
    resource_code: str
    agency_code: str
    origin: str
    status: str
    columns: list[str] | None
    row_filter: dict[str, Any] | None
    purpose: str
    unmask: bool
    unmasked_columns: list[str] | None = None
    external_use: bool
    expires_at: datetime | None


class RevokeCreate(BaseModel):
    model_config = NO_NAMES
    reason: str


def _application(a: Any) -> ApplicationPublic:
    return ApplicationPublic(number=a.number, kind=a.kind, resource_code=a.resource.code, consumer_code=a.consumer.code,
                             scope=a.scope, purpose=a.purpose, items=a.items, row_filter=a.row_filter,
                             status=a.status, received_on=a.received_on, due_on=a.due_on,
                             due_status=due_status(a.due_on, closed=a.status != "submitted"),
                             approved_items=a.approved_items, reasons=a.reasons, decided_by=a.decided_by,
                             grant_id=a.grant_id)


def _grant(g: Any) -> GrantPublic:
    return GrantPublic(id=g.id, resource_code=g.resource.code, agency_code=g.agency.code, origin=g.origin,
                       status=g.status, columns=g.columns, row_filter=g.row_filter, purpose=g.purpose, unmask=g.unmask,
                       unmasked_columns=g.unmasked_columns,
                       external_use=g.external_use, expires_at=g.expires_at)


@router.post("/subscriptions", response_model=GrantPublic, status_code=201, tags=["sharing"])
def add_subscription(body: SubscriptionCreate, session: SessionDep, principal: PrincipalDep) -> GrantPublic:
    """Subscribe the caller's agency to an unconditional resource: the grant is immediate."""
    subscribe(session, resource_code=body.resource_code, agency=principal.agency_code or "", purpose=body.purpose,
              by=principal)
    resource = get_resource(session, code=body.resource_code)
    grant = grants.live_grant(session, resource=resource, agency_id=principal.agency_id or -1)
    return committed(session, _grant(grant))


@router.post("/applications", response_model=ApplicationPublic, status_code=201, tags=["sharing"])
def apply(body: ApplicationCreate, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    """Apply for a conditional resource (or, kind=external, to publish or pass on data you hold)."""
    return committed(session, _application(applications.apply(
        session, resource_code=body.resource_code, consumer=principal.agency_code or "", scope=body.scope,
        purpose=body.purpose, items=body.items, row_filter=body.row_filter, kind=body.kind, by=principal)))


@router.get("/applications", response_model=list[ApplicationPublic], tags=["sharing"])
def list_applications(session: SessionDep, principal: PrincipalDep,
                      status: Annotated[str | None, Query()] = None) -> list[ApplicationPublic]:
    return [_application(a) for a in applications.list_applications(session, by=principal, status=status)]


def _visible(session: Session, principal: Principal, number: str) -> Any:
    application = applications.get_application(session, number=number)
    if not applications.may_see(principal, application):
        raise AccessDenied("无权查看该申请", "you may not see this application")
    return application


@router.get("/applications/{number}", response_model=ApplicationPublic, tags=["sharing"])
def get_application(number: str, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    return _application(_visible(session, principal, number))


@router.get("/applications/{number}/form.pdf", tags=["sharing"], response_class=Response)
def application_form(number: str, session: SessionDep, principal: PrincipalDep) -> Response:
    """The application form (需求申请表) as a PDF, for the written submission."""
    from registry.sharing.application_form import render_form

    application = _visible(session, principal, number)
    return Response(render_form(application), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'})


@router.post("/applications/{number}/receipt", response_model=ApplicationPublic, tags=["sharing"])
def receipt(number: str, body: ReceiptCreate, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    application = applications.record_receipt(session, number=number, received_on=body.received_on,
                                              by=principal)
    return committed(session, _application(application))


@router.post("/applications/{number}/receipt/correction", response_model=ApplicationPublic, tags=["sharing"])
def correct_receipt(number: str, body: ReceiptCorrection, session: SessionDep,
                    principal: PrincipalDep) -> ApplicationPublic:
    """Correct a recorded arrival day entered wrongly (更正收件日期), with a reason; the due day follows."""
    application = applications.correct_receipt(session, number=number, received_on=body.received_on,
                                               reason=body.reason, by=principal)
    return committed(session, _application(application))


@router.post("/applications/{number}/decision", response_model=ApplicationPublic, tags=["sharing"])
def decide(number: str, body: DecisionCreate, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    application = applications.decide(session, number=number, outcome=body.outcome, reasons=body.reasons,
                                      approved_items=body.approved_items, unmask=body.unmask,
                                      expires_on=body.expires_on, by=principal)
    return committed(session, _application(application))


@router.post("/applications/{number}/disputes", status_code=201, tags=["sharing"])
def open_dispute(number: str, body: DisputeCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    dispute = disputes.open_dispute(session, number=number, grounds=body.grounds, by=principal)
    return committed(session, {"id": dispute.id, "application": number, "status": dispute.status})


@router.post("/disputes/{dispute_id}/conclusion", tags=["sharing"])
def conclude(dispute_id: int, body: ConclusionCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    dispute = disputes.conclude_dispute(session, dispute_id=dispute_id, outcome=body.outcome,
                                        conclusion=body.conclusion, approved_items=body.approved_items,
                                        expires_on=body.expires_on, by=principal)
    return committed(session, {"id": dispute.id, "status": dispute.status, "outcome": dispute.outcome,
                                "approved_items": dispute.approved_items, "grant_id": dispute.application.grant_id})


@router.put("/resources/{code:path}/secrecy-review", tags=["sharing"])
def secrecy_review(code: str, body: SensitivityUpdate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    marks = agreements.set_sensitivity(session, resource_code=code, by=principal, **body.model_dump())
    return committed(session, {"resource_code": code, "involves_secrets": marks.involves_secrets,
                                "personal_columns": marks.personal_columns})


@router.post("/agreements", status_code=201, tags=["sharing"])
def add_agreement(session: SessionDep, principal: PrincipalDep, resource_code: Annotated[str, Form()],
                  consumer: Annotated[str, Form()], parties: Annotated[list[str], Form()],
                  signed_on: Annotated[date, Form()], valid_until: Annotated[date, Form()],
                  scan: Annotated[UploadFile, File(description="the signed agreement, scanned")]) -> dict[str, Any]:
    """Record a signed secrecy agreement (multipart form with the scan); pending grants become active."""
    suffix = Path(scan.filename or "scan.pdf").suffix or ".pdf"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scan{suffix}"
        with path.open("wb") as handle:
            while chunk := scan.file.read(1 << 20):
                handle.write(chunk)
        agreement = agreements.add_agreement(session, resource_code=resource_code, consumer=consumer,
                                             parties=parties, signed_on=signed_on, valid_until=valid_until,
                                             scan=path, by=principal)
    return committed(session, {"number": agreement.number, "scan_sha256": agreement.scan_sha256})


@router.get("/grants", response_model=list[GrantPublic], tags=["sharing"])
def list_grants(session: SessionDep, principal: PrincipalDep) -> list[GrantPublic]:
    return [_grant(g) for g in grants.list_grants(session, by=principal)]


@router.post("/grants/{grant_id}/revoke", response_model=GrantPublic, tags=["sharing"])
def revoke(grant_id: int, body: RevokeCreate, session: SessionDep, principal: PrincipalDep) -> GrantPublic:
    """Revoke at once: the next request on any channel is refused."""
    grant = grants.revoke_grant(session, grant_id=grant_id, reason=body.reason, by=principal)
    return committed(session, _grant(grant))


@router.get("/inbox", tags=["sharing"])
def inbox(session: SessionDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    return [{"id": m.id, "kind": m.kind, "kind_zh": label("inbox_kinds", m.kind), "message": m.message,
             "created_at": m.created_at,
             "application": m.application_id} for m in applications.inbox(session, by=principal)]
