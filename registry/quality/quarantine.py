"""The quarantine store (隔离区): a set per run that quarantined rows (the rows stay in its Parquet file) and
one record per key and rule (隔离记录), with one open ticket per provider and rule (all its resources).

A key read again settles its records: a rule it still breaks gets a new record that supersedes the old one,
a rule it no longer breaks is closed as fixed. A key gone from the source is closed as deleted (a full read
sees every key; an incremental run scans the source's keys, pipeline/deletes.py). So re-reading the same bad
rows never piles up records or tickets, and a row that breaks two rules is recorded under both.

Settled in the publish transaction (pipeline/publish.py), also by a run that publishes nothing because
nothing changed, so a version and its quarantine records commit together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.catalog.resources import get_resource
from registry.quality.models import QUARANTINE_STATUSES, CorrectionTicket, QuarantineRecord, QuarantineSet
from registry.quality.tickets import open_ticket

ROW_KEY_PREFIX = "row:"  # a row without a key is known by the digest of its values


@dataclass
class Findings:
    """What one run learnt about quarantined keys (collected while staging, settled at publish)."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)  # (key, rule, reason) it quarantined
    seen: set[str] = field(default_factory=set)  # keys of open records it read again, passing or not
    gone: set[str] = field(default_factory=set)  # keys of open records the source no longer has
    complete: bool = False  # it read every row of the source (a full read): an open key it did not see is gone

    @classmethod
    def from_dict(cls, data: dict | None) -> Findings:
        data = data or {}
        return cls(entries=[tuple(e) for e in data.get("entries", [])], seen=set(data.get("seen", [])),
                   gone=set(data.get("gone", [])), complete=bool(data.get("complete")))

    def as_dict(self) -> dict:
        return {"entries": [list(e) for e in self.entries], "seen": sorted(self.seen), "gone": sorted(self.gone),
                "complete": self.complete}


def open_keys(session: Session, *, resource_id: int) -> list[str]:
    """Keys with an open record (rows without a key excluded: no read can name them)."""
    return sorted({k for k in session.scalars(select(QuarantineRecord.key).where(
        QuarantineRecord.resource_id == resource_id, QuarantineRecord.status == "open"))
        if not k.startswith(ROW_KEY_PREFIX)})


def settle_quarantine(session: Session, *, resource_id: int, run_id: str, version_id: int | None, path: str | None,
                      rows: int, rules: dict[str, int], findings: Findings, actor: str = "pipeline") -> dict[str, int]:
    """Record a run's quarantined rows and settle the resource's open records and tickets (see the module)."""
    resource = session.get(Resource, resource_id)
    now = clock.now()
    quarantine_set = None
    if rows:
        quarantine_set = QuarantineSet(resource_id=resource_id, run_id=run_id, version_id=version_id, path=path,
                                       rows=rows, rules=dict(rules), status="open")
        session.add(quarantine_set)
        session.flush()
    new = {(key, rule): reason for key, rule, reason in findings.entries}
    counts = Counter()
    carried: dict[tuple[str, str], QuarantineRecord] = {}
    for record in session.scalars(select(QuarantineRecord).where(QuarantineRecord.resource_id == resource_id,
                                                                 QuarantineRecord.status == "open")):
        pair = (record.key, record.rule)
        if pair in new:
            carried[pair] = record
            continue
        if record.key in findings.gone:
            outcome = "deleted"
        elif record.key in findings.seen:
            outcome = "fixed"
        elif findings.complete:  # every row was read: a key not among them left the source, a changed row
            outcome = "fixed" if record.key.startswith(ROW_KEY_PREFIX) else "deleted"  # no longer reads so
        else:
            continue
        record.status, record.closed_reason, record.closed_at = "closed", outcome, now
        counts[outcome] += 1
    for (key, rule), reason in new.items():
        previous = carried.get((key, rule))
        record = QuarantineRecord(resource_id=resource_id, key=key, rule=rule, reason=reason,
                                  set_id=quarantine_set.id, status="open", created_at=now,
                                  first_seen_at=previous.first_seen_at if previous else now)
        if previous is not None:  # the same break read again: the newer reading replaces it
            previous.status, previous.closed_at = "superseded", now
            counts["superseded"] += 1
            session.flush()  # the open-record index allows one open record per key and rule
        session.add(record)
        session.flush()
        if previous is not None:
            previous.superseded_by = record.id
    counts["opened"] = len(new) - counts["superseded"]
    _settle_sets(session, resource_id, now)
    _settle_tickets(session, resource, now, actor=actor)
    if any(counts.values()):
        record_event(session, actor=actor, action="quarantine.settle", resource_code=resource.code,
                     detail={"run_id": run_id, **{k: v for k, v in counts.items() if v}})
    return dict(counts)


