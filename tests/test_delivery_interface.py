"""Interface exchange on the real API (uvicorn on loopback): keyed lookups, filtered pages with a stable cursor,
bulk Arrow/Parquet streams; only granted columns and rows; a denied consumer; 429 with Retry-After."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.delivery_helpers import GRANTED, Delivery, delivery_hub, expected_rows
from tests.helpers import latest

# Every delivery test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Delivery]:
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    with delivery_hub(tmp_path) as made:
        yield made


def _path(served: Delivery, what: str) -> str:
    return f"/api/v1/resources/{served.hub.resource_code}/{what}"


def test_lookup_by_uscc_returns_only_granted_columns_and_rows(served: Delivery) -> None:
    version = latest(served.hub.resource_code)
    allowed = expected_rows(version)
    hidden = next(r for r in expected_rows(version, statuses=("注销", "吊销")))
    target = allowed[7]

    found = served.get(_path(served, "lookup"), token=served.hub.token, params={"column": "uscc", "value": target["uscc"]})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["version"] == 1 and body["manifest_sha256"] == version.manifest_sha256
    assert len(body["records"]) == 1
    record = body["records"][0]
    assert list(record) == GRANTED  # exactly the approved data items, in the grant's order
    assert record["name"] == target["name"] and Decimal(record["reg_capital"]) == target["reg_capital"]

    # A row outside the grant's row condition is not found, as if it did not exist.
    outside = served.get(_path(served, "lookup"), token=served.hub.token,
                         params={"column": "uscc", "value": hidden["uscc"]})
    assert outside.status_code == 200 and outside.json()["records"] == []

    picked = served.get(_path(served, "lookup"), token=served.hub.token,
                        params={"column": "id", "value": str(target["id"]), "fields": "uscc,name"})
    assert picked.json()["records"] == [{"uscc": target["uscc"], "name": target["name"]}]

    # Every lookup answered was audited first, with the grant it was answered under.
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        reads = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "data.read",
                                                              AuditEvent.result == "ok").order_by(AuditEvent.id)))
    assert len(reads) == 3
    assert all(e.detail["channel"] == "interface" and e.agency_code == served.hub.consumer_code for e in reads)
    assert [e.detail["rows"] for e in reads] == [1, 0, 1]

    # Neither reading nor searching on a column outside the grant.
    for params in ({"column": "uscc", "value": target["uscc"], "fields": "legal_rep_id"},
                   {"column": "legal_rep_id", "value": "310115197705249557"}):
        refused = served.get(_path(served, "lookup"), token=served.hub.token, params=params)
        assert refused.status_code == 403, refused.text
        assert "legal_rep_id" in refused.json()["detail"] and refused.json()["detail_zh"]


def test_a_lookup_answered_in_front_of_the_app_is_the_routes_answer_and_audited_alike(served: Delivery) -> None:
    """The first lookup is decided by the route; the next ones reuse the decision and are answered by the ASGI
    layer in front of FastAPI: the same bytes, each with its audit record. A declared purpose, a column
    outside the grant and a bad value still go to the route, which checks, refuses and records."""
    from urllib.parse import quote

    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    target = expected_rows(latest(served.hub.resource_code))[3]
    params = {"column": "uscc", "value": target["uscc"]}
    answers = [served.get(_path(served, "lookup"), token=served.hub.token, params=params) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert answers[0].content == answers[1].content == answers[2].content
    assert answers[1].headers["content-type"] == answers[0].headers["content-type"]
    declared = served.get(_path(served, "lookup"), token=served.hub.token, params=params,
                          headers={"X-Govshare-Purpose": quote("就业登记核验")})
    assert declared.status_code == 200 and declared.content == answers[0].content
    wrong = served.get(_path(served, "lookup"), token=served.hub.token, params=params,
                       headers={"X-Govshare-Purpose": quote("商业营销")})
    assert wrong.status_code == 403
    bad = served.get(_path(served, "lookup"), token=served.hub.token, params={"column": "id", "value": "x1"})
    assert bad.status_code == 400 and "int64" in bad.json()["detail"]
    with session_scope() as session:
        reads = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "data.read")
                                     .order_by(AuditEvent.id)))
    assert [(e.result, e.detail.get("declared_purpose"), e.detail.get("misuse")) for e in reads] == [
        ("ok", None, None), ("ok", None, None), ("ok", None, None), ("ok", "就业登记核验", None),
        ("denied", None, "purpose")]
    assert reads[-1].detail["purpose"] == "商业营销"
    assert reads[0].detail == reads[1].detail == reads[2].detail


def test_pages_follow_a_stable_cursor_with_filters(served: Delivery) -> None:
    version = latest(served.hub.resource_code)
    allowed = sorted(expected_rows(version), key=lambda r: r["id"])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 97, "fields": "id,uscc"}
        if cursor:
            params["cursor"] = cursor
        page = served.get(_path(served, "records"), token=served.hub.token, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["records"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        if pages == 2:
            # A newer version published mid-way does not shift the pages: the cursor pins version 1.
            from pipeline.sync import sync_resource

            sync_resource(resource_code=served.hub.resource_code, full=True)
    assert seen == [{"id": r["id"], "uscc": r["uscc"]} for r in allowed]
    assert pages > 3

    filtered = served.get(_path(served, "records"), token=served.hub.token,
                          params={"where": "status:在业", "limit": 1000}).json()
    assert filtered["records"] and all(r["status"] == "在业" for r in filtered["records"])
    assert len(filtered["records"]) == sum(1 for r in allowed if r["status"] == "在业")
    bad = served.get(_path(served, "records"), token=served.hub.token, params={"where": "address:上海"})
    assert bad.status_code == 403


def test_a_refused_page_does_not_break_the_next_requests(served: Delivery) -> None:
    """A page request refused after its access decision (a bad filter value: 400) rolled its session back, which
    expired the decision it had just cached; every request reusing it within the window was a bare 500."""
    target = expected_rows(latest(served.hub.resource_code))[0]
    bad = served.get(_path(served, "records"), token=served.hub.token, params={"where": "id:abc", "limit": 1})
    assert bad.status_code == 400 and bad.json()["detail_zh"], bad.text
    page = served.get(_path(served, "records"), token=served.hub.token, params={"limit": 1, "fields": "id"})
    assert page.status_code == 200, page.text
    found = served.get(_path(served, "lookup"), token=served.hub.token,
                       params={"column": "uscc", "value": target["uscc"], "fields": "uscc"})
    assert found.status_code == 200 and found.json()["records"] == [{"uscc": target["uscc"]}], found.text


def test_neither_an_edited_cursor_nor_an_unknown_column_reveals_hidden_columns(served: Delivery) -> None:
    """A cursor edited to sort by a column outside the grant (or a masked one) would give the rows in that
    column's order; an unknown column's error listed every column of the version, the hidden ones too."""
    import base64
    import json

    hidden = ["legal_rep_id", "address", "legal_rep", "established"]
    for column in ("legal_rep_id", "status", "nope"):
        raw = json.dumps({"v": 1, "k": column, "o": 0}).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        edited = served.get(_path(served, "records"), token=served.hub.token, params={"cursor": cursor, "limit": 5})
        assert edited.status_code == 400, edited.text
        assert "cursor" in edited.json()["detail"] and not any(h in edited.text for h in hidden)
    for what, params in (("records", {"where": "nope:1"}), ("lookup", {"column": "nope", "value": "1"}),
                         ("records", {"where": "address:上海"})):
        refused = served.get(_path(served, what), token=served.hub.token, params=params)
        assert refused.status_code == 403, refused.text  # unknown or hidden: the same answer
        assert refused.json()["detail_zh"] and not any(h in refused.text for h in hidden if h not in params.get(
            "where", "") + params.get("column", ""))
        assert "uscc" in refused.json()["detail"]  # it names what may be searched


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_bulk_read_streams_exactly_the_granted_rows(served: Delivery, fmt: str) -> None:
    version = latest(served.hub.resource_code)
    response = served.get(_path(served, "records"), token=served.hub.token, params={"format": fmt})
    assert response.status_code == 200, response.text
    table = (pa.ipc.open_stream(response.content).read_all() if fmt == "arrow"
             else pq.read_table(io.BytesIO(response.content)))
    assert table.column_names == GRANTED
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == sorted(expected_rows(version), key=lambda r: r["id"])
    assert response.headers["X-Govshare-Manifest-SHA256"] == version.manifest_sha256


def test_concurrent_lookups_are_each_audited_on_an_unbroken_chain(served: Delivery) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from registry.audit.log import verify_chain
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    allowed = expected_rows(latest(served.hub.resource_code))[:60]

    def look(row: dict) -> int:
        response = served.get(_path(served, "lookup"), token=served.hub.token,
                              params={"column": "uscc", "value": row["uscc"]})
        return len(response.json()["records"]) if response.status_code == 200 else -1

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert list(pool.map(look, allowed)) == [1] * len(allowed)
    with session_scope() as session:
        reads = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "data.read", AuditEvent.result == "ok"))
        assert reads == len(allowed)  # group commit: every answer had its own record
        assert verify_chain(session) == []


def test_a_consumer_without_a_grant_is_refused(served: Delivery) -> None:
    for what, params in (("lookup", {"column": "uscc", "value": "x"}), ("records", {}), ("records", {"format": "arrow"})):
        response = served.get(_path(served, what), token=served.denied_token, params=params)
        assert response.status_code == 403, response.text
        assert "grant" in response.json()["detail"]
        assert served.get(_path(served, what), params=params).status_code == 401


def test_rate_limit_answers_429_with_retry_after(hub_home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_RPS", "0.5")
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_BURST", "3")
    reset_settings()
    with delivery_hub(tmp_path, rows=50) as made:
        path = _path(made, "records")
        codes = [made.get(path, token=made.hub.token, params={"limit": 1}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = made.get(path, token=made.hub.token, params={"limit": 1})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "rate limit" in limited.json()["detail"] and "请求过于频繁" in limited.json()["detail_zh"]
        # Another consumer has its own bucket.
        assert made.get(path, token=made.denied_token, params={"limit": 1}).status_code == 403


def test_a_revoked_grant_stops_lookups(hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.sharing.grants import live_grant, revoke_grant
    from registry.catalog.resources import get_resource

    monkeypatch.setenv("GOVSHARE_DECISION_CACHE_SECONDS", "0")  # decide every request (default: reuse 1 s)
    reset_settings()
    with delivery_hub(tmp_path, rows=50) as made:
        row = expected_rows(latest(made.hub.resource_code))[0]
        params = {"column": "uscc", "value": row["uscc"]}
        assert made.get(_path(made, "lookup"), token=made.hub.token, params=params).status_code == 200
        with session_scope() as session:
            resource = get_resource(session, code=made.hub.resource_code)
            consumer = get_agency(session, ref=made.hub.consumer_code)
            grant_id = live_grant(session, resource=resource, agency_id=consumer.id).id
            revoke_grant(session, grant_id=grant_id, reason="用途已结束", by=console("test"))
        refused = made.get(_path(made, "lookup"), token=made.hub.token, params=params)
        assert refused.status_code == 403 and "grant" in refused.json()["detail"]


def test_reads_of_an_earlier_version_are_audited_as_that_version(served: Delivery) -> None:
    from sqlalchemy import select

    from pipeline.sync import sync_resource
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.helpers import sqlite_execute

    code = served.hub.resource_code
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)  # v2 is the latest; the consumer asks for v1
    target = expected_rows(latest(code))[3]
    asked = [served.get(_path(served, "lookup"), token=served.hub.token,
                        params={"column": "uscc", "value": target["uscc"], "version": 1}),
             served.get(_path(served, "records"), token=served.hub.token, params={"version": 1}),
             served.get(_path(served, "records"), token=served.hub.token, params={"version": 1, "format": "arrow"}),
             served.get(_path(served, "changes"), token=served.hub.token, params={"since": 1})]
    assert [a.status_code for a in asked] == [200] * 4
    assert asked[0].json()["version"] == asked[1].json()["version"] == 1
    with session_scope() as session:
        reads = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "data.read")
                                     .order_by(AuditEvent.id)))
    assert [e.detail["version"] for e in reads[-4:]] == [1, 1, 1, 2]  # what was read, not the latest
    assert reads[-1].detail["since"] == 1  # and the change file's range


def test_a_consumer_flooding_past_its_rate_limit_is_recorded_in_few_counted_records(
        hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer's requests turned away by the rate limit (429) left no record: a token hammering lookups or
    record pages was invisible to the reviewer. Each is now a refusal of that consumer's system (reason: rate
    limit), the fast lookup path's too, the repeats within the minute folded into the next record's count,
    so a flood adds a few rows whose counts add up to the requests refused."""
    from datetime import timedelta

    from sqlalchemy import select

    from core import clock
    from core.settings import reset_settings
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.clock import pinned

    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_RPS", "0.001")
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_BURST", "2")
    monkeypatch.setattr("delivery.ratelimit._LIMITERS", {})
    reset_settings()
    with delivery_hub(tmp_path, rows=50) as made:
        lookup = {"column": "uscc", "value": "x"}
        assert made.get(_path(made, "records"), token=made.hub.token, params={"limit": 1}).status_code == 200
        assert made.get(_path(made, "lookup"), token=made.hub.token, params=lookup).status_code == 200
        start, refused = clock.now(), 0
        for _ in range(15):  # the lookups answered in front of the app once the decision is cached, and pages
            for what, params in (("lookup", lookup), ("records", {"limit": 1})):
                assert made.get(_path(made, what), token=made.hub.token, params=params).status_code == 429
                refused += 1
        with pinned(start + timedelta(minutes=2)):  # the next interval: the folded ones come with the next record
            for what, params in (("lookup", lookup), ("records", {"limit": 1})):
                assert made.get(_path(made, what), token=made.hub.token, params=params).status_code == 429
                refused += 1
        with session_scope() as session:
            reader = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "data.read",
                                                                    AuditEvent.result == "ok")).first()
            records = [(e.actor, e.agency_code, dict(e.detail)) for e in session.scalars(select(AuditEvent).where(
                AuditEvent.result == "denied", AuditEvent.resource_code == made.hub.resource_code))]
    assert records and len(records) <= 6, records
    assert reader.startswith("system:")  # the consumer's own system, as its answered reads are recorded
    assert {(actor, agency) for actor, agency, _ in records} == {(reader, made.hub.consumer_code)}
    assert all("rate limit" in detail["reason"] for _, _, detail in records)
    assert sum(detail["count"] for _, _, detail in records) == refused


