"""Violations of article 23 (效能监督), found in the records the platform keeps, each with its evidence.

Detected (``detect_violations``, run daily; idempotent: a violation is found once by its fingerprint, its
evidence refreshed while it lasts, resolved when the records no longer show it, reopened if they do again; one
that stood and can no longer be put right is closed, still a violation, e.g. an application withdrawn after its
due day passed unanswered):

(1) 不提供共享: a published entry with no data version after a grace period (``no_data``); an entry left
    registered or draft, never reviewed and published (``uncatalogued``); an application left undecided past its
    10-working-day deadline (``application_unanswered``).
(2) 重复或扩大采集: a published data item carrying a data element another agency is authoritative for
    (``duplicate_collection``, registry/catalog/elements.py); columns added at the source that the published catalogue
    does not declare (``widened_collection``, from the recorded schema changes).
(3) 不真实、不准确或未按时: an update obligation missed (``late_update``), a yearly full maintenance missed
    (``reconfirmation_overdue``), a copy disagreeing with the authoritative source (``inconsistent_copy``), a
    rule's open quarantine records above the configured share of the dataset (``inaccurate_data``, one per
    resource and rule), data older than its update cycle plus the grace working days (``stale_data``).
(4) 管理失控: a successful read outside any grant in force for it at that moment, or of columns beyond it
    (``read_outside_grant``); a revoked API token still presented (``revoked_token_use``).
(5) 超范围使用: a read recorded for a purpose other than the grant's, or for onward provision without the
    grant's leave (article 17) (``purpose_mismatch``).
(6) 拒不整改: a rectification order not fixed by its deadline (registry/supervision/rectification.py).

Cases (1) to (3) are found in violations_provider.py, (4) and (5) in violations_use.py, each as a ``Finding``
(findings.py); this module records them.

Evidence is ``{"records": [{"table", "id"}, ...], "facts": {...}}``: the rows to open to see it for oneself.
The commission's own inspection findings (监督检查) are recorded with ``record_finding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.people.agencies import get_agency
from registry.people.auth import OVERSIGHT_ROLES, Principal, require
from registry.supervision.findings import Finding
from registry.supervision.models import VIOLATION_CASES, Violation
from registry.supervision.violations_provider import find_collection, find_late_or_inaccurate, find_not_provided
from registry.supervision.violations_use import find_use_outside_grants
from schemas.evaluation_config import EvaluationConfig, load_config
from schemas.presentation import days_in

__all__ = [
    "DetectionReport",
    "detect_violations",
    "dismiss_violation",
    "find_violations",
    "get_violation",
    "list_violations",
    "record_finding",
    "upsert_violation",
]


@dataclass
class DetectionReport:
    found: list[Violation]
    new: list[Violation]
    resolved: list[Violation]
    closed: list[Violation]


def find_violations(session: Session, *, as_of: date, config: EvaluationConfig | None = None) -> list[Finding]:
    """Every finding the records show as of the day, without recording anything."""
    config = config or load_config()
    return [*find_not_provided(session, as_of, config), *find_collection(session),
            *find_late_or_inaccurate(session, as_of, config), *find_use_outside_grants(session)]


def upsert_violation(session: Session, *, finding: Finding, on: date, actor: str,
                     origin: str = "detected") -> tuple[Violation, bool]:
    """Record a finding once (by fingerprint); returns the violation and whether it is new or reopened."""
    violation = session.scalar(select(Violation).where(Violation.fingerprint == finding.fingerprint))
    fresh = violation is None
    if fresh:
        violation = Violation(case=finding.case, kind=finding.kind, agency_id=finding.agency_id,
                              resource_id=finding.resource_id, fingerprint=finding.fingerprint, origin=origin,
                              status="open", detected_on=on, last_seen_on=on, summary=finding.summary,
                              evidence=finding.evidence, note="")
        session.add(violation)
        session.flush()
    else:
        violation.summary, violation.evidence, violation.last_seen_on = finding.summary, finding.evidence, on
        if violation.status == "resolved" and finding.closed_on is None:
            violation.status, violation.resolved_on, fresh = "open", None, True
    if fresh:
        from registry.sharing.applications import notify

        notify(session, kind="violation", agency_id=violation.agency_id,
               message=f"监督发现（第二十三条第{'一二三四五六'[violation.case - 1]}项）：{days_in(violation.summary)}")
        record_event(session, actor=actor, action="violation.open", agency_code=violation.agency.code,
                     resource_code=violation.resource.code if violation.resource else None,
                     detail={"violation": violation.id, "case": finding.case, "kind": finding.kind,
                             "evidence": finding.evidence["records"][:10]})
    if finding.closed_on is not None and violation.status in ("open", "resolved"):
        violation.status, violation.resolved_on, violation.note = "closed", finding.closed_on, finding.closed_because
        record_event(session, actor=actor, action="violation.close", agency_code=violation.agency.code,
                     detail={"violation": violation.id, "kind": violation.kind, "closed_on": finding.closed_on,
                             "reason": finding.closed_because})
    return violation, fresh


def detect_violations(session: Session, *, as_of: date, actor: str = "supervision",
                      config: EvaluationConfig | None = None) -> DetectionReport:
    """Record today's findings; resolve detected violations the records no longer show, close those that can no
    longer be put right (``found`` lists the violations open today)."""
    findings = find_violations(session, as_of=as_of, config=config)
    found, new, closed = [], [], []
    for finding in findings:
        was = session.scalar(select(Violation.status).where(Violation.fingerprint == finding.fingerprint))
        violation, fresh = upsert_violation(session, finding=finding, on=as_of, actor=actor)
        if violation.status == "open":
            found.append(violation)
        elif was != "closed":
            closed.append(violation)
        if fresh:
            new.append(violation)
    seen = {v.id for v in found}
    resolved = []
    for violation in session.scalars(select(Violation).where(Violation.origin == "detected",
                                                             Violation.status == "open")):
        if violation.id not in seen:
            violation.status, violation.resolved_on = "resolved", as_of
            resolved.append(violation)
            record_event(session, actor=actor, action="violation.resolve", agency_code=violation.agency.code,
                         detail={"violation": violation.id, "kind": violation.kind,
                                 "reason": "the records no longer show it"})
    return DetectionReport(found=found, new=new, resolved=resolved, closed=closed)


def case_refusal(case: int) -> str | None:
    """Why `case` is not one of article 23's cases, naming those there are (None when it is one): a number
    outside them listed nothing, or (0) everything, and read as "no such violation"."""
    if case in VIOLATION_CASES:
        return None
    named = "；".join(f"{number} {label}" for number, label in VIOLATION_CASES.items())
    return (f"第二十三条没有第 {case} 项情形，可选：{named} / article 23 has no case {case}: use one of "
            f"{', '.join(map(str, VIOLATION_CASES))}")


def record_finding(session: Session, *, case: int, agency: str, summary: str, by: Principal,
                   resource_code: str | None = None, records: list[dict[str, Any]] | None = None,
                   on: date | None = None) -> Violation:
    """The commission's own inspection finding (监督检查), e.g. data passed to a third party (case 5)."""
    require(by, by.has("supervisor", "coordination_office"), zh="只有监督机构可以登记检查发现的违规",
            en="only the supervisor or the coordination office records inspection findings")
    if refusal := case_refusal(case):
        raise ConfigError(refusal)
    if not summary.strip():
        raise ConfigError("登记违规须说明事实 / a finding needs its facts (--summary)")
    owner = get_agency(session, ref=agency)
    _check_records(session, records or [])
    resource = None
    if resource_code:
        from registry.catalog.resources import get_resource

        resource = get_resource(session, code=resource_code)
    day = on or clock.today()
    count = session.scalar(select(func.count(Violation.id)).where(Violation.origin == "inspection")) or 0
    finding = Finding(case, "inspection", owner.id, f"{owner.id}:{day}:{count + 1}", summary=summary.strip(),
                      records=list(records or []), facts={"recorded_by": by.actor},
                      resource_id=resource.id if resource else None)
    violation, _ = upsert_violation(session, finding=finding, on=day, actor=by.actor, origin="inspection")
    return violation


