"""The stale-slot guard and the status of change-capture slots (复制槽).

A logical replication slot makes the source server keep every WAL segment its consumer has not confirmed.
If the hub stops, WAL piles up on the agency's server until its disk fills. The guard bounds this: a slot
holding back more than GOVSHARE_CDC_MAX_RETAINED_MB of WAL (or not confirmed for GOVSHARE_CDC_MAX_LAG_MINUTES,
or whose WAL the server already removed: wal_status 'lost') is dropped, a CdcResync mark records why, and
the resource's next run re-reads the table in full and creates a new slot. It runs at the start of every
change-capture run and from `govshare cdc guard` (cron or the maintenance DAG). For protection while the hub
is down entirely, also set max_slot_wal_keep_size on the source server; the guard then sees 'lost'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from connectors.postgres_cdc import ChangeCapture
from core import clock
from core.errors import GovshareError
from core.settings import get_settings
from pipeline.cdc_resource import capture_for, cdc_forms, is_cdc
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import CursorState
from registry.exchange.notice_models import CdcResync
from registry.catalog.resources import get_resource, list_resources

MIB = 1024 * 1024


@dataclass
class GuardResult:
    resource_code: str
    slot: str
    dropped: bool
    reason: str
    retained_bytes: int = 0


@dataclass
class SlotStatus:
    resource_code: str
    slot: str
    exists: bool
    active: bool = False
    retained_bytes: int = 0
    wal_status: str | None = None
    confirmed_lsn: str | None = None
    published_lsn: str | None = None
    resync_pending: str | None = None  # the reason of a resync mark not yet followed by a run
    problem: str | None = None


def mark_resync(*, resource_id: int, resource_code: str, slot: str, reason: str, retained_bytes: int | None) -> None:
    with session_scope() as session:
        session.add(CdcResync(resource_id=resource_id, slot=slot, reason=reason, retained_bytes=retained_bytes))
        record_event(session, actor="pipeline", action="cdc.resync_mark", resource_code=resource_code,
                     detail={"slot": slot, "reason": reason, "retained_bytes": retained_bytes})


def _last_confirmed(resource_id: int):  # noqa: ANN202 - datetime | None
    with session_scope() as session:
        state = session.get(CursorState, resource_id)
        if state is None or not cdc_forms(state.cursor_column):
            return None
        return clock.as_utc(state.updated_at)


def guard_slot(*, resource_code: str, capture: ChangeCapture | None = None) -> GuardResult | None:
    """Drop the resource's slot when it is stale; None when there is no slot or it is within the limits."""
    settings = get_settings()
    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        resource_id = resource.id
        capture = capture or capture_for(resource)
    info = capture.slot_info()
    if info is None:
        return None
    reasons = []
    limit = settings.cdc_max_retained_mb * MIB
    if info.wal_status == "lost":
        reasons.append("the source server already removed WAL this slot needed (wal_status lost)")
    if info.retained_bytes > limit:
        reasons.append(f"the slot holds back {info.retained_bytes / MIB:.1f} MB of WAL, over the limit of "
                       f"{settings.cdc_max_retained_mb} MB (GOVSHARE_CDC_MAX_RETAINED_MB)")
    confirmed = _last_confirmed(resource_id)
    if settings.cdc_max_lag_minutes and confirmed is not None \
            and clock.now() - confirmed > timedelta(minutes=settings.cdc_max_lag_minutes):
        reasons.append(f"no run confirmed a position since {confirmed:%Y-%m-%d %H:%M} UTC, over "
                       f"{settings.cdc_max_lag_minutes} minutes (GOVSHARE_CDC_MAX_LAG_MINUTES)")
    if not reasons:
        return None
    reason = "; ".join(reasons)
    if info.active:  # a run is reading it right now and will confirm; the next guard looks again
        return GuardResult(resource_code=resource_code, slot=capture.slot, dropped=False,
                           reason=f"{reason}; not dropped: the slot is in use", retained_bytes=info.retained_bytes)
    capture.drop_slot()
    mark_resync(resource_id=resource_id, resource_code=resource_code, slot=capture.slot,
                reason=f"复制槽已删除，需全量重读 / slot dropped, full re-read needed: {reason}",
                retained_bytes=info.retained_bytes)
    return GuardResult(resource_code=resource_code, slot=capture.slot, dropped=True, reason=reason,
                       retained_bytes=info.retained_bytes)


