"""People and systems over HTTP: login, users, API tokens, and the audit log for inspectors (article 18)."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import SessionDep, TokenDep
from api.principal import DENIED, AuditedRoute, PrincipalDep, commit_then_raise, committed
from core.errors import AccessDenied, ConfigError
from registry.people import tokens, users
from registry.audit.verify import anchor_of, export_period, is_hash, verify_log
from registry.people.auth import OVERSIGHT_ROLES, require_roles

router = APIRouter(prefix="/api/v1", responses=DENIED, route_class=AuditedRoute)


class LoginCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str


class SessionPublic(BaseModel):
    token: str
    token_type: str = "bearer"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field it does not know (active, by) is refused, never dropped
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
    model_config = ConfigDict(extra="forbid")
    roles: list[str]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the issuer is the caller, never a field
    agency: str
    name: str
    days: int = Field(default=90, ge=1)  # fewer: expired when shown, a credential nobody can use


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


class AnchorCreate(BaseModel):
    """An anchor's content as `govshare audit anchor` wrote it (id, hash, written_at, seal; other fields of the
    file are ignored), or an export's .anchor.json (last_hash)."""

    hash: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    last_hash: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    id: int | None = None
    written_at: str | None = None
    seal: str | None = None

    def anchor(self) -> dict[str, Any]:
        if self.hash is None and self.last_hash is None:
            raise ConfigError(zh="锚点须含 hash（`govshare audit anchor` 写出的文件）或 last_hash（导出的 .anchor.json）",
                              en="the anchor needs its hash (the file `govshare audit anchor` wrote) or last_hash "
                                 "(an export's .anchor.json)")
        if self.hash is not None and self.id is not None:
            if not (self.written_at and self.seal):
                raise ConfigError(zh="锚点文件不完整：缺少 written_at 或 seal，请原样提交 `govshare audit anchor` 写出的文件",
                                  en="the anchor lacks written_at or seal: send the file `govshare audit anchor` "
                                     "wrote as it is")
            return {"id": self.id, "hash": self.hash, "written_at": self.written_at, "seal": self.seal}
        return anchor_of({k: v for k, v in self.model_dump().items() if v is not None})


def _report(session: Session, anchor: str | dict[str, Any] | None) -> dict[str, Any]:
    report = verify_log(session, anchor=anchor)
    return {"ok": report.ok, "count": report.count, "last_id": report.last_id, "last_hash": report.last_hash,
            "first_bad": str(report.first) if report.first else None,
            "findings": [{"event": f.event_id, "kind": f.kind, "detail": f.detail} for f in report.findings]}


@router.get("/audit/verify", tags=["audit"])
def audit_verify(session: SessionDep, principal: PrincipalDep,
                 anchor: Annotated[str | None, Query(description="the anchored head's hash (64 hex digits)")] = None,
                 ) -> dict[str, Any]:
    """Verify the whole log, optionally against an anchor's hash. An anchor is never a file name here: the
    server would open whatever file the caller named (the CLI's `--anchor FILE` reads the operator's own file);
    send a sealed anchor file's content with POST instead."""
    require_roles(principal, *OVERSIGHT_ROLES)
    if anchor is not None and not is_hash(anchor):
        raise ConfigError(zh="anchor 应为锚点记录的哈希（64 位十六进制）；锚点文件请以 POST 提交其内容",
                          en="anchor must be the anchored record's hash (64 hex digits); send an anchor file's "
                             "content with POST /api/v1/audit/verify")
    return _report(session, anchor)


@router.post("/audit/verify", tags=["audit"])
def audit_verify_anchor(body: AnchorCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Verify the whole log against an anchor file's content (`govshare audit anchor`'s file, or an export's
    .anchor.json): a forged anchor, or a log cut back or rewritten after it, is reported."""
    require_roles(principal, *OVERSIGHT_ROLES)
    return _report(session, body.anchor())


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