def _check_records(session: Session, records: list[dict[str, Any]]) -> None:
    """Evidence must point at rows that exist: a typo would make the finding unverifiable."""
    import registry.models  # noqa: F401 - evidence may name any table: the complete metadata
    from registry.orm import Base

    for record in records:
        table = Base.metadata.tables.get(str(record.get("table")))
        if table is None or "id" not in table.c:
            raise ConfigError(f"证据记录 {record.get('table')}:{record.get('id')} 的表不存在 / no table "
                              f"{record.get('table')!r} with an id column (e.g. audit_events, grants, resources)")
        if session.execute(select(table.c.id).where(table.c.id == record.get("id"))).first() is None:
            raise ConfigError(f"证据记录 {record['table']}:{record.get('id')} 不存在 / no row {record.get('id')} in "
                              f"{record['table']}")


def get_violation(session: Session, *, violation_id: int) -> Violation:
    violation = session.get(Violation, violation_id)
    if violation is None:
        raise NotFound(f"没有违规记录 {violation_id} / no violation {violation_id}; `govshare violation list` shows them")
    return violation


def dismiss_violation(session: Session, *, violation_id: int, reason: str, by: Principal) -> Violation:
    require(by, by.has("supervisor", "coordination_office"), zh="只有监督机构可以撤销违规认定",
            en="only the supervisor or the coordination office dismisses a violation")
    if not reason.strip():
        raise ConfigError("撤销违规认定须说明理由 / dismissing needs a reason")
    violation = get_violation(session, violation_id=violation_id)
    violation.status, violation.note = "dismissed", reason.strip()
    record_event(session, actor=by.actor, action="violation.dismiss", agency_code=violation.agency.code,
                 detail={"violation": violation.id, "reason": reason})
    return violation


def list_violations(session: Session, *, by: Principal, agency: str | None = None, status: str | None = None,
                    case: int | None = None) -> list[Violation]:
    """Violations the principal may see: its own agency's, or every agency's for oversight roles."""
    query = select(Violation).order_by(Violation.id)
    if agency:
        query = query.where(Violation.agency_id == get_agency(session, ref=agency).id)
    if status:
        query = query.where(Violation.status == status)
    if case is not None:
        if refusal := case_refusal(case):
            raise ConfigError(refusal)
        query = query.where(Violation.case == case)
    rows = list(session.scalars(query))
    if by.kind == "console" or by.has(*OVERSIGHT_ROLES):
        return rows
    return [v for v in rows if v.agency_id == by.agency_id]
