"""The quarantine store (隔离区): one record per run that quarantined rows; the rows stay in Parquet files.

Recorded in the publish transaction (pipeline/publish.py), so a version and its quarantine set commit together,
and the provider agency gets its error-correction ticket (疑义校核工单) in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.audit import record_event
from registry.models import Resource
from registry.quality_models import QUARANTINE_STATUSES, CorrectionTicket, QuarantineSet
from registry.resources import get_resource
from registry.tickets import open_ticket


def record_quarantine(session: Session, *, resource_id: int, run_id: str, version_id: int | None, path: str,
                      rows: int, rules: dict[str, int]) -> QuarantineSet:
    resource = session.get(Resource, resource_id)
    record = QuarantineSet(resource_id=resource_id, run_id=run_id, version_id=version_id, path=path, rows=rows,
                           rules=dict(rules), status="open")
    session.add(record)
    session.flush()
    by_rule = ", ".join(f"{rule} {count}" for rule, count in sorted(rules.items()))
    open_ticket(session, kind="quarantine", agency=resource.agency, resource=resource, rows=rows,
                title=f"{resource.name} ({resource.code}) 有 {rows} 行数据未通过校核, 请核实更正 / {rows} rows "
                      f"failed the quality rules ({by_rule}); please check and correct them",
                detail={"run_id": run_id, "rules": dict(rules)}, quarantine_set_id=record.id)
    return record


def list_quarantine(session: Session, *, resource_code: str, status: str | None = None) -> list[QuarantineSet]:
    """A resource's quarantine sets, newest first."""
    resource = get_resource(session, code=resource_code)
    query = select(QuarantineSet).where(QuarantineSet.resource_id == resource.id)
    if status:
        if status not in QUARANTINE_STATUSES:
            raise ConfigError(f"quarantine status {status!r} must be one of {', '.join(QUARANTINE_STATUSES)}")
        query = query.where(QuarantineSet.status == status)
    return list(session.scalars(query.order_by(QuarantineSet.id.desc())))


def open_sets(session: Session, *, resource_code: str, run_id: str | None = None) -> list[QuarantineSet]:
    """The open sets to export or replay: one run's (``run_id`` may be a prefix) or all of them, oldest first."""
    sets = [s for s in reversed(list_quarantine(session, resource_code=resource_code, status="open"))
            if run_id is None or s.run_id.startswith(run_id)]
    if not sets:
        which = f"run {run_id}" if run_id else "any run"
        raise NotFound(f"资源 {resource_code} 没有待处理的隔离数据 / no open quarantined rows for {resource_code} "
                       f"from {which}; `govshare quarantine list {resource_code}` shows them")
    return sets


def mark_replayed(session: Session, *, set_ids: list[int], replay_run_id: str, fixed: int, still_failing: int,
                  actor: str = "cli") -> None:
    """The sets were checked again into a new version: close them and their tickets."""
    for set_id in set_ids:
        record = session.get(QuarantineSet, set_id)
        record.status, record.replay_run_id, record.resolved_at = "replayed", replay_run_id, clock.now()
        for ticket in session.scalars(select(CorrectionTicket).where(CorrectionTicket.quarantine_set_id == set_id,
                                                                     CorrectionTicket.status == "open")):
            ticket.status, ticket.closed_at = "closed", clock.now()
            ticket.note = (f"已回放: {fixed} 行更正后发布, {still_failing} 行仍未通过 / replayed in run "
                           f"{replay_run_id[:8]}: {fixed} rows published, {still_failing} still failing")
        record_event(session, actor=actor, action="quarantine.replay", resource_code=record.resource.code,
                     detail={"set": set_id, "run_id": record.run_id, "replay_run_id": replay_run_id,
                             "fixed": fixed, "still_failing": still_failing})
