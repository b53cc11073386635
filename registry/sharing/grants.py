"""Grants (共享授权): what one consumer agency may read of one resource, for which purpose, until when.

A grant is made by subscribing to an unconditional resource, by a provider's approval of an application, or
by the coordination office's conclusion of a dispute. It holds the approved data items (columns, None = all),
an optional row condition (rule as data), the purpose, the expiry and whether personal identifiers are shown
unmasked in browsing. A resource whose secrecy review says it involves secrets needs a secrecy agreement in
force before its grant becomes active (article 14). One live grant per resource and agency: a new one
supersedes the old. Revocation takes effect on the next request (the access check reads the grant each time).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied, ConfigError, NotFound
from registry.audit.log import record_event
from registry.catalog.entries import catalogued_columns
from registry.catalog.models import Resource
from registry.people.auth import OVERSIGHT_ROLES, Principal, require
from registry.people.models import Agency
from registry.sharing.inbox import notify
from registry.sharing.models import Grant, ResourceSensitivity, SecrecyAgreement, Subscription
from schemas.presentation import day

ROW_FILTER_OPS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge")
LIVE = ("active", "pending_agreement")


def validate_row_filter(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row condition as data: {"column", "op", "value"|"values"} or {"all": [conditions]}."""
    if rule is None:
        return None
    if not isinstance(rule, dict):
        raise ConfigError("a row condition must be an object such as "
                          '{"column": "district_code", "op": "in", "values": ["310115"]}')
    if "all" in rule:
        if not isinstance(rule["all"], list) or not rule["all"]:
            raise ConfigError('"all" needs a non-empty list of row conditions')
        return {"all": [validate_row_filter(part) for part in rule["all"]]}
    column, op = rule.get("column"), rule.get("op")
    if not isinstance(column, str) or not column:
        raise ConfigError('a row condition needs "column"')
    if op not in ROW_FILTER_OPS:
        raise ConfigError(f"row condition op {op!r} must be one of {', '.join(ROW_FILTER_OPS)}")
    if op in ("in", "not_in"):
        if not isinstance(rule.get("values"), list) or not rule["values"]:
            raise ConfigError(f'row condition op {op} needs a non-empty "values" list')
        return {"column": column, "op": op, "values": list(rule["values"])}
    if "value" not in rule:
        raise ConfigError(f'row condition op {op} needs "value"')
    return {"column": column, "op": op, "value": rule["value"]}


def filter_columns(rule: dict[str, Any] | None) -> list[str]:
    if not rule:
        return []
    if "all" in rule:
        return [c for part in rule["all"] for c in filter_columns(part)]
    return [rule["column"]]


def shareable_columns(resource: Resource, items: list[str] | None) -> list[str] | None:
    """What a grant of the resource may name: the entry's data items (信息项) and the resource's registered key
    (登记的主键, by which pages are cut and a consumer syncs), or None when the entry names no items."""
    if items is None:
        return None
    return [*items, *(key for key in (resource.stream or {}).get("primary_key") or [] if key not in items)]


def unlisted(session: Session, *, resource: Resource, columns: list[str] | None,
             row_filter: dict[str, Any] | None) -> None:
    """Refuse a grant naming, or choosing rows by, a column its published entry does not list."""
    shareable = shareable_columns(resource, catalogued_columns(session, resource=resource))
    if shareable is not None and (outside := list(dict.fromkeys(
            c for c in [*(columns or []), *filter_columns(row_filter)] if c not in shareable))):
        raise ConfigError(f"目录条目未列出信息项 {'、'.join(outside)}，不能授权 / the catalogue entry does not list "
                          f"{', '.join(outside)}: a grant names only its data items ({', '.join(shareable)})")


def unpublished(resource: Resource, *, doing_zh: str, doing_en: str) -> AccessDenied | None:
    """Only an entry that passed the confidentiality review and its reviewer's approval is shared (articles 10,
    19): a registered, draft or withdrawn one is neither subscribed to, applied for, granted nor delivered.
    The refusal to raise, or None for a published entry."""
    if resource.catalog_status == "published":
        return None
    return AccessDenied(f"目录条目 {resource.code} 未经保密审查和审核发布（当前：{resource.catalog_status}），不能{doing_zh}",
                        f"catalogue entry {resource.code} has not passed confidentiality review and publication "
                        f"({resource.catalog_status}): it cannot be {doing_en}")


def require_published(resource: Resource, *, doing_zh: str, doing_en: str) -> None:
    if refusal := unpublished(resource, doing_zh=doing_zh, doing_en=doing_en):
        raise refusal


def term_end(expires_on: date) -> datetime:
    """A grant's term given as a day: it runs to the end of that day in Beijing."""
    return datetime.combine(expires_on, datetime.max.time(), clock.BEIJING_TIME)


def new_term(expires_on: date) -> datetime:
    """The end of a term being set now (a provider's decision, a dispute's conclusion): one already ended
    would make a grant expired from the start, so it is refused; today is still a term."""
    if expires_on < clock.today():
        raise ConfigError(f"授权期限 {expires_on} 早于今天，请另定期限 / the term ({expires_on}) has already ended: "
                          "give a day from today on (--expires; API and page: expires_on)")
    return term_end(expires_on)


