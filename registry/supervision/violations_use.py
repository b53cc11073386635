"""Violations of article 23 found in the audit log's reads: cases (4) and (5).

(4) 管理失控: a successful read outside any grant in force for it at that moment, or of columns beyond it
(``read_outside_grant``); a revoked API token still presented (``revoked_token_use``). (5) 超范围使用: a read
recorded for a purpose other than the grant's, or for onward provision without the grant's leave (article 17)
(``purpose_mismatch``). Separate from cases (1) to (3), which read the provider's catalogue and data
(violations_provider.py): these judge each recorded ``data.read`` against the grant it named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from registry.audit.models import AuditEvent
from registry.catalog.models import Resource
from registry.people.models import Agency, ApiToken
from registry.sharing.models import Grant
from registry.supervision.findings import Finding, row_ref

__all__ = ["PROBLEMS", "find_use_outside_grants"]

MAX_EVENT_IDS = 100  # evidence lists this many audit event ids and counts the rest


def _events(session: Session, *, result: str, actions: tuple[str, ...] = ("data.read",)) -> Iterator[AuditEvent]:
    # Every recorded read, whatever the detection day: the log only holds what already happened, and its
    # timestamps are the platform's own (they cannot be back-dated without breaking the chain).
    query = (select(AuditEvent).where(AuditEvent.action.in_(actions), AuditEvent.result == result)
             .order_by(AuditEvent.id).execution_options(yield_per=1000))
    yield from session.scalars(query)


def _read_problem(event: AuditEvent, grant: Grant | None, resource: Resource, agency: Agency,
                  lag: timedelta) -> str | None:
    if grant is None:
        return "no_grant"
    if grant.agency_id != agency.id or grant.resource_id != resource.id:
        return "grant_of_another"
    at = clock.as_utc(event.at)
    if grant.activated_at is None or clock.as_utc(grant.activated_at) > at:
        return "grant_not_active"
    # `lag`: the interface channel may answer from an access decision made just before (delivery/decisions.py)
    if grant.revoked_at is not None and clock.as_utc(grant.revoked_at) + lag <= at:
        return "grant_revoked"
    if grant.expires_at is not None and clock.as_utc(grant.expires_at) + lag <= at:
        return "grant_expired"
    read = event.detail.get("columns")
    if grant.columns is not None and (read == "all" or not set(read or []) <= set(grant.columns)):
        return "columns_beyond_grant"
    return None


PROBLEMS = {"no_grant": "无共享授权", "grant_of_another": "授权不属于该机构或该资源", "grant_not_active": "授权尚未生效",
            "grant_revoked": "授权已撤销", "grant_expired": "授权已过期", "columns_beyond_grant": "读取了授权以外的数据项"}


def find_use_outside_grants(session: Session) -> Iterator[Finding]:
    resources = {r.code: r for r in session.scalars(select(Resource))}
    agencies = {a.code: a for a in session.scalars(select(Agency))}
    from core.settings import get_settings

    lag = timedelta(seconds=get_settings().decision_cache_seconds + 1)
    outside: dict[tuple, list[int]] = defaultdict(list)
    purpose: dict[tuple, list[int]] = defaultdict(list)
    for event in _events(session, result="ok"):
        resource, agency = resources.get(event.resource_code or ""), agencies.get(event.agency_code or "")
        if resource is None or agency is None or agency.id == resource.agency_id:
            continue  # a provider reading its own data needs no grant
        if "grant" not in event.detail:
            continue  # written before grants existed: nothing to judge it against
        grant_id = event.detail.get("grant")
        grant = session.get(Grant, grant_id) if isinstance(grant_id, int) else None
        problem = _read_problem(event, grant, resource, agency, lag)
        if problem:
            outside[(agency.id, resource.id, grant_id, problem)].append(event.id)
            continue
        declared = event.detail.get("declared_purpose", event.detail.get("purpose"))
        onward = bool(event.detail.get("external") or event.detail.get("onward_to"))
        if (declared is not None and declared != grant.purpose) or (onward and not grant.external_use):
            purpose[(agency.id, resource.id, grant.id, "onward" if onward else "purpose")].append(event.id)
    # Article 17 is enforced at read time: an attempted misuse is refused, and the refusal is the evidence.
    for event in _events(session, result="denied"):
        why, grant_id = event.detail.get("misuse"), event.detail.get("grant")
        agency, resource = agencies.get(event.agency_code or ""), resources.get(event.resource_code or "")
        if why in ("purpose", "onward") and isinstance(grant_id, int) and agency and resource:
            purpose[(agency.id, resource.id, grant_id, why)].append(event.id)
    for (agency_id, resource_id, grant_id, problem), ids in outside.items():
        resource = session.get(Resource, resource_id)
        records = [row_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]]
        if isinstance(grant_id, int):
            records.append(row_ref("grants", grant_id))
        yield Finding(4, "read_outside_grant", agency_id, f"{agency_id}:{resource_id}:{grant_id}:{problem}",
                      resource_id=resource_id, records=records,
                      summary=f"{session.get(Agency, agency_id).name} 在{PROBLEMS[problem]}的情况下读取了"
                              f" {resource.code}（{resource.name}）{len(ids)} 次",
                      facts={"problem": problem, "reads": len(ids), "grant": grant_id})
    for (agency_id, resource_id, grant_id, why), ids in purpose.items():
        resource, grant = session.get(Resource, resource_id), session.get(Grant, grant_id)
        what = "对外提供或发布（未获同意）" if why == "onward" else "用于授权用途以外"  # read, or attempted and refused
        yield Finding(5, "purpose_mismatch", agency_id, f"{agency_id}:{resource_id}:{grant_id}:{why}",
                      resource_id=resource_id,
                      records=[row_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]] + [row_ref("grants", grant_id)],
                      summary=f"{session.get(Agency, agency_id).name} 将 {resource.code}（{resource.name}）的共享数据"
                              f"{what} {len(ids)} 次；授权用途：{grant.purpose}",
                      facts={"reads": len(ids), "granted_purpose": grant.purpose, "why": why})
    revoked: dict[int, list[int]] = defaultdict(list)
    # a revoked token presented to any route: a data read, or any other request refused at authentication
    for event in _events(session, result="denied", actions=("data.read", "request.refused")):
        token_id = event.detail.get("token")
        if event.detail.get("reason") == "API token revoked" and isinstance(token_id, int):
            revoked[token_id].append(event.id)
    for token_id, ids in revoked.items():
        token = session.get(ApiToken, token_id)
        if token is None:
            continue
        yield Finding(4, "revoked_token_use", token.agency_id, str(token_id),
                      records=[row_ref("api_tokens", token_id)]
                      + [row_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]],
                      summary=f"{token.agency.name} 的访问令牌“{token.name}”吊销后仍被使用 {len(ids)} 次（凭证失控）",
                      facts={"attempts": len(ids), "revoked_at": clock.as_utc(token.revoked_at).isoformat()
                             if token.revoked_at else None})