def cdc_resource_codes() -> list[str]:
    with session_scope() as session:
        return [r.code for r in list_resources(session) if r.source is not None and is_cdc(r.stream)]


def guard_all() -> list[GuardResult]:
    """The guard over every resource in cdc mode; a source that cannot be reached is reported, not fatal."""
    results = []
    for code in cdc_resource_codes():
        try:
            if (result := guard_slot(resource_code=code)) is not None:
                results.append(result)
        except GovshareError as exc:
            results.append(GuardResult(resource_code=code, slot="-", dropped=False, reason=f"not checked: {exc}"))
    return results


def cdc_status() -> list[SlotStatus]:
    """Every cdc resource's slot: whether it exists, WAL held back, confirmed and published positions."""
    statuses = []
    for code in cdc_resource_codes():
        with session_scope() as session:
            resource = get_resource(session, code=code)
            capture = capture_for(resource)
            state = session.get(CursorState, resource.id)
            published = state.cursor_value if state and cdc_forms(state.cursor_column) else None
            mark = session.scalar(select(CdcResync).where(CdcResync.resource_id == resource.id)
                                  .order_by(CdcResync.marked_at.desc()).limit(1))
            pending = None
            if mark is not None:
                marked = clock.as_utc(mark.marked_at)
                updated = state.updated_at if state else None
                updated = clock.as_utc(updated) if updated is not None else None
                if updated is None or updated < marked:
                    pending = mark.reason
        status = SlotStatus(resource_code=code, slot=capture.slot, exists=False, published_lsn=published,
                            resync_pending=pending)
        try:
            info = capture.slot_info()
        except GovshareError as exc:
            status.problem = str(exc)
        else:
            if info is not None:
                status.exists, status.active, status.retained_bytes = True, info.active, info.retained_bytes
                status.wal_status, status.confirmed_lsn = info.wal_status, info.confirmed_flush_lsn
        statuses.append(status)
    return statuses


def set_cdc_mode(*, resource_code: str, enabled: bool, actor: str = "cli") -> str | None:
    """Switch a resource to change capture, or back to table reads (dropping its slot and publication, which
    would otherwise hold WAL on the source for ever). The next cdc run starts with a full snapshot.
    Returns the slot name dropped, if any."""
    from connectors.kinds import connector_class
    from core.errors import ConfigError

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if enabled and (resource.source is None or "cdc" not in connector_class(resource.source.kind).capabilities
                        or not (resource.stream or {}).get("table")):
            raise ConfigError(f"resource {resource_code}: change capture (cdc) needs a postgresql source and a table")
        capture = capture_for(resource) if resource.source is not None and resource.source.kind == "postgresql" \
            else None
        stream = dict(resource.stream or {})
        was = stream.get("mode") or "auto"
        stream["mode"] = "cdc" if enabled else "auto"
        resource.stream = stream
        record_event(session, actor=actor, action="cdc.enable" if enabled else "cdc.disable",
                     agency_code=resource.agency.code, resource_code=resource_code,
                     detail={"from": was, "to": stream["mode"], "slot": capture.slot if capture else None})
    dropped = None
    if not enabled and capture is not None and was == "cdc":
        if capture.slot_info() is not None:
            capture.drop_slot()
            dropped = capture.slot
        capture.drop_publication()
    from registry.catalog.dagspecs import write_dag_specs

    write_dag_specs()
    return dropped


__all__ = ["GuardResult", "SlotStatus", "set_cdc_mode", "cdc_status", "guard_all", "guard_slot", "mark_resync"]
