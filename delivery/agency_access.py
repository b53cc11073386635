"""The access check for channels that act for a consumer agency without its bearer token: a signed link being
followed, an SFTP push, an offline package. Same decision as authorize_read (delivery.access), same audit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import AccessDenied
from delivery import access
from registry.people.agencies import get_agency
from registry.audit.log import mark_audited, record_event
from registry.people.auth import Principal


def authorize_agency(session: Session, *, agency: str, resource_code: str, channel: str, actor: str,
                     kind: str = "system") -> access.AccessDecision:
    """The agency's live grant on the resource for this channel, or AccessDenied (the refusal is committed)."""
    consumer = get_agency(session, ref=agency)
    principal = Principal(kind=kind, name=actor, agency_id=consumer.id, agency_code=consumer.code)
    return access.authorize_principal(session, principal=principal, resource_code=resource_code, channel=channel)


def refuse(session: Session, *, principal: Principal, resource_code: str, channel: str,
           error: AccessDenied, reason: str, via: str | None = None) -> AccessDenied:
    """Record a refusal decided here (not by the access check) and return the error, marked as audited."""
    record_event(session, actor=principal.actor, action="data.read", agency_code=principal.agency_code,
                 resource_code=resource_code, result="denied",
                 detail={"channel": channel, "reason": reason, **({"via": via} if via else {})})
    session.commit()  # the refusal is evidence too
    return mark_audited(error)
