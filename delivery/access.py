"""The one access check every delivery channel calls: who asks, what was granted, which columns."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import AccessDenied, AuthenticationFailed
from registry.audit import record_event
from registry.models import ApiToken, DatasetVersion, Resource
from registry.resources import SHARING_MODES, get_resource
from registry.subscriptions import active_subscription
from registry.tokens import authenticate
from registry.versions import require_latest_version


@dataclass
class AccessDecision:
    agency_code: str
    resource: Resource
    version: DatasetVersion
    columns: list[str] | None  # None: every column of the version
    purpose: str
    channel: str


def authorize_read(session: Session, *, token: str | None, resource_code: str, channel: str) -> AccessDecision:
    """Allowed access to the latest version, or AccessDenied (audited either way)."""
    try:
        consumer: ApiToken = authenticate(session, token=token)
    except AuthenticationFailed as failed:
        # An unknown caller's attempt is evidence too; the presented token itself is never logged.
        record_event(session, actor="anonymous", action="data.read", resource_code=resource_code, result="denied",
                     detail={"channel": channel, "reason": failed.en})
        session.commit()
        raise
    agency_code = consumer.agency.code
    try:
        resource = get_resource(session, code=resource_code)
        if resource.sharing_type == "not_shared":
            raise AccessDenied(f"该资源不予共享，依据：{resource.sharing_condition}",
                               f"resource not shared; legal basis: {resource.sharing_condition}")
        if channel not in resource.sharing_modes:
            raise AccessDenied(f"该资源不提供{SHARING_MODES.get(channel, channel)}方式",
                               f"resource is not offered through the {channel} channel")
        subscription = active_subscription(session, resource=resource, agency_id=consumer.agency_id)
        if subscription is None:
            raise AccessDenied("本机构未获得该资源的共享授权，请先订阅或申请",
                               "your agency holds no grant for this resource: subscribe or apply first")
        version = require_latest_version(session, resource=resource)
    except AccessDenied as denied:
        record_event(session, actor=f"token:{consumer.name}", action="data.read", agency_code=agency_code,
                     resource_code=resource_code, result="denied", detail={"channel": channel, "reason": denied.en})
        session.commit()  # the refusal is evidence too: keep it even though the request fails
        raise
    return AccessDecision(agency_code=agency_code, resource=resource, version=version, columns=None,
                          purpose=subscription.purpose, channel=channel)


def audit_read(session: Session, *, decision: AccessDecision, rows: int, fmt: str) -> None:
    record_event(session, actor="api", action="data.read", agency_code=decision.agency_code,
                 resource_code=decision.resource.code,
                 detail={"channel": decision.channel, "format": fmt, "version": decision.version.number,
                         "rows": rows, "columns": decision.columns or "all", "purpose": decision.purpose})
