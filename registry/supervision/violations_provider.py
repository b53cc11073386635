"""Violations of article 23 found in the provider's catalogue and data: cases (1) to (3).

(1) 不提供共享 (``no_data``, ``uncatalogued``, ``application_unanswered``), (2) 重复或扩大采集
(``duplicate_collection``, ``widened_collection``) and (3) 不真实、不准确或未按时 (``late_update``,
``reconfirmation_overdue``, ``inconsistent_copy``, ``inaccurate_data``, ``stale_data``), each read from the
catalogue, the versions and runs, the consistency checks and the quarantine (registry/supervision/violations.py
lists them). Separate from cases (4) and (5), which read the audit log (violations_use.py), and from recording.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from core.calendar.workdays import UnknownCalendarYear, add_working_days
from registry.catalog.elements import check_duplicate_collection
from registry.catalog.models import CatalogRevision, DataElement, Resource, UpdateObligation
from registry.catalog.obligations import overdue_reconfirmations
from registry.exchange.models import DatasetVersion, SchemaChange, SyncRun
from registry.quality.models import ConsistencyCheck, QuarantineRecord, QuarantineSet
from registry.sharing.models import Application
from registry.sharing.withdrawal import withdrawn_on
from registry.supervision.findings import Finding, row_ref
from schemas.catalog_metadata import code_list
from schemas.evaluation_config import EvaluationConfig
from schemas.presentation import label

__all__ = ["CYCLE_DAYS", "find_collection", "find_late_or_inaccurate", "find_not_provided"]

# Calendar days one update cycle spans (article 16 counts the 2 working days after the cycle's end).
CYCLE_DAYS = {"realtime": 1, "hourly": 1, "daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92,
              "half_yearly": 183, "yearly": 366}


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

def find_not_provided(session: Session, as_of: date, config: EvaluationConfig) -> Iterator[Finding]:
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
                          records=[row_ref("resources", resource.id), row_ref("catalog_revisions", revision.id)],
                          facts={"published_on": since.isoformat(), "versions": 0})
    for resource in session.scalars(select(Resource).where(Resource.catalog_status.in_(("registered", "draft")))
                                    .order_by(Resource.id)):
        since = clock.beijing_day(resource.created_at)
        if _past_grace(since, grace.uncatalogued_grace_working_days, as_of):
            yield Finding(1, "uncatalogued", resource.agency_id, str(resource.id), resource_id=resource.id,
                          summary=f"资源 {resource.code}（{resource.name}）{since} 登记后超过"
                                  f"{grace.uncatalogued_grace_working_days}个工作日未完成目录编制和审核发布"
                                  f"（状态 {label('catalog_statuses', resource.catalog_status)}）",
                          records=[row_ref("resources", resource.id)],
                          facts={"registered_on": since.isoformat(), "catalog_status": resource.catalog_status})
    yield from _unanswered_applications(session, as_of)


def _unanswered_applications(session: Session, as_of: date) -> Iterator[Finding]:
    """Applications left undecided past their due day. One the consumer withdrew after that day stays a violation,
    closed on the withdrawal day (申请答复及时率 counts it late: registry/sharing/withdrawal.py); one withdrawn by
    its due day had nothing left to answer."""
    overdue = list(session.scalars(select(Application).where(
        Application.status.in_(("submitted", "withdrawn")), Application.due_on < as_of).order_by(Application.id)))
    withdrawn = withdrawn_on(session, numbers=[a.number for a in overdue if a.status == "withdrawn"])
    for application in overdue:
        ended = withdrawn.get(application.number) if application.status == "withdrawn" else None
        if application.status == "withdrawn" and (ended is None or ended <= application.due_on):
            continue
        resource = application.resource
        yield Finding(1, "application_unanswered", resource.agency_id, str(application.id), resource_id=resource.id,
                      summary=f"共享申请 {application.number}（{application.consumer.name}申请{resource.name}）"
                              f"已过 {application.due_on} 的答复期限，未提出意见"
                              + (f"；申请机构已于 {ended} 撤回" if ended else ""),
                      records=[row_ref("sharing_applications", application.id), row_ref("resources", resource.id)],
                      facts={"number": application.number, "due_on": application.due_on.isoformat(),
                             **({"withdrawn_on": ended.isoformat()} if ended else {})},
                      closed_on=ended, closed_because=(f"申请机构于 {ended} 撤回申请，撤回时已过答复期限而未答复，"
                                                       f"违规成立，已无可答复" if ended else ""))


# --- (2) duplicate or widened collection -----------------------------------------------------------------------

def find_collection(session: Session) -> Iterator[Finding]:
    for resource, revision in _published(session):
        items = revision.content.get("data_items", [])
        codes = [i["element_code"] for i in items if i.get("element_code")]
        for finding in check_duplicate_collection(session, agency_code=resource.agency.code, element_codes=codes):
            if finding.kind != "duplicate_collection":
                continue
            element = session.scalar(select(DataElement).where(DataElement.code == finding.element_code))
            yield Finding(2, "duplicate_collection", resource.agency_id, f"{resource.id}:{finding.element_code}",
                          resource_id=resource.id, summary=f"{resource.code}（{resource.name}）：{finding.message_zh}",
                          records=[row_ref("resources", resource.id), row_ref("catalog_revisions", revision.id),
                                   row_ref("data_elements", element.id)],
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
                              records=[row_ref("schema_changes", change.id), row_ref("catalog_revisions", revision.id)],
                              facts={"added": extra, "run_id": change.run_id})


# --- (3) untrue, inaccurate or late ----------------------------------------------------------------------------

def find_late_or_inaccurate(session: Session, as_of: date, config: EvaluationConfig) -> Iterator[Finding]:
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
                      records=[row_ref("update_obligations", obligation.id), row_ref("resources", resource.id)],
                      facts={"opened_on": obligation.opened_on.isoformat(), "due_on": obligation.due_on.isoformat(),
                             "closed_on": closed.isoformat() if closed else None})
    for overdue in overdue_reconfirmations(session, today=as_of):
        resource = overdue.resource
        yield Finding(3, "reconfirmation_overdue", resource.agency_id, f"{resource.id}:{overdue.missed_year}",
                      resource_id=resource.id,
                      summary=f"目录条目 {resource.code}（{resource.name}）{overdue.missed_year}年度未进行全面维护"
                              f"（上次 {overdue.last_maintained}）",
                      records=[row_ref("resources", resource.id)],
                      facts={"last_maintained": overdue.last_maintained.isoformat(),
                             "missed_year": overdue.missed_year})
    latest_checks = select(func.max(ConsistencyCheck.id)).group_by(ConsistencyCheck.resource_id)
    for check in session.scalars(select(ConsistencyCheck).where(ConsistencyCheck.id.in_(latest_checks),
                                                                ConsistencyCheck.mismatches > 0)):
        resource = check.resource
        yield Finding(3, "inconsistent_copy", resource.agency_id, str(resource.id), resource_id=resource.id,
                      summary=f"{resource.code}（{resource.name}）与权威来源比对不一致 {check.mismatches} 处"
                              f"（比对 {check.rows_compared} 行）",
                      records=[row_ref("consistency_checks", check.id),
                               row_ref("dataset_versions", check.copy_version_id)],
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
                          records=[row_ref("dataset_versions", version.id)]
                          + ([row_ref("sync_runs", run.id)] if run else []),
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
                      records=[*(row_ref("quarantine_sets", i) for i in sets),
                               *([row_ref("dataset_versions", version.id)] if version is not None else [])],
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
                          records=[row_ref("quarantine_sets", quarantine.id), row_ref("sync_runs", run.id)],
                          facts={"rows": quarantine.rows, "rows_read": run.rows_read, "rules": quarantine.rules})