def lifted_masks(grant: Grant) -> bool | list[str]:
    """What a grant's decision lifted: True for every personal identifier, else the named columns."""
    return True if grant.unmask else list(grant.unmasked_columns or [])


def sensitivity(session: Session, *, resource: Resource) -> ResourceSensitivity | None:
    return session.get(ResourceSensitivity, resource.id)


def agreement_in_force(session: Session, *, resource: Resource, agency_id: int,
                       on: date | None = None) -> SecrecyAgreement | None:
    today = on or clock.today()
    return session.scalars(select(SecrecyAgreement).where(
        SecrecyAgreement.resource_id == resource.id, SecrecyAgreement.consumer_agency_id == agency_id,
        SecrecyAgreement.revoked_at.is_(None), SecrecyAgreement.signed_on <= today,
        SecrecyAgreement.valid_until >= today).order_by(SecrecyAgreement.valid_until.desc())).first()


def needs_agreement(session: Session, *, resource: Resource) -> bool:
    marks = sensitivity(session, resource=resource)
    return bool(marks and marks.involves_secrets)


def live_grant(session: Session, *, resource: Resource, agency_id: int) -> Grant | None:
    return session.scalars(select(Grant).where(
        Grant.resource_id == resource.id, Grant.agency_id == agency_id, Grant.status.in_(LIVE))
        .order_by(Grant.id.desc())).first()


def usable_grant(session: Session, *, resource: Resource, agency_id: int) -> Grant | None:
    """The agency's grant when a read would pass it now (active, not expired, its secrecy agreement in force),
    for pages that show what a grant allows without reading data."""
    from registry.seals import intact

    grant = live_grant(session, resource=resource, agency_id=agency_id)
    if grant is None or grant.status != "active" or not intact(grant):
        return None
    if grant.expires_at is not None and clock.as_utc(grant.expires_at) <= clock.now():
        return None
    if needs_agreement(session, resource=resource) and not agreement_in_force(
            session, resource=resource, agency_id=agency_id):
        return None
    return grant


def _sync_subscription(session: Session, *, grant: Grant) -> None:
    # Update notices (article 16) go to subscribers: an active grant keeps a subscription in step.
    subscription = session.scalar(select(Subscription).where(
        Subscription.resource_id == grant.resource_id, Subscription.agency_id == grant.agency_id))
    status = {"active": "active", "pending_agreement": "pending"}.get(grant.status, "revoked")
    if subscription is None:
        session.add(Subscription(resource_id=grant.resource_id, agency_id=grant.agency_id, purpose=grant.purpose,
                                 status=status))
    else:
        subscription.status, subscription.purpose = status, grant.purpose


def create_grant(session: Session, *, resource: Resource, agency: Agency, origin: str, purpose: str,
                 by: Principal, columns: list[str] | None = None, row_filter: dict[str, Any] | None = None,
                 unmask: bool | list[str] = False, external_use: bool = False, expires_at: datetime | None = None,
                 application_id: int | None = None) -> Grant:
    """Record a grant; active at once unless the resource needs a secrecy agreement not yet in force.
    ``unmask``: the provider lifts the masking of personal identifiers, for every column (True) or the named ones."""
    if resource.sharing_type == "not_shared":
        raise AccessDenied(f"该资源不予共享，不能授权，依据：{resource.sharing_condition}",
                           f"a not-shared resource can never be granted; legal basis: {resource.sharing_condition}")
    if agency.id == resource.agency_id:
        raise ConfigError("a provider needs no grant on its own resource")
    require_published(resource, doing_zh="授权", doing_en="granted")
    if not purpose.strip():
        raise ConfigError("a grant needs its purpose (共享用途)")
    unlisted(session, resource=resource, columns=columns, row_filter=row_filter)
    for old in session.scalars(select(Grant).where(Grant.resource_id == resource.id, Grant.agency_id == agency.id,
                                                   Grant.status.in_(LIVE))):
        old.status = "superseded"
    grant = Grant(resource_id=resource.id, agency_id=agency.id, origin=origin, application_id=application_id,
                  columns=list(columns) if columns else None, row_filter=validate_row_filter(row_filter),
                  unmask=unmask is True, unmasked_columns=sorted(set(unmask)) if isinstance(unmask, list) else None,
                  external_use=external_use, purpose=purpose,
                  # in UTC: SQLite keeps a datetime's wall time and drops its offset (Beijing end of day
                  # would come back as 23:59 UTC, eight hours late)
                  expires_at=clock.as_utc(expires_at) if expires_at else None,
                  status="pending_agreement")
    session.add(grant)
    session.flush()
    record_event(session, actor=by.actor, action="grant.create", agency_code=agency.code, resource_code=resource.code,
                 detail={"grant": grant.id, "origin": origin, "columns": grant.columns or "all",
                         "row_filter": grant.row_filter, "purpose": purpose, "unmask": unmask,
                         "external_use": external_use, "application": application_id,
                         "expires_at": expires_at.isoformat() if expires_at else None})
    if not activate_if_ready(session, grant=grant, by=by):
        _sync_subscription(session, grant=grant)
        session.flush()
    return grant


