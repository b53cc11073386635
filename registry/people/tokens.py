"""API tokens for consumer systems (机器凭证): random, shown once, stored as a SHA-256 digest."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.crypto import sha256_hex
from core.errors import AuthenticationFailed, ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.people.agencies import get_agency
from registry.people.auth import PEOPLE_ROLES, Principal, console, require
from registry.people.models import ApiToken
from registry.seals import edited, intact

TOKEN_PREFIX = "gsk_"


MAX_DAYS = 366


def issue_token(session: Session, *, agency: str, name: str, days: int = 90, actor: str = "cli",
                by: "Principal | None" = None) -> str:
    """Create a token and return it in clear; it cannot be shown again. Scoped to one agency, expiring."""
    by = by or console(actor)
    owner = get_agency(session, ref=agency)
    # The operator runs the platform and acts for no agency: it cannot mint an agency's credentials.
    require(by, by.kind == "console" or by.acts_for(owner.id, roles=PEOPLE_ROLES),
            zh="只有本机构管理员可以签发本机构令牌（平台运维不代表任何机构）",
            en="only the agency's own administrator may issue its tokens (the platform operator acts for no agency)")
    checked_name(name, what_zh="令牌名称", what_en="a token name")
    if days > MAX_DAYS:
        raise ConfigError(f"a token is valid for at most {MAX_DAYS} days; issue a new one before it expires")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(agency_id=owner.id, name=name, token_sha256=sha256_hex(token),
                         expires_at=clock.now() + timedelta(days=days)))
    session.flush()
    record_event(session, actor=by.actor, action="token.issue", agency_code=owner.code,
                 detail={"name": name, "days": days})
    return token


def list_tokens(session: Session, *, agency: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if agency:
        query = query.where(ApiToken.agency_id == get_agency(session, ref=agency).id)
    return list(session.scalars(query))


def revoke_token(session: Session, *, token_id: int, by: "Principal | None" = None, actor: str = "cli") -> ApiToken:
    """Revoke at once: the next request with it is refused (401). The platform operator may disable any token."""
    by = by or console(actor)
    record = session.get(ApiToken, token_id)
    if record is None:
        raise NotFound(f"no API token {token_id}; `govshare token list` shows them")
    require(by, by.kind == "console" or by.acts_for(record.agency_id, roles=PEOPLE_ROLES)
            or "operator" in by.roles,
            zh="只有本机构管理员或平台运维可以吊销令牌",
            en="only the agency's administrator or the platform operator may revoke its tokens")
    if record.revoked_at is None:
        record.revoked_at = clock.now()
        record_event(session, actor=by.actor, action="token.revoke", agency_code=record.agency.code,
                     detail={"token": record.id, "name": record.name})
    return record


def authenticate(session: Session, *, token: str | None) -> ApiToken:
    """The token record for a presented token, or AuthenticationFailed saying why."""
    if not token:
        raise AuthenticationFailed("缺少访问令牌", "missing API token: send `Authorization: Bearer <token>`")
    return in_force(session.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token))))


def in_force(record: ApiToken | None) -> ApiToken:
    """The token record if it may still act (not revoked, not expired), or AuthenticationFailed saying why."""
    if record is None:
        raise AuthenticationFailed("访问令牌无效", "invalid API token")
    if not intact(record):
        # its agency, expiry and revocation are what was edited: the audit names the token, never its agency
        raise AuthenticationFailed(*edited(zh="访问令牌", en="API token"), token_id=record.id)
    if record.revoked_at is not None:
        # which credential and whose: the audit names them (never the token) so supervision can act (23.4)
        raise AuthenticationFailed("访问令牌已吊销", "API token revoked", token_id=record.id,
                                   agency_code=record.agency.code)
    if record.expires_at is not None and clock.as_utc(record.expires_at) <= clock.now():
        raise AuthenticationFailed("访问令牌已过期", "API token expired")
    return record