@pytest.mark.parametrize("presented", [None, "gst_not-a-token-of-this-hub"])
def test_a_caller_without_a_valid_token_turned_away_by_the_rate_limit_is_recorded_folded(
        hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, presented: str | None) -> None:
    """Requests without a token (limited by client address) or with a token the hub does not know, past the
    rate limit, answered 429 and left no record at all: only their first few 401s showed, so a script hammering
    the hub looked like two requests. Each 429 is now an anonymous refusal (reason: rate limit), folded per
    address, route and reason like the anonymous 401s: few records whose counts add up to the 429s."""
    from datetime import timedelta

    from sqlalchemy import select

    from core import clock
    from core.settings import reset_settings
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.clock import pinned

    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_RPS", "0.001")
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_BURST", "2")
    monkeypatch.setattr("delivery.ratelimit._LIMITERS", {})
    reset_settings()
    with delivery_hub(tmp_path, rows=50) as made:
        path = _path(made, "records")
        assert [made.get(path, token=presented).status_code for _ in range(2)] == [401, 401]
        start, refused = clock.now(), 0
        for _ in range(12):
            assert made.get(path, token=presented).status_code == 429
            refused += 1
        with pinned(start + timedelta(minutes=2)):  # the next interval: the folded ones come with the next record
            assert made.get(path, token=presented).status_code == 429
            refused += 1
        with session_scope() as session:
            limited = [(e.actor, dict(e.detail)) for e in session.scalars(select(AuditEvent).where(
                AuditEvent.result == "denied", AuditEvent.resource_code == made.hub.resource_code))
                if "rate limit" in e.detail.get("reason", "")]
    assert limited and len(limited) <= 3, limited
    assert {actor for actor, _ in limited} == {"anonymous"}
    assert all(detail["channel"] == "interface" for _, detail in limited)
    assert sum(detail["count"] for _, detail in limited) == refused
