"""API tokens for consumer systems (机器凭证): random, shown once, stored as a SHA-256 digest."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.crypto import sha256_hex
from core.errors import AuthenticationFailed
from registry.agencies import get_agency
from registry.audit import record_event
from registry.models import ApiToken

TOKEN_PREFIX = "gsk_"


def issue_token(session: Session, *, agency: str, name: str, days: int = 90, actor: str = "cli") -> str:
    """Create a token and return it in clear; it cannot be shown again."""
    owner = get_agency(session, ref=agency)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(agency_id=owner.id, name=name, token_sha256=sha256_hex(token),
                         expires_at=datetime.now(timezone.utc) + timedelta(days=days)))
    record_event(session, actor=actor, action="token.issue", agency_code=owner.code, detail={"name": name, "days": days})
    return token


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def authenticate(session: Session, *, token: str | None) -> ApiToken:
    """The token record for a presented token, or AuthenticationFailed saying why."""
    if not token:
        raise AuthenticationFailed("缺少访问令牌", "missing API token: send `Authorization: Bearer <token>`")
    record = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))
    if record is None:
        raise AuthenticationFailed("访问令牌无效", "invalid API token")
    if record.revoked_at is not None:
        raise AuthenticationFailed("访问令牌已吊销", "API token revoked")
    if record.expires_at is not None and _aware(record.expires_at) <= datetime.now(timezone.utc):
        raise AuthenticationFailed("访问令牌已过期", "API token expired")
    return record
