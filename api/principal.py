"""The caller of a workflow request, and the route class that audits every refusal."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from api.deps import SessionDep, TokenDep, credential_refused
from api.schemas import Problem
from core.errors import AccessDenied, AuthenticationFailed
from registry.audit.log import record_refusal
from registry.people.auth import Principal
from registry.people.bearer import authenticate_principal

DENIED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}


class AuditedRoute(APIRoute):
    """Every refusal of a workflow request is evidence: written to the audit log, then answered 401/403."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            try:
                return await handler(request)
            except AccessDenied as denied:
                if not denied.audited:
                    principal = getattr(request.state, "principal", None)
                    await run_in_threadpool(
                        record_refusal, actor=principal.actor if principal else "anonymous",
                        action="request.refused", agency_code=principal.agency_code if principal else None,
                        reason=denied.en, detail={"method": request.method, "path": request.url.path})
                raise

        return audited


def get_principal(session: SessionDep, token: TokenDep, request: Request) -> Principal:
    try:
        principal = authenticate_principal(session, token=token)
    except AuthenticationFailed as failed:
        raise credential_refused(request, failed) from None
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def committed(session: Session, value: Any) -> Any:
    # Commit before the answer leaves: the caller's next request (e.g. with a new token) must see the change.
    session.commit()
    return value


def commit_then_raise(session: Session, error: Exception) -> None:
    session.commit()  # failed logins are evidence and feed the rate limit
    raise error


