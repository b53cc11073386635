"""Violations of article 23 (效能监督), found in the records the platform keeps, each with its evidence.

Detected (``detect_violations``, run daily; idempotent: a violation is found once by its fingerprint, its
evidence refreshed while it lasts, resolved when the records no longer show it, reopened if they do again):

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

Evidence is ``{"records": [{"table", "id"}, ...], "facts": {...}}``: the rows to open to see it for oneself.
The commission's own inspection findings (监督检查) are recorded with ``record_finding``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from core.calendar.workdays import UnknownCalendarYear, add_working_days
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.audit.models import AuditEvent
from registry.catalog.elements import check_duplicate_collection
from registry.catalog.models import CatalogRevision, DataElement, Resource, UpdateObligation
from registry.catalog.obligations import overdue_reconfirmations
from registry.exchange.models import DatasetVersion, SchemaChange, SyncRun
from registry.people.agencies import get_agency
from registry.people.auth import OVERSIGHT_ROLES, Principal, require
from registry.people.models import Agency, ApiToken
from registry.quality.models import ConsistencyCheck, QuarantineRecord, QuarantineSet
from registry.sharing.models import Application, Grant
from registry.supervision.models import VIOLATION_CASES, Violation
from schemas.catalog_metadata import code_list
from schemas.evaluation_config import EvaluationConfig, load_config

__all__ = [
    "CYCLE_DAYS",
    "DetectionReport",
    "Finding",
    "detect_violations",
    "dismiss_violation",
    "find_violations",
    "get_violation",
    "list_violations",
    "record_finding",
    "upsert_violation",
]

# Calendar days one update cycle spans (article 16 counts the 2 working days after the cycle's end).
CYCLE_DAYS = {"realtime": 1, "hourly": 1, "daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92,
              "half_yearly": 183, "yearly": 366}
MAX_EVENT_IDS = 100  # evidence lists this many audit event ids and counts the rest


@dataclass
class Finding:
    case: int
    kind: str
    agency_id: int
    key: str
    summary: str
    records: list[dict[str, Any]]
    facts: dict[str, Any] = field(default_factory=dict)
    resource_id: int | None = None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind}:{self.key}".encode()).hexdigest()

    @property
    def evidence(self) -> dict[str, Any]:
        return {"records": self.records, "facts": self.facts}


@dataclass
class DetectionReport:
    found: list[Violation]
    new: list[Violation]
    resolved: list[Violation]


def _ref(table: str, id_: Any) -> dict[str, Any]:
    return {"table": table, "id": id_}


def _past_grace(since: date, working_days: int, as_of: date) -> bool:
    """True when `working_days` after `since` has passed by `as_of`. A due day beyond the known calendars is after
    an `as_of` inside them (not yet due); with `as_of` itself in an unknown year it cannot be told: that raises."""
    try:
        return add_working_days(since, working_days) < as_of
    except UnknownCalendarYear as unknown:
        if as_of.year >= unknown.year:
            raise
        return False


def _published(session: Session) -> Iterator[tuple[Resource, CatalogRevision]]:
    rows = session.execute(select(Resource, CatalogRevision).join(
        CatalogRevision, CatalogRevision.resource_id == Resource.id).where(
        Resource.catalog_status == "published", CatalogRevision.status == "published").order_by(Resource.id))
    yield from rows.tuples()


# --- (1) not provided for sharing ------------------------------------------------------------------------------

def _not_provided(session: Session, as_of: date, config: EvaluationConfig) -> Iterator[Finding]:
    grace = config.thresholds
    has_version = set(session.scalars(select(DatasetVersion.resource_id).distinct()))
    for resource, revision in _published(session):
        if resource.sharing_type == "not_shared" or resource.id in has_version:
            continue
        first = session.scalar(select(func.min(CatalogRevision.published_at)).where(
            CatalogRevision.resource_id == resource.id))  # a later revision does not restart the grace
        since = clock.beijing_day(first or revision.published_at or revision.created_at)
        if _past_grace(since, grace.no_data_grace_working_days, as_of):
            yield Finding(1, "no_data", resource.agency_id, str(resource.id), resource_id=resource.id,
                          summary=f"目录条目 {resource.code}（{resource.name}）{since} 发布后超过"
                                  f"{grace.no_data_grace_working_days}个工作日仍未提供数据",
                          records=[_ref("resources", resource.id), _ref("catalog_revisions", revision.id)],
                          facts={"published_on": since.isoformat(), "versions": 0})
    for resource in session.scalars(select(Resource).where(Resource.catalog_status.in_(("registered", "draft")))
                                    .order_by(Resource.id)):
        since = clock.beijing_day(resource.created_at)
        if _past_grace(since, grace.uncatalogued_grace_working_days, as_of):
            yield Finding(1, "uncatalogued", resource.agency_id, str(resource.id), resource_id=resource.id,
                          summary=f"资源 {resource.code}（{resource.name}）{since} 登记后超过"
                                  f"{grace.uncatalogued_grace_working_days}个工作日未完成目录编制和审核发布"
                                  f"（状态 {resource.catalog_status}）",
                          records=[_ref("resources", resource.id)],
                          facts={"registered_on": since.isoformat(), "catalog_status": resource.catalog_status})
    for application in session.scalars(select(Application).where(
            Application.status == "submitted", Application.due_on < as_of).order_by(Application.id)):
        resource = application.resource
        yield Finding(1, "application_unanswered", resource.agency_id, str(application.id), resource_id=resource.id,
                      summary=f"共享申请 {application.number}（{application.consumer.name}申请{resource.name}）"
                              f"已过 {application.due_on} 的答复期限，未提出意见",
                      records=[_ref("sharing_applications", application.id), _ref("resources", resource.id)],
                      facts={"number": application.number, "due_on": application.due_on.isoformat()})


# --- (2) duplicate or widened collection -----------------------------------------------------------------------

def _collection(session: Session) -> Iterator[Finding]:
    for resource, revision in _published(session):
        items = revision.content.get("data_items", [])
        codes = [i["element_code"] for i in items if i.get("element_code")]
        for finding in check_duplicate_collection(session, agency_code=resource.agency.code, element_codes=codes):
            if finding.kind != "duplicate_collection":
                continue
            element = session.scalar(select(DataElement).where(DataElement.code == finding.element_code))
            yield Finding(2, "duplicate_collection", resource.agency_id, f"{resource.id}:{finding.element_code}",
                          resource_id=resource.id, summary=f"{resource.code}（{resource.name}）：{finding.message_zh}",
                          records=[_ref("resources", resource.id), _ref("catalog_revisions", revision.id),
                                   _ref("data_elements", element.id)],
                          facts={"element": finding.element_code,
                                 "authority": finding.authoritative_agency_code,
                                 "authority_resource": finding.resource_code})
        declared = {i["column"] for i in items if i.get("column")}
        if not declared:
            continue  # the entry maps no item to a column: nothing to compare the source with
        for change in session.scalars(select(SchemaChange).where(SchemaChange.resource_id == resource.id)
                                      .order_by(SchemaChange.id)):
            extra = sorted(a["name"] for a in change.added if a.get("name") not in declared)
            if extra:
                yield Finding(2, "widened_collection", resource.agency_id, str(change.id), resource_id=resource.id,
                              summary=f"{resource.code}（{resource.name}）源端新增采集字段 {'、'.join(extra)}，"
                                      f"未列入已发布目录（第{revision.number}版）的信息项",
                              records=[_ref("schema_changes", change.id), _ref("catalog_revisions", revision.id)],
                              facts={"added": extra, "run_id": change.run_id})


# --- (3) untrue, inaccurate or late ----------------------------------------------------------------------------

def _late_or_inaccurate(session: Session, as_of: date, config: EvaluationConfig) -> Iterator[Finding]:
    for obligation in session.scalars(select(UpdateObligation).where(UpdateObligation.due_on < as_of)
                                      .order_by(UpdateObligation.id)):
        closed = obligation.closed_on if obligation.closed_on and obligation.closed_on <= as_of else None
        if closed is not None and closed <= obligation.due_on:
            continue
        resource = obligation.resource
        state = f"{closed} 才完成更新" if closed else "至今未更新"
        yield Finding(3, "late_update", resource.agency_id, str(obligation.id), resource_id=resource.id,
                      summary=f"目录条目 {resource.code}（{resource.name}）应于 {obligation.due_on} 前更新"
                              f"（{obligation.reason}），{state}",
                      records=[_ref("update_obligations", obligation.id), _ref("resources", resource.id)],
                      facts={"opened_on": obligation.opened_on.isoformat(), "due_on": obligation.due_on.isoformat(),
                             "closed_on": closed.isoformat() if closed else None})
    for overdue in overdue_reconfirmations(session, today=as_of):
        resource = overdue.resource
        yield Finding(3, "reconfirmation_overdue", resource.agency_id, f"{resource.id}:{overdue.missed_year}",
                      resource_id=resource.id,
                      summary=f"目录条目 {resource.code}（{resource.name}）{overdue.missed_year}年度未进行全面维护"
                              f"（上次 {overdue.last_maintained}）",
                      records=[_ref("resources", resource.id)],
                      facts={"last_maintained": overdue.last_maintained.isoformat(),
                             "missed_year": overdue.missed_year})
    latest_checks = select(func.max(ConsistencyCheck.id)).group_by(ConsistencyCheck.resource_id)
    for check in session.scalars(select(ConsistencyCheck).where(ConsistencyCheck.id.in_(latest_checks),
                                                                ConsistencyCheck.mismatches > 0)):
        resource = check.resource
        yield Finding(3, "inconsistent_copy", resource.agency_id, str(resource.id), resource_id=resource.id,
                      summary=f"{resource.code}（{resource.name}）与权威来源比对不一致 {check.mismatches} 处"
                              f"（比对 {check.rows_compared} 行）",
                      records=[_ref("consistency_checks", check.id), _ref("dataset_versions", check.copy_version_id)],
                      facts={"mismatches": check.mismatches, "rows_compared": check.rows_compared})
    yield from _inaccurate(session, config.thresholds.quarantine_rate)
    grace = config.thresholds.stale_grace_working_days
    for resource, _revision in _published(session):
        days = CYCLE_DAYS.get(resource.update_cycle)
        version = session.scalars(select(DatasetVersion).where(DatasetVersion.resource_id == resource.id)
                                  .order_by(DatasetVersion.number.desc())).first()
        if days is None or version is None:
            continue
        # a run that found nothing new (change capture's "unchanged") also shows the data is current
        run = session.scalars(select(SyncRun).where(
            SyncRun.resource_id == resource.id, SyncRun.status.in_(("published", "unchanged")),
            SyncRun.finished_at.is_not(None)).order_by(SyncRun.finished_at.desc())).first()
        made = max(clock.beijing_day(version.created_at), clock.beijing_day(run.finished_at) if run else date.min)
        if _past_grace(made + timedelta(days=days), grace, as_of):
            cycle = code_list("update_cycles").get(resource.update_cycle, resource.update_cycle)
            yield Finding(3, "stale_data", resource.agency_id, str(resource.id), resource_id=resource.id,
                          summary=f"{resource.code}（{resource.name}）更新周期为{cycle}，最近一次同步于 {made}"
                                  f"（数据版本 v{version.number}），未按时更新",
                          records=[_ref("dataset_versions", version.id)] + ([_ref("sync_runs", run.id)] if run else []),
                          facts={"version": version.number, "last_synced_on": made.isoformat(),
                                 "update_cycle": resource.update_cycle})


def _inaccurate(session: Session, limit: float) -> Iterator[Finding]:
    """``inaccurate_data``: one per resource and rule (like the quarantine records and tickets), while that
    rule's open records (distinct keys) are more than ``limit`` of the dataset (the latest version's rows plus
    the resource's keys held in quarantine); a run's set from before per-key records counts against its run."""
    open_by_rule: dict[tuple[int, str], list[QuarantineRecord]] = defaultdict(list)
    for record in session.scalars(select(QuarantineRecord).where(QuarantineRecord.status == "open")
                                  .order_by(QuarantineRecord.id)):
        open_by_rule[(record.resource_id, record.rule)].append(record)
    held = defaultdict(set)
    for (resource_id, _), records in open_by_rule.items():
        held[resource_id].update(r.key for r in records)
    for (resource_id, rule), records in sorted(open_by_rule.items()):
        resource = session.get(Resource, resource_id)
        version = session.scalars(select(DatasetVersion).where(DatasetVersion.resource_id == resource_id)
                                  .order_by(DatasetVersion.number.desc())).first()
        dataset = (version.row_count if version is not None else 0) + len(held[resource_id])
        if not dataset or len(records) / dataset <= limit:
            continue
        sets = sorted({r.set_id for r in records})
        yield Finding(3, "inaccurate_data", resource.agency_id, f"{resource_id}:{rule}", resource_id=resource_id,
                      summary=f"{resource.code}（{resource.name}）有 {len(records)} 条数据未通过规则 {rule}"
                              f"（数据集 {dataset} 条，超过 {limit:.0%}），尚未更正",
                      records=[*(_ref("quarantine_sets", i) for i in sets),
                               *([_ref("dataset_versions", version.id)] if version is not None else [])],
                      facts={"rule": rule, "open_records": len(records), "dataset_rows": dataset,
                             "keys": sorted(r.key for r in records)[:20]})
    recorded = select(QuarantineRecord.set_id)
    for quarantine, run in session.execute(select(QuarantineSet, SyncRun).join(
            SyncRun, SyncRun.id == QuarantineSet.run_id).where(QuarantineSet.status == "open",
                                                               QuarantineSet.id.not_in(recorded))).tuples():
        if run.rows_read and quarantine.rows / run.rows_read > limit:
            resource = quarantine.resource
            yield Finding(3, "inaccurate_data", resource.agency_id, str(quarantine.id), resource_id=resource.id,
                          summary=f"{resource.code}（{resource.name}）一次同步有 {quarantine.rows}/{run.rows_read} 行"
                                  f"未通过校核（超过 {limit:.0%}），尚未更正",
                          records=[_ref("quarantine_sets", quarantine.id), _ref("sync_runs", run.id)],
                          facts={"rows": quarantine.rows, "rows_read": run.rows_read, "rules": quarantine.rules})


# --- (4) out of control, (5) use outside the purpose --------------------------------------------------------------

def _events(session: Session, *, result: str) -> Iterator[AuditEvent]:
    # Every recorded read, whatever the detection day: the log only holds what already happened, and its
    # timestamps are the platform's own (they cannot be back-dated without breaking the chain).
    query = (select(AuditEvent).where(AuditEvent.action == "data.read", AuditEvent.result == result)
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


def _use(session: Session) -> Iterator[Finding]:
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
        records = [_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]]
        if isinstance(grant_id, int):
            records.append(_ref("grants", grant_id))
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
                      records=[_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]] + [_ref("grants", grant_id)],
                      summary=f"{session.get(Agency, agency_id).name} 将 {resource.code}（{resource.name}）的共享数据"
                              f"{what} {len(ids)} 次；授权用途：{grant.purpose}",
                      facts={"reads": len(ids), "granted_purpose": grant.purpose, "why": why})
    revoked: dict[int, list[int]] = defaultdict(list)
    for event in _events(session, result="denied"):
        token_id = event.detail.get("token")
        if event.detail.get("reason") == "API token revoked" and isinstance(token_id, int):
            revoked[token_id].append(event.id)
    for token_id, ids in revoked.items():
        token = session.get(ApiToken, token_id)
        if token is None:
            continue
        yield Finding(4, "revoked_token_use", token.agency_id, str(token_id),
                      records=[_ref("api_tokens", token_id)] + [_ref("audit_events", i) for i in ids[:MAX_EVENT_IDS]],
                      summary=f"{token.agency.name} 的访问令牌“{token.name}”吊销后仍被使用 {len(ids)} 次（凭证失控）",
                      facts={"attempts": len(ids), "revoked_at": clock.as_utc(token.revoked_at).isoformat()
                             if token.revoked_at else None})


# --- recording -------------------------------------------------------------------------------------------------

def find_violations(session: Session, *, as_of: date, config: EvaluationConfig | None = None) -> list[Finding]:
    """Every finding the records show as of the day, without recording anything."""
    config = config or load_config()
    return [*_not_provided(session, as_of, config), *_collection(session), *_late_or_inaccurate(session, as_of, config),
            *_use(session)]


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
        if violation.status == "resolved":
            violation.status, violation.resolved_on, fresh = "open", None, True
    if fresh:
        from registry.sharing.applications import notify

        notify(session, kind="violation", agency_id=violation.agency_id,
               message=f"监督发现（第二十三条第{'一二三四五六'[violation.case - 1]}项）：{violation.summary}")
        record_event(session, actor=actor, action="violation.open", agency_code=violation.agency.code,
                     resource_code=violation.resource.code if violation.resource else None,
                     detail={"violation": violation.id, "case": finding.case, "kind": finding.kind,
                             "evidence": finding.evidence["records"][:10]})
    return violation, fresh


def detect_violations(session: Session, *, as_of: date, actor: str = "supervision",
                      config: EvaluationConfig | None = None) -> DetectionReport:
    """Record today's findings; resolve detected violations the records no longer show."""
    findings = find_violations(session, as_of=as_of, config=config)
    found, new = [], []
    for finding in findings:
        violation, fresh = upsert_violation(session, finding=finding, on=as_of, actor=actor)
        found.append(violation)
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
    return DetectionReport(found=found, new=new, resolved=resolved)


def record_finding(session: Session, *, case: int, agency: str, summary: str, by: Principal,
                   resource_code: str | None = None, records: list[dict[str, Any]] | None = None,
                   on: date | None = None) -> Violation:
    """The commission's own inspection finding (监督检查), e.g. data passed to a third party (case 5)."""
    require(by, by.has("supervisor", "coordination_office"), zh="只有监督机构可以登记检查发现的违规",
            en="only the supervisor or the coordination office records inspection findings")
    if case not in VIOLATION_CASES:
        raise ConfigError(f"情形 {case} 无效，可选 1-6 / case must be 1-6 (article 23)")
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
    if case:
        query = query.where(Violation.case == case)
    rows = list(session.scalars(query))
    if by.kind == "console" or by.has(*OVERSIGHT_ROLES):
        return rows
    return [v for v in rows if v.agency_id == by.agency_id]
