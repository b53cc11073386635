"""A resource row edited in the registry database (registry/seals.py) on the catalogue's side: the data channels
refused it, but the catalogue search and listing, the entry page and the update notices still read its
`catalog_status` and sharing type as the UPDATE left them. A withdrawn entry made to look published came back in
search, the listing and on its page; a resource shared on application made to look unconditional announced its
versions to a subscriber whose grant had run out. An edited resource is now not shown and sends no notice, and
each refusal is audited, as the data channels' are."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from samples.loaders import load_sqlite
from tests.clock import on, pinned
from tests.helpers import CONSUMER, bearer, person_of, register_resource, running_api

pytestmark = pytest.mark.clock


def _sql(statement: str, **params) -> None:  # noqa: ANN003 - the statement's parameters
    from registry.db import session_scope

    with session_scope() as session:
        session.execute(text(statement), params)


def _denied(action: str) -> list[dict]:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [e.detail for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.result == "denied").order_by(AuditEvent.id))]


def test_a_withdrawn_entry_made_to_look_published_stays_out_of_the_catalogue(hub_home: Path) -> None:
    from api.web import shown_entry
    from core.errors import NotFound
    from registry.catalog.entries import list_entries
    from registry.catalog.review import withdraw_entry
    from registry.catalog.search import search_catalog
    from registry.db import session_scope

    hub = register_resource(kind=None)
    kept = register_resource(kind=None, name="企业年报信息", classification="101002")
    code = hub.resource_code
    with session_scope() as session:
        assert {h.code for h in search_catalog(session, keyword="企业").hits} == {code, kept.resource_code}
        reviewer = "rev-" + hub.provider_code[-8:].lower()
        withdraw_entry(session, code=code, account=reviewer, reason="数据源停用")
    # an UPDATE puts the withdrawn entry back as published, its revision too (revisions carry no seal)
    _sql("UPDATE resources SET catalog_status = 'published' WHERE id = :id", id=hub.resource_id)
    _sql("UPDATE catalog_revisions SET status = 'published' WHERE resource_id = :id", id=hub.resource_id)

    with session_scope() as session:
        assert [h.code for h in search_catalog(session, keyword="企业").hits] == [kept.resource_code]
        assert [r.code for r in list_entries(session, published_only=True, actor="user:test")] == [kept.resource_code]
        with pytest.raises(NotFound):
            shown_entry(session, person_of(session, CONSUMER[0], "data_admin"), code)
    with running_api() as api:
        for path in ("/api/v1/catalog", "/api/v1/catalog/entries"):
            listed = requests.get(f"{api.base_url}{path}", headers=bearer(hub.token), timeout=30)
            assert listed.status_code == 200, listed.text
            assert [e["code"] for e in listed.json()] == [kept.resource_code], (path, listed.text[:300])
    refused = _denied("catalog.read")
    assert refused and all("changed outside the hub" in d["reason"] for d in refused), refused
    assert {d["where"] for d in refused} == {"search", "catalogue list", "entry page"}


def test_a_resource_made_to_look_unconditional_sends_no_notice(hub_home: Path, tmp_path: Path) -> None:
    from pipeline.sync import sync_resource
    from tests.test_notice_grants import EXPIRES, _grant
    from tests.test_notices import _notices

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=30, seed=7)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                            classification="102001", sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
    with pinned(on(date(2026, 12, 9))):  # the application approved, the grant running to 10 December
        _grant(hub.resource_code, expires_at=EXPIRES)
    _sql("UPDATE resources SET sharing_type = 'unconditional', sharing_condition = '' WHERE id = :id",
         id=hub.resource_id)
    with pinned(on(date(2026, 12, 14))):  # the grant has run out
        report = sync_resource(resource_code=hub.resource_code)
    assert report.published
    assert _notices(resource_code=hub.resource_code) == []  # nothing announced, not even as withheld
    (refused,) = _denied("notice.queue")
    assert refused["version"] == report.version and "changed outside the hub" in refused["reason"]