def _settle_sets(session: Session, resource_id: int, now) -> None:  # noqa: ANN001 - datetime
    """A set is open while one of its records is; a set from before records keeps its status."""
    live = set(session.scalars(select(QuarantineRecord.set_id).where(QuarantineRecord.resource_id == resource_id,
                                                                     QuarantineRecord.status == "open")))
    recorded = set(session.scalars(select(QuarantineRecord.set_id).where(QuarantineRecord.resource_id == resource_id)))
    for quarantine_set in session.scalars(select(QuarantineSet).where(QuarantineSet.resource_id == resource_id,
                                                                      QuarantineSet.status == "open")):
        if quarantine_set.id in recorded and quarantine_set.id not in live:
            quarantine_set.status, quarantine_set.resolved_at = "resolved", now


def _settle_tickets(session: Session, resource: Resource, now, *, actor: str) -> None:  # noqa: ANN001 - datetime
    """One open ticket per provider (agency) and rule, listing that rule's open records in every resource of
    the agency (``detail["resources"]``: open records per resource code, 0 once a resource's are settled);
    closed when none is left anywhere."""
    agency = resource.agency
    open_by_rule: dict[str, dict[str, int]] = {}
    reasons: dict[str, str] = {}
    newest: dict[str, int] = {}
    for record, code in session.execute(
            select(QuarantineRecord, Resource.code).join(Resource, Resource.id == QuarantineRecord.resource_id)
            .where(Resource.agency_id == agency.id, QuarantineRecord.status == "open")
            .order_by(QuarantineRecord.id)):
        by_code = open_by_rule.setdefault(record.rule, {})
        by_code[code] = by_code.get(code, 0) + 1
        reasons.setdefault(record.rule, record.reason)
        newest[record.rule] = max(newest.get(record.rule, 0), record.set_id)
    tickets = {t.rule: t for t in session.scalars(select(CorrectionTicket).where(
        CorrectionTicket.agency_id == agency.id, CorrectionTicket.kind == "quarantine",
        CorrectionTicket.status == "open", CorrectionTicket.rule.is_not(None)))}
    for rule, by_code in sorted(open_by_rule.items()):
        rows = sum(by_code.values())
        ticket = tickets.pop(rule, None)
        if ticket is None:
            first = session.scalar(select(Resource).where(Resource.agency_id == agency.id,
                                                          Resource.code == min(by_code)))
            open_ticket(session, kind="quarantine", agency=agency, resource=first, rows=rows,
                        title=_title(agency.name, rule, rows, by_code), rule=rule, actor=actor,
                        detail={"rule": rule, "reason": reasons[rule], "resources": dict(sorted(by_code.items()))},
                        quarantine_set_id=newest[rule])
            continue
        named = {**dict.fromkeys((ticket.detail or {}).get("resources", {}), 0), **by_code}
        if (ticket.rows, ticket.quarantine_set_id, (ticket.detail or {}).get("resources")) != (rows, newest[rule], named):
            ticket.rows, ticket.quarantine_set_id = rows, newest[rule]
            ticket.detail = {**(ticket.detail or {}), "resources": dict(sorted(named.items()))}
            ticket.title = _title(agency.name, rule, rows, by_code)
    for ticket in tickets.values():  # every row of that rule was fixed or deleted at the source
        ticket.status, ticket.closed_at, ticket.rows = "closed", now, 0
        ticket.detail = {**(ticket.detail or {}),
                         "resources": dict.fromkeys((ticket.detail or {}).get("resources", {}), 0)}
        ticket.note = "数据已更正或删除 / every row of this rule was read again correct, or is gone from the source"
        record_event(session, actor=actor, action="ticket.close", agency_code=agency.code,
                     resource_code=resource.code, detail={"ticket": ticket.id, "rule": ticket.rule, "note": ticket.note})


