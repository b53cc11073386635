"""Requests without credentials, as a script probing the hub sends them: each 401 was one audit record, on every
route, with no limit, so a loop grew the audit log (and the chain `audit verify` walks) without bound. Now the
first refusal per client address, route and interval is recorded and the rest are folded into the next record's
`count` (registry/audit/probes.py): the records stay few and their counts still add up to the requests."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from tests.clock import on, pinned
from tests.helpers import running_api

pytestmark = pytest.mark.clock

PROBES = 40


def _refusals() -> list[tuple[str, int]]:
    """(path, count) of each anonymous `request.refused`, oldest first."""
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [(e.detail["path"], e.detail.get("count", 1)) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.actor == "anonymous", AuditEvent.action == "request.refused").order_by(AuditEvent.id))]


def test_a_flood_without_credentials_is_recorded_in_bounded_counted_records(hub_home: Path) -> None:
    start = on(date(2026, 12, 9))
    with pinned(start), running_api() as api:
        for number in range(PROBES):
            assert requests.get(f"{api.base_url}/api/v1/tickets", timeout=30).status_code == 401
            # another route; a different ticket each time is still the same route
            assert requests.get(f"{api.base_url}/api/v1/tickets/{number}", timeout=30).status_code == 401
        flood = _refusals()
        assert flood == [("/api/v1/tickets", 1), ("/api/v1/tickets/0", 1)], flood
        with pinned(start + timedelta(minutes=2)):  # the next interval: what was folded comes with its next record
            for path in ("/api/v1/tickets", "/api/v1/tickets/7"):
                assert requests.get(f"{api.base_url}{path}", timeout=30).status_code == 401
    records = _refusals()
    assert records[2:] == [("/api/v1/tickets", PROBES), ("/api/v1/tickets/7", PROBES)], records
    listing = [count for path, count in records if path == "/api/v1/tickets"]
    assert len(listing) == 2 and sum(listing) == PROBES + 1  # every request counted, in two records
    assert sum(count for path, count in records if path != "/api/v1/tickets") == PROBES + 1


def test_refusals_outside_a_request_are_each_recorded(hub_home: Path) -> None:
    """The console and the sweeps have no client address: their refusals are recorded one by one, as before."""
    from registry.audit.log import record_refusal

    for _ in range(3):
        record_refusal(actor="anonymous", action="request.refused", reason="test", detail={"path": "cli"})
    assert _refusals() == [("cli", 1)] * 3


def test_folded_refusals_of_two_agencies_from_one_address_stay_each_agencys_own(hub_home: Path) -> None:
    """Signed links of two agencies followed past their rate limits from one address (a shared proxy): the
    repeats were folded by address, route and reason alone, so one agency's refusals were counted on the other's
    next record. Each actor's and agency's refusals are folded only into its own records."""
    from registry.audit import probes
    from registry.audit.log import record_event
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    origin = probes.serving(address="10.0.0.9", route=lambda: "/api/v1/links/{link}")
    try:
        with pinned(on(date(2026, 12, 9))), session_scope() as session:
            for _ in range(3):  # the first agency's first refusal written, two counted
                record_event(session, actor="link:a-system", agency_code="A01", action="data.read",
                             result="denied", fold_repeats=True, detail={"reason": "rate limit exceeded (429)"})
            record_event(session, actor="link:b-system", agency_code="B02", action="data.read",
                         result="denied", fold_repeats=True, detail={"reason": "rate limit exceeded (429)"})
            session.commit()
            written = [(e.agency_code, e.detail["count"]) for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "data.read").order_by(AuditEvent.id))]
    finally:
        probes.done(origin)
    assert written == [("A01", 1), ("B02", 1)]  # B02's first refusal is on record, under B02


def test_the_rate_limit_and_the_audit_log_fold_refusals_through_one_tally(hub_home: Path) -> None:
    """Two roads folded repeated refusals: record_event's own (anonymous refusals, `fold_repeats`) and the rate
    limit's count asked before any database work, each keying its tallies its own way, so the same anonymous
    refusal folded on one road was a first record on the other. Both now go through probes.fold with the same
    refused party: an anonymous rate-limit refusal counted by the limit is folded into by the log, and back."""
    from delivery.ratelimit import RATE_LIMITED, refusal_count
    from registry.audit import probes
    from registry.audit.log import record_event
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    origin = probes.serving(address="10.0.0.7", route=lambda: "/api/v1/resources/{code}/records")
    try:
        with pinned(on(date(2026, 12, 9))), session_scope() as session:
            assert refusal_count(token=None, action="data.read") == 1  # the first of the interval: written
            for _ in range(2):  # the same refusal through the log: counted for the next record, not written
                assert record_event(session, actor="anonymous", action="data.read", result="denied",
                                    detail={"reason": RATE_LIMITED}) is None
            assert refusal_count(token=None, action="data.read") is None
            session.commit()
        with pinned(on(date(2026, 12, 9)) + timedelta(minutes=2)), session_scope() as session:
            written = record_event(session, actor="anonymous", action="data.read", result="denied",
                                   detail={"reason": RATE_LIMITED})
            assert written is not None and written.detail["count"] == 4  # itself and the three folded
            session.commit()
            assert session.scalars(select(AuditEvent).where(AuditEvent.action == "data.read")).all() == [written]
    finally:
        probes.done(origin)
