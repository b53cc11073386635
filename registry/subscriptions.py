"""Subscriptions (订阅): a consumer agency takes a resource and is notified of its updates (article 16)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import AccessDenied
from registry.agencies import get_agency
from registry.audit import record_event
from registry.models import Resource, Subscription
from registry.resources import get_resource


def subscribe(session: Session, *, resource_code: str, agency: str, purpose: str, actor: str = "cli") -> Subscription:
    """Subscribe to an unconditionally shared resource; the grant is immediate (article 14)."""
    resource = get_resource(session, code=resource_code)
    consumer = get_agency(session, ref=agency)
    if resource.sharing_type == "not_shared":
        raise AccessDenied(f"该资源不予共享，依据：{resource.sharing_condition}",
                           f"this resource is not shared; legal basis: {resource.sharing_condition}")
    if resource.sharing_type == "conditional":
        raise AccessDenied("该资源为按需共享，请提交共享申请", "this resource is shared on application: apply for it")
    existing = session.scalar(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.agency_id == consumer.id))
    if existing:
        existing.status, existing.purpose = "active", purpose
        return existing
    subscription = Subscription(resource_id=resource.id, agency_id=consumer.id, purpose=purpose)
    session.add(subscription)
    session.flush()
    record_event(session, actor=actor, action="subscription.add", agency_code=consumer.code,
                 resource_code=resource.code, detail={"purpose": purpose})
    return subscription


def active_subscription(session: Session, *, resource: Resource, agency_id: int) -> Subscription | None:
    return session.scalar(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.agency_id == agency_id, Subscription.status == "active"))


def subscribers(session: Session, *, resource: Resource) -> list[Subscription]:
    return list(session.scalars(select(Subscription).where(
        Subscription.resource_id == resource.id, Subscription.status == "active")))
