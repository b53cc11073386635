"""Subscriptions (订阅): a consumer agency takes a resource and is notified of its updates (article 16)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied, ConfigError
from registry.audit.log import mark_audited, record_event
from registry.catalog.entries import catalogued_columns
from registry.catalog.models import Resource
from registry.catalog.resources import edited_refusal, get_resource, hidden_from, missing_resource
from registry.people.agencies import get_agency
from registry.people.auth import Principal, console, require
from registry.seals import intact
from registry.sharing.grants import agreement_in_force, create_grant, live_grant, needs_agreement, unpublished
from registry.sharing.models import Subscription
from schemas.presentation import day


def subscribe(session: Session, *, resource_code: str, agency: str, purpose: str, actor: str = "cli",
              by: Principal | None = None) -> Subscription:
    """Subscribe to an unconditionally shared resource; the grant is immediate (article 14), or waits for a
    secrecy agreement when the resource involves secrets or personal privacy."""
    by = by or console(actor)
    resource = get_resource(session, code=resource_code)
    consumer = get_agency(session, ref=agency)
    require(by, by.acts_for(consumer.id), zh="只能为本机构订阅（机构管理员或数据资源管理员）",
            en="you may subscribe only for your own agency, as its agency or data resource administrator")
    refusal = unpublished(resource, doing_zh="订阅", doing_en="subscribed to")
    if refusal is None and resource.sharing_type == "not_shared":
        refusal = AccessDenied(f"该资源不予共享，依据：{resource.sharing_condition}",
                               f"this resource is not shared; legal basis: {resource.sharing_condition}")
    elif refusal is None and resource.sharing_type == "conditional":
        refusal = AccessDenied("该资源为按需共享，请提交共享申请（govshare apply submit）",
                               "this resource is shared on application: apply for it (`govshare apply submit`)")
    if refusal is not None:
        record_event(session, actor=by.actor, action="subscription.add", agency_code=consumer.code,
                     resource_code=resource.code, result="denied", detail={"reason": refusal.en, "purpose": purpose})
        session.commit()  # the refusal is evidence too
        if by.kind != "console" and hidden_from(resource, agency_id=consumer.id):
            raise missing_resource(resource_code)  # not published: as if no such code, to another agency
        raise mark_audited(refusal)
    if not purpose.strip():
        raise ConfigError("state the purpose of use (共享用途): --purpose")
    record_event(session, actor=by.actor, action="subscription.add", agency_code=consumer.code,
                 resource_code=resource.code, detail={"purpose": purpose})
    # The grant keeps the subscription active (or pending until a secrecy agreement is in force). It covers the
    # data items the published entry lists, as an approved application does: a column the entry does not
    # catalogue was never offered for sharing (None: the entry names no columns, so the version's are its items).
    create_grant(session, resource=resource, agency=consumer, origin="subscription", purpose=purpose, by=by,
                 columns=catalogued_columns(session, resource=resource))
    session.flush()
    return session.scalar(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.agency_id == consumer.id))


def subscribers(session: Session, *, resource: Resource) -> list[Subscription]:
    return list(session.scalars(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.status == "active")))


def notice_withheld(session: Session, *, subscription: Subscription, now: datetime) -> tuple[str, str] | None:
    """Why a subscriber must not be sent an update notice now, as (zh, en), or None. A resource shared on
    application (有条件共享) is notified only under a live grant, read as a download would read it (active, not
    expired, its secrecy agreement in force): a grant that ran out keeps its subscription active until someone
    revokes it, and the notice would announce data the subscriber may no longer take. Unconditional resources
    are notified as before. A new grant approved (a new application) resumes the notices, and the notices sweep
    then sends one notice of what was withheld meanwhile (pipeline/notice_release.py). A resource row edited
    outside the hub (registry/seals.py) is not believed: its notices are held, as a lapsed grant's are, and the
    sweep releases them once the row is put back as the hub wrote it."""
    resource = subscription.resource
    if not intact(resource):
        zh, en = edited_refusal()
        return f"{zh}；更新通知暂不发送，记录恢复后补发", f"{en}; the notice is held until then"
    if resource.sharing_type != "conditional":
        return None
    grant = live_grant(session, resource=resource, agency_id=subscription.agency_id)
    if grant is None or grant.status != "active":
        return ("本机构没有该资源的有效共享授权，更新通知未发送；重新申请获批后恢复通知（govshare apply submit）",
                "your agency holds no active grant for this resource: the notice was not sent; notices resume "
                "once a new application is approved (`govshare apply submit`)")
    if grant.expires_at is not None and clock.as_utc(grant.expires_at) <= now:
        return (f"共享授权已于{day(grant.expires_at)}到期，更新通知未发送；重新申请获批后恢复通知（govshare apply submit）",
                f"your agency's grant expired on {clock.beijing_day(grant.expires_at).isoformat()}: the notice was "
                "not sent; notices resume once a new application is approved (`govshare apply submit`)")
    if needs_agreement(session, resource=resource) and not agreement_in_force(
            session, resource=resource, agency_id=subscription.agency_id, on=clock.beijing_day(now)):
        return ("共享安全保密协议已到期或被撤销，更新通知未发送；续签后恢复通知",
                "the secrecy agreement has ended or was revoked: the notice was not sent; notices resume once a "
                "renewed agreement is recorded")
    return None
