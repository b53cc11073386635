"""Who a bearer token belongs to: a person's session token or a consumer system's API token, resolved to one
Principal (registry/people/auth.py) or AuthenticationFailed saying why."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.crypto import sha256_hex
from core.errors import AuthenticationFailed
from registry.people.auth import SESSION_PREFIX, Principal, user_principal
from registry.people.models import Agency, ApiToken, UserSession
from registry.people.tokens import TOKEN_PREFIX, authenticate, in_force
from registry.seals import edited, intact


def authenticate_principal(session: Session, *, token: str | None) -> Principal:
    """The principal behind a bearer token, or AuthenticationFailed saying why (in Chinese and English)."""
    if token and token.startswith(SESSION_PREFIX):
        record = session.scalar(select(UserSession).where(UserSession.token_sha256 == sha256_hex(token)))
        return _person(record)
    if token and not token.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed("访问令牌无效", "invalid API token")
    return _system(authenticate(session, token=token))


def credential_principal(session: Session, *, credential: str) -> Principal:
    """The principal of a credential named by ``Principal.credential`` (a signed link carries the one that
    issued it), checked as a request presenting it would be: revoked, expired or signed out is refused."""
    kind, _, number = credential.partition(":")
    if not number.isdigit() or kind not in ("session", "token"):
        raise AuthenticationFailed("凭据无效", f"unknown credential {credential!r}")
    if kind == "session":
        return _person(session.get(UserSession, int(number)))
    return _system(in_force(session.get(ApiToken, int(number))))


def _person(record: UserSession | None) -> Principal:
    if record is None:
        raise AuthenticationFailed("会话令牌无效", "invalid session token: log in again")
    if not intact(record):  # moved to another user, or its expiry or logout undone
        raise AuthenticationFailed(*edited(zh="会话", en="session"))
    if record.revoked_at is not None:
        raise AuthenticationFailed("会话已注销", "session logged out: log in again")
    if clock.as_utc(record.expires_at) <= clock.now():
        raise AuthenticationFailed("会话已过期", "session expired: log in again")
    if not record.user.active:
        raise AuthenticationFailed("用户已停用", "user deactivated")
    return replace(user_principal(record.user), credential=f"session:{record.id}")


def _system(api_token: ApiToken) -> Principal:
    agency: Agency = api_token.agency
    return Principal(kind="system", name=api_token.name, agency_id=agency.id, agency_code=agency.code,
                     display_name=api_token.name, agency_name=agency.name, credential=f"token:{api_token.id}")
