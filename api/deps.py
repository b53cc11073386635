"""Request dependencies: a registry session per request and the presented bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.errors import AuthenticationFailed
from delivery.access import ReadUse
from registry.audit.log import mark_audited, record_refusal
from registry.db import session_factory
from registry.people.models import ApiToken
from registry.people.tokens import authenticate

bearer = HTTPBearer(auto_error=False, description="API token issued with `govshare token issue`")


def get_session() -> Iterator[Session]:
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str | None:
    return credentials.credentials if credentials else None


TokenDep = Annotated[str | None, Depends(get_token)]


async def get_read_use(request: Request) -> ReadUse:
    """Article 17: `X-Govshare-Purpose` (the use the read is for) and `X-Govshare-Onward-To` (whom the data is
    passed on to, `public` for publication), UTF-8 percent-encoded; checked against the grant on every read."""
    purpose = request.headers.get("x-govshare-purpose")
    onward = request.headers.get("x-govshare-onward-to")
    return ReadUse(purpose=unquote(purpose) if purpose else None, onward_to=unquote(onward) if onward else None)


ReadUseDep = Annotated[ReadUse, Depends(get_read_use)]


def credential_refused(request: Request, failed: AuthenticationFailed) -> AuthenticationFailed:
    """A refused credential is evidence (articles 18, 23.4): recorded in a transaction of its own, naming a revoked
    token's id and agency (never the token), then returned marked audited for the route to raise."""
    if not failed.audited:
        record_refusal(actor="anonymous", action="request.refused", agency_code=failed.agency_code,
                       reason=failed.en, detail={"method": request.method, "path": request.url.path,
                                                 **({"token": failed.token_id} if failed.token_id else {})})
    return mark_audited(failed)


def get_consumer(session: SessionDep, token: TokenDep, request: Request) -> ApiToken:
    try:
        consumer = authenticate(session, token=token)
    except AuthenticationFailed as failed:
        raise credential_refused(request, failed) from None
    request.state.agency_code = consumer.agency.code
    return consumer


ConsumerDep = Annotated[ApiToken, Depends(get_consumer)]