def activate_if_ready(session: Session, *, grant: Grant, by: Principal) -> bool:
    if grant.status != "pending_agreement":
        return grant.status == "active"
    resource = grant.resource or session.get(Resource, grant.resource_id)
    if needs_agreement(session, resource=resource) and not agreement_in_force(
            session, resource=resource, agency_id=grant.agency_id):
        return False
    grant.status, grant.activated_at = "active", clock.now()
    _sync_subscription(session, grant=grant)
    session.flush()
    record_event(session, actor=by.actor, action="grant.activate", agency_code=grant.agency.code,
                 resource_code=resource.code, detail={"grant": grant.id})
    return True


def get_grant(session: Session, *, grant_id: int) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}; `govshare grant list` shows them")
    return grant


def revoke_grant(session: Session, *, grant_id: int, reason: str, by: Principal) -> Grant:
    """Revoke at once: the next request of any channel is refused."""
    grant = get_grant(session, grant_id=grant_id)
    require(by, by.acts_for(grant.resource.agency_id) or by.acts_for(grant.agency_id) or by.has(*OVERSIGHT_ROLES),
            zh="只有提供方、获取方或领导小组办公室可以撤销授权",
            en="only the provider, the consumer or the coordination office may revoke a grant")
    if not reason.strip():
        raise ConfigError("revoking a grant needs a reason (撤销理由)")
    if grant.status not in LIVE:
        raise ConfigError(f"grant {grant_id} is already {grant.status}")
    return end_grant(session, grant=grant, reason=reason, by=by)


def end_grant(session: Session, *, grant: Grant, reason: str, by: Principal) -> Grant:
    """Revoke a live grant whose basis is gone (a refusal, a withdrawn entry), or on request; audited."""
    grant.status, grant.revoked_at, grant.revoked_by, grant.revoke_reason = "revoked", clock.now(), by.actor, reason
    _sync_subscription(session, grant=grant)
    record_event(session, actor=by.actor, action="grant.revoke", agency_code=grant.agency.code,
                 resource_code=grant.resource.code, detail={"grant": grant.id, "reason": reason})
    # the consumer learns it here, not from a refused read (which says only that and when)
    notify(session, kind="grant_ended", agency_id=grant.agency_id,
           message=f"本机构对“{grant.resource.name}”（{grant.resource.code}）的共享授权已于{day(grant.revoked_at)}"
                   f"终止：{reason}；如需继续使用请重新订阅或申请")
    return grant


def notify_expired_grants(session: Session, *, by: Principal) -> list[int]:
    """Tell each consumer whose active grant's term has passed (run daily): an expiry changes no status, so it
    would otherwise learn of it only from a refused read. Each grant is told once (its grant.expire record)."""
    from registry.audit.models import AuditEvent

    told = {(detail or {}).get("grant") for detail in session.scalars(
        select(AuditEvent.detail).where(AuditEvent.action == "grant.expire"))}
    now, done = clock.now(), []
    for grant in session.scalars(select(Grant).where(Grant.status == "active", Grant.expires_at.is_not(None))
                                 .order_by(Grant.id)):
        if grant.id in told or clock.as_utc(grant.expires_at) > now:
            continue
        notify(session, kind="grant_ended", agency_id=grant.agency_id,
               message=f"本机构对“{grant.resource.name}”（{grant.resource.code}）的共享授权已于{day(grant.expires_at)}"
                       "到期；如需继续使用请重新申请")
        record_event(session, actor=by.actor, action="grant.expire", agency_code=grant.agency.code,
                     resource_code=grant.resource.code,
                     detail={"grant": grant.id, "expires_at": clock.as_utc(grant.expires_at).isoformat()})
        done.append(grant.id)
    return done


def ended_grant(session: Session, *, resource: Resource, agency_id: int) -> Grant | None:
    """The agency's latest revoked grant on the resource: what a read refused for want of a live one names."""
    return session.scalars(select(Grant).where(
        Grant.resource_id == resource.id, Grant.agency_id == agency_id, Grant.status == "revoked")
        .order_by(Grant.id.desc())).first()


def list_grants(session: Session, *, by: Principal, resource: Resource | None = None,
                agency: Agency | None = None) -> list[Grant]:
    """Grants the principal may see: its own agency's (as consumer or provider), or all for oversight roles."""
    query = select(Grant).order_by(Grant.id)
    if resource is not None:
        query = query.where(Grant.resource_id == resource.id)
    if agency is not None:
        query = query.where(Grant.agency_id == agency.id)
    grants = list(session.scalars(query))
    if by.kind == "console" or by.has(*OVERSIGHT_ROLES):
        return grants
    return [g for g in grants if by.agency_id in (g.agency_id, g.resource.agency_id)]
