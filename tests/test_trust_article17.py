"""Article 17 at read time: reads carry the grant's purpose; a read declared for another purpose, or for
publication or onward transfer without an approved article-17 application, is refused and recorded, and
violation case 5 is found from exactly those records, made by real requests to the real API."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import select

from tests.helpers import CONSUMER, bearer, running_api
from tests.sharing_world import World, small_world


pytestmark = pytest.mark.usefixtures("cheap_hashing")

@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    return small_world(tmp_path, rows=60, seed=17)


def _events(**where: object) -> list:
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        query = select(AuditEvent).where(AuditEvent.action == "data.read").order_by(AuditEvent.id)
        return [e for e in session.scalars(query) if all(e.detail.get(k) == v for k, v in where.items())]


def test_purpose_and_onward_transfer_are_checked_on_every_read(world: World) -> None:
    from datetime import date

    from registry.sharing.applications import apply, decide
    from registry.people.auth import user_principal
    from registry.db import session_scope
    from registry.people.users import get_user
    from registry.supervision.violations import find_violations

    code, token = world.resources["conditional"], world.tokens["system:consumer"]
    with running_api() as api:
        def read(path: str, **headers: str) -> requests.Response:
            sent = {"X-Govshare-" + k.replace("_", "-").title(): quote(v) for k, v in headers.items()}
            return requests.get(f"{api.base_url}/api/v1/resources/{code}/{path}", timeout=30,
                                headers={**bearer(token), **sent})

        fitting = read("files", purpose="社保登记核验")
        assert fitting.status_code == 200
        assert _events(declared_purpose="社保登记核验", purpose="社保登记核验")  # the read carries the purpose
        paths = ("files", "records", "lookup?column=id&value=1", "changes?since=1")  # every channel that reads rows
        for path in paths:
            other = read(path, purpose="市场营销")
            assert other.status_code == 403 and "授权用途" in other.json()["detail_zh"], path
            onward = read(path, onward_to="某咨询公司")
            assert onward.status_code == 403 and "第十七条" in onward.json()["detail_zh"], path
        refused_purpose, refused_onward = _events(misuse="purpose"), _events(misuse="onward")
        assert len(refused_purpose) == len(refused_onward) == len(paths)
        assert all(e.result == "denied" and e.detail["purpose"] == "市场营销" for e in refused_purpose)

        with session_scope() as session:
            found = {(f.case, f.facts["why"]): {r["id"] for r in f.records if r["table"] == "audit_events"}
                     for f in find_violations(session, as_of=date(2026, 12, 6)) if f.case == 5}
        assert found == {(5, "purpose"): {e.id for e in refused_purpose},
                         (5, "onward"): {e.id for e in refused_onward}}

        # leave to pass on, through the approved article-17 application: then the same request is allowed
        with session_scope() as session:
            consumer = user_principal(get_user(session, username="consumer-data_admin"))
            external = apply(session, resource_code=code, consumer=CONSUMER[0], scope="向协作单位提供核验结果",
                             purpose="就业服务协作核验", items=["id", "status"], kind="external", by=consumer)
            decide(session, number=external.number, outcome="approve", reasons="同意向协作单位提供",
                   by=user_principal(get_user(session, username="provider-data_admin")))
        assert read("files", onward_to="某咨询公司").status_code == 200
        allowed = [e for e in _events(onward_to="某咨询公司") if e.result == "ok"]  # the read names the recipient
        assert len(allowed) == 1
        with session_scope() as session:  # and adds no violation
            onward = [f for f in find_violations(session, as_of=date(2026, 12, 6)) if f.case == 5]
            assert all(allowed[0].id not in {r["id"] for r in f.records} for f in onward)