def _title(agency: str, rule: str, keys: int, by_code: dict[str, int]) -> str:
    codes = ", ".join(sorted(by_code))
    return (f"{agency} 有 {keys} 条数据未通过规则 {rule} (资源 {codes}), 请核实更正 / {keys} records (by key) of "
            f"{codes} break the rule {rule}; please check and correct them")


def list_quarantine(session: Session, *, resource_code: str, status: str | None = None) -> list[QuarantineSet]:
    """A resource's quarantine sets, newest first."""
    resource = get_resource(session, code=resource_code)
    query = select(QuarantineSet).where(QuarantineSet.resource_id == resource.id)
    if status:
        if status not in QUARANTINE_STATUSES:
            raise ConfigError(f"quarantine status {status!r} must be one of {', '.join(QUARANTINE_STATUSES)}")
        query = query.where(QuarantineSet.status == status)
    return list(session.scalars(query.order_by(QuarantineSet.id.desc())))


def open_records(session: Session, *, resource_id: int, rule: str | None = None) -> list[QuarantineRecord]:
    query = select(QuarantineRecord).where(QuarantineRecord.resource_id == resource_id,
                                           QuarantineRecord.status == "open")
    if rule is not None:
        query = query.where(QuarantineRecord.rule == rule)
    return list(session.scalars(query.order_by(QuarantineRecord.id)))


def open_sets(session: Session, *, resource_code: str, run_id: str | None = None) -> list[QuarantineSet]:
    """The open sets to export or replay: one run's (``run_id`` may be a prefix) or all of them, oldest first."""
    sets = [s for s in reversed(list_quarantine(session, resource_code=resource_code, status="open"))
            if run_id is None or s.run_id.startswith(run_id)]
    if not sets:
        which = f"run {run_id}" if run_id else "any run"
        raise NotFound(f"资源 {resource_code} 没有待处理的隔离数据 / no open quarantined rows for {resource_code} "
                       f"from {which}; `govshare quarantine list {resource_code}` shows them")
    return sets


def open_keys_of_sets(session: Session, *, set_ids: list[int]) -> dict[int, set[str] | None]:
    """Per set, the keys whose open records point at it; None for a set from before records (all rows open)."""
    found: dict[int, set[str] | None] = dict.fromkeys(set_ids)
    for set_id, key, status in session.execute(select(QuarantineRecord.set_id, QuarantineRecord.key,
                                                      QuarantineRecord.status).where(
            QuarantineRecord.set_id.in_(set_ids))):
        keys = found[set_id] if found[set_id] is not None else set()
        if status == "open":
            keys.add(key)
        found[set_id] = keys
    return found


def mark_replayed(session: Session, *, set_ids: list[int], replay_run_id: str, fixed: int, still_failing: int,
                  actor: str = "cli") -> None:
    """Sets from before per-key records were checked again into a new version: close them and their tickets.
    (Sets with records are settled by the replay's own publish, key by key.)"""
    recorded = open_keys_of_sets(session, set_ids=set_ids)
    for set_id in set_ids:
        record = session.get(QuarantineSet, set_id)
        record.replay_run_id = replay_run_id
        if recorded[set_id] is None and record.status == "open":
            record.status, record.resolved_at = "replayed", clock.now()
        for ticket in session.scalars(select(CorrectionTicket).where(CorrectionTicket.quarantine_set_id == set_id,
                                                                     CorrectionTicket.status == "open",
                                                                     CorrectionTicket.rule.is_(None))):
            ticket.status, ticket.closed_at = "closed", clock.now()
            ticket.note = (f"已回放: {fixed} 行更正后发布, {still_failing} 行仍未通过 / replayed in run "
                           f"{replay_run_id[:8]}: {fixed} rows published, {still_failing} still failing")
        record_event(session, actor=actor, action="quarantine.replay", resource_code=record.resource.code,
                     detail={"set": set_id, "run_id": record.run_id, "replay_run_id": replay_run_id,
                             "fixed": fixed, "still_failing": still_failing})
