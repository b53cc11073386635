"""Disputes (协调处理, article 14): a consumer who disagrees with a provider's decision asks for coordination;
the coordination office (领导小组办公室) records its conclusion, which becomes the decision."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.people.auth import Principal, require, require_person, require_roles
from registry.sharing.applications import apply_decision, get_application, grant_for, notify
from registry.sharing.grants import LIVE, lifted_masks, new_term
from registry.sharing.models import Dispute, Grant
from schemas.presentation import day

DISPUTABLE = ("partial", "refused")


def open_dispute(session: Session, *, number: str, grounds: str, by: Principal) -> Dispute:
    application = get_application(session, number=number)
    require(by, by.acts_for(application.consumer_agency_id), zh="只有资源需求方可以申请协调处理",
            en="only the consumer agency may open a dispute on its application")
    if application.status not in DISPUTABLE:
        raise ConfigError(f"只有部分同意或不予共享的答复可以申请协调处理 / application {number} is "
                          f"{application.status}; only a partial approval or a refusal can be disputed")
    if not grounds.strip():
        raise ConfigError("请填写异议理由 / state the grounds of the dispute (异议理由): --grounds")
    dispute = Dispute(application_id=application.id, opened_by=by.actor, grounds=grounds)
    application.status = "disputed"
    session.add(dispute)
    session.flush()
    record_event(session, actor=by.actor, action="dispute.open", agency_code=application.consumer.code,
                 resource_code=application.resource.code,
                 detail={"dispute": dispute.id, "number": number, "grounds": grounds})
    notify(session, kind="dispute", application=application, role="coordination_office",
           message=f"{application.consumer.name}对申请 {number} 的意见有异议，申请协调处理：{grounds}")
    # the provider's decision is what is disputed: it hears of it as the coordination office does
    notify(session, kind="dispute", application=application, agency_id=application.resource.agency_id,
           message=f"{application.consumer.name}对申请 {number} 的答复有异议，已申请领导小组办公室协调处理：{grounds}")
    return dispute


def get_dispute(session: Session, *, dispute_id: int) -> Dispute:
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFound(f"no dispute {dispute_id}; `govshare dispute list` shows them")
    return dispute


def conclude_dispute(session: Session, *, dispute_id: int, outcome: str, conclusion: str, by: Principal,
                     approved_items: list[str] | None = None, expires_on: date | None = None) -> Dispute:
    """The coordination office's conclusion replaces the provider's decision (and grants what it approves).
    ``expires_on``: the term the office sets; without it the provider's term holds, and a provider's term that
    has already ended is refused (the grant would be expired from the start): the office sets a new one."""
    require_person(by, doing_zh="协调结论", doing_en="concluding a dispute")
    require_roles(by, "coordination_office")
    dispute = get_dispute(session, dispute_id=dispute_id)
    if dispute.status != "open":
        raise ConfigError(f"该协调事项已作出结论 / dispute {dispute_id} is already concluded")
    application = dispute.application
    # The dispute is about the data items; the term and the unmasking the provider set on a partial approval
    # still hold for the grant the conclusion makes (else a wider approval would also run forever).
    standing = grant_for(session, application=application)
    standing = standing if standing is not None and standing.status in LIVE else None
    expires_at = _term(standing, expires_on=expires_on, granting=outcome != "refuse")
    application.status = "submitted"  # reopened for the decision the conclusion makes
    apply_decision(session, application=application, outcome=outcome, approved_items=approved_items,
                   reasons=f"协调结论：{conclusion}", by=by, origin="dispute",
                   unmask=lifted_masks(standing) if standing else False,
                   expires_at=expires_at)
    dispute.status, dispute.outcome = "concluded", application.status
    dispute.approved_items = application.approved_items
    dispute.conclusion, dispute.concluded_by, dispute.concluded_at = conclusion, by.actor, clock.now()
    record_event(session, actor=by.actor, action="dispute.conclude", agency_code=application.consumer.code,
                 resource_code=application.resource.code,
                 detail={"dispute": dispute.id, "number": application.number, "outcome": dispute.outcome,
                         "approved_items": dispute.approved_items, "conclusion": conclusion})
    notify(session, kind="dispute", application=application, agency_id=application.resource.agency_id,
           message=f"申请 {application.number} 的协调结论：{conclusion}")
    return dispute


def _term(standing: Grant | None, *, expires_on: date | None, granting: bool) -> datetime | None:
    """The concluded grant's expiry: the office's term (end of that Beijing day), else the provider's."""
    if expires_on is not None:
        return new_term(expires_on)
    provider_term = standing.expires_at if standing is not None else None
    if granting and provider_term is not None and clock.as_utc(provider_term) <= clock.now():
        raise ConfigError(f"提供方设定的授权期限已于{day(provider_term)}届满，按该期限作出的协调结论自始过期；"
                          f"请在结论中另定授权期限 / the provider's term ended on "
                          f"{clock.beijing_day(provider_term).isoformat()}, so the concluded grant would be expired from "
                          "the start: set a new term (--expires; API and page: expires_on)")
    return provider_term


def disputes_of(session: Session, *, application_id: int) -> list[Dispute]:
    """An application's disputes, oldest first (a concluded one may be followed by a new one)."""
    return list(session.scalars(select(Dispute).where(Dispute.application_id == application_id).order_by(Dispute.id)))


def list_disputes(session: Session, *, by: Principal) -> list[Dispute]:
    from registry.sharing.applications import may_see

    return [d for d in session.scalars(select(Dispute).order_by(Dispute.id)) if may_see(by, d.application)]
