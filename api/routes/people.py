"""People and systems over HTTP: login, users, API tokens, and the audit log for inspectors (article 18)."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.deps import SessionDep, TokenDep
from api.principal import DENIED, AuditedRoute, PrincipalDep, commit_then_raise, committed
from core.errors import AccessDenied
from registry.people import tokens, users
from registry.audit.verify import export_period, verify_log
from registry.people.auth import OVERSIGHT_ROLES, require_roles

router = APIRouter(prefix="/api/v1", responses=DENIED, route_class=AuditedRoute)


class LoginCreate(BaseModel):
    username: str
    password: str


class SessionPublic(BaseModel):
    token: str
    token_type: str = "bearer"


class UserCreate(BaseModel):
    username: str
    agency: str = Field(description="agency code or name")
    roles: list[str]
    password: str
    display_name: str = ""


class UserPublic(BaseModel):
    username: str
    display_name: str
    agency_code: str
    roles: list[str]
    active: bool


class RolesUpdate(BaseModel):
    roles: list[str]


class TokenCreate(BaseModel):
    agency: str
    name: str
    days: int = 90


def _user(u: Any) -> UserPublic:
    return UserPublic(username=u.username, display_name=u.display_name, agency_code=u.agency.code, roles=u.roles,
                      active=u.active)


@router.post("/auth/login", response_model=SessionPublic, tags=["auth"])
def login(body: LoginCreate, session: SessionDep) -> SessionPublic:
    """A person's session token (8 hours); five failures in a row lock the account for 15 minutes."""
    try:
        token = users.login(session, username=body.username, password=body.password)
    except AccessDenied as failed:
        commit_then_raise(session, failed)
        raise
    return committed(session, SessionPublic(token=token))


@router.post("/auth/logout", status_code=204, tags=["auth"])
def logout(session: SessionDep, token: TokenDep, _: PrincipalDep) -> Response:
    users.logout(session, token=token or "")
    return committed(session, Response(status_code=204))


@router.get("/me", tags=["auth"])
def me(principal: PrincipalDep) -> dict[str, Any]:
    return {"kind": principal.kind, "name": principal.name, "agency_code": principal.agency_code,
            "roles": sorted(principal.roles)}


@router.post("/users", response_model=UserPublic, status_code=201, tags=["users"])
def add_user(body: UserCreate, session: SessionDep, principal: PrincipalDep) -> UserPublic:
    user = users.add_user(session, username=body.username, agency=body.agency, roles=body.roles,
                          password=body.password, display_name=body.display_name, by=principal)
    return committed(session, _user(user))


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(session: SessionDep, principal: PrincipalDep) -> list[UserPublic]:
    return [_user(u) for u in users.list_users(session, by=principal)]


@router.put("/users/{username}/roles", response_model=UserPublic, tags=["users"])
def set_roles(username: str, body: RolesUpdate, session: SessionDep, principal: PrincipalDep) -> UserPublic:
    return committed(session, _user(users.set_roles(session, username=username, roles=body.roles, by=principal)))


@router.post("/tokens", status_code=201, tags=["tokens"])
def issue_token(body: TokenCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, str]:
    """An API token for a consumer system, shown once."""
    token = tokens.issue_token(session, agency=body.agency, name=body.name, days=body.days, by=principal)
    return committed(session, {"token": token})


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(token_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    tokens.revoke_token(session, token_id=token_id, by=principal)
    return committed(session, Response(status_code=204))


@router.get("/audit/verify", tags=["audit"])
def audit_verify(session: SessionDep, principal: PrincipalDep,
                 anchor: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    require_roles(principal, *OVERSIGHT_ROLES)
    report = verify_log(session, anchor=anchor)
    return {"ok": report.ok, "count": report.count, "last_id": report.last_id, "last_hash": report.last_hash,
            "first_bad": str(report.first) if report.first else None,
            "findings": [{"event": f.event_id, "kind": f.kind, "detail": f.detail} for f in report.findings]}


@router.get("/audit/export", tags=["audit"], response_class=FileResponse)
def audit_export(session: SessionDep, principal: PrincipalDep, background: BackgroundTasks,
                 start: Annotated[date, Query(alias="from")], end: Annotated[date, Query(alias="to")]) -> FileResponse:
    """A period's log as JSON Lines; the verification anchor is in the X-Govshare-* headers."""
    require_roles(principal, *OVERSIGHT_ROLES)
    folder = tempfile.mkdtemp(prefix="govshare-audit-")
    out = Path(folder) / f"audit-{start}-{end}.jsonl"
    anchor = export_period(session, start=start, end=end, out=out)
    session.commit()

    def cleanup() -> None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)

    background.add_task(cleanup)
    headers = {"X-Govshare-Hash-Before": str(anchor["hash_before"]), "X-Govshare-Last-Hash": str(anchor["last_hash"]),
               "X-Govshare-Count": str(anchor["count"]), "X-Govshare-Log-Verified": str(anchor["log_verified"]).lower()}
    return FileResponse(out, media_type="application/x-ndjson", filename=out.name, headers=headers)
