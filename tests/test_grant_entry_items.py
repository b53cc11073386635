"""Grants and the items their catalogue entry lists (信息项): a republished entry's row condition and lifted masks,
the consumer told of each change, the resource's registered key, subscription grants made before grants
followed the entry, and the term (有效期) a provider sets on the decision page."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import clock
from tests.helpers import CONSUMER, ENTERPRISE_COLUMNS, OTHER_PROVIDER, publish_entry
from tests.sharing_world import APPROVED_ITEMS, PASSWORD, World, small_world
from tests.test_sharing_followups import _as

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]

CATALOGUED = ("id", "name", "status")


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    """The sharing world on a SQLite registry, then on a PostgreSQL one (JSON columns and terms alike)."""
    request.getfixturevalue("hub_home" if request.param == "sqlite" else "pg_hub_home")
    return small_world(tmp_path, rows=30, seed=29)


def _read(world: World, code: str, *, token: str = "system:consumer"):  # noqa: ANN202
    from delivery.access import authorize_read
    from registry.db import session_scope

    with session_scope() as session:
        return authorize_read(session, token=world.tokens[token], resource_code=code, channel="file")


def _told(kind: str, username: str = "consumer-data_admin") -> list[str]:
    from registry.db import session_scope
    from registry.sharing.applications import inbox

    with session_scope() as session:
        return [m.message for m in inbox(session, by=_as(session, username)) if m.kind == kind]


def _republish(code: str, columns) -> None:  # noqa: ANN001
    from registry.db import session_scope

    with session_scope() as session:
        publish_entry(session, code, columns=columns)


def _without(*dropped: str) -> list[str]:
    return [c for c in ENTERPRISE_COLUMNS if c not in dropped]


def test_a_row_condition_on_an_item_the_entry_drops_ends_the_grant_with_the_reason(world: World) -> None:
    """The approval's row condition reads ``status``; republished without it, the grant lost the column but kept
    the condition, so the consumer went on reading rows chosen by an item the entry no longer shares. The grant
    ends, the consumer is told why, and a read says it was revoked."""
    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants

    code = world.resources["conditional"]
    assert _read(world, code).row_filter["column"] == "status"
    _republish(code, _without("status"))
    with pytest.raises(AccessDenied) as refused:
        _read(world, code)
    assert "revoked" in refused.value.en
    [told] = _told("grant_ended")
    assert "行条件" in told and "status" in told and "重新" in told
    assert _told("grant_changed") == []  # ended, not changed
    with session_scope() as session:
        assert baseless_grants(session) == []


def test_a_lifted_mask_on_an_item_the_entry_drops_is_trimmed_and_not_restored(world: World) -> None:
    from registry.db import session_scope
    from registry.sharing.applications import decide, get_application
    from registry.sharing.grants import get_grant, lifted_masks

    number, code = world.pending_application, world.resources["pending"]
    with session_scope() as session:
        decide(session, number=number, outcome="approve", reasons="执法检查所需", unmask=["id", "name"],
               by=_as(session, "provider-data_admin"))
        grant_id = get_application(session, number=number).grant_id
    _republish(code, _without("name"))
    _republish(code, ENTERPRISE_COLUMNS)  # listed again: neither the item nor its lifted mask come back
    with session_scope() as session:
        grant = get_grant(session, grant_id=grant_id)
        assert grant.status == "active" and grant.columns == ["id"] and lifted_masks(grant) == ["id"]
    [told] = _told("grant_changed")
    assert "name" in told and "脱敏" in told


def test_the_consumer_is_told_once_per_change_of_its_grant_and_what_changed(world: World) -> None:
    code = world.resources["unconditional"]
    _republish(code, CATALOGUED)
    _republish(code, (*CATALOGUED, "uscc"))
    narrowed, widened = _told("grant_changed")  # one message per change
    dropped = [c for c in ENTERPRISE_COLUMNS if c not in CATALOGUED]
    assert "不再包含" in narrowed and all(c in narrowed for c in dropped) and "新增" not in narrowed
    assert "新增" in widened and "uscc" in widened and "不再包含" not in widened
    assert all(code in message and "第" in message for message in (narrowed, widened))


def test_a_changed_term_or_mask_is_told_and_an_unchanged_grant_is_not(world: World) -> None:
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.applications import get_application
    from registry.sharing.grant_change import change_grant
    from registry.sharing.grants import get_grant, term_end

    term = clock.today() + timedelta(days=30)
    with session_scope() as session:
        grant = get_grant(session, grant_id=get_application(session, number=world.application).grant_id)
        changes = [change_grant(session, grant=grant, by=console("test"), why_zh="提供方调整", why_en="adjusted",
                                **change) for change in ({"expires_at": term_end(term), "unmasked_columns": ["name"]},
                                                         {"expires_at": term_end(term), "columns": grant.columns})]
    assert changes == [True, False]
    [told] = _told("grant_changed")
    assert f"有效期改为至{term.year}年{term.month}月{term.day}日" in told and "不再脱敏：name" in told


def test_the_registered_key_stays_on_a_grant_and_no_other_unlisted_column_is_granted(world: World) -> None:
    """Decided: the entry's items are what may be shared, and the resource's registered key (登记的主键) that a
    grant names besides; a grant may name nothing else, at its making or after a republication."""
    from core.errors import ConfigError
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.sharing.grants import create_grant

    code = world.resources["conditional"]
    _republish(code, _without("id", "legal_rep"))  # a technical key the entry does not list
    assert _read(world, code).columns == [c for c in APPROVED_ITEMS if c != "legal_rep"]  # id kept, legal_rep not
    with session_scope() as session:
        resource, other = get_resource(session, code=code), get_agency(session, ref=OTHER_PROVIDER[0])
        with pytest.raises(ConfigError) as unlisted:
            create_grant(session, resource=resource, agency=other, origin="application", purpose="核验",
                         by=console("test"), columns=["id", "legal_rep"])
        assert "legal_rep" in str(unlisted.value)
        with pytest.raises(ConfigError):  # nor rows chosen by one
            create_grant(session, resource=resource, agency=other, origin="application", purpose="核验",
                         by=console("test"), columns=["id", "name"],
                         row_filter={"column": "legal_rep", "op": "eq", "value": "张三"})
        assert create_grant(session, resource=resource, agency=other, origin="application", purpose="核验",
                            by=console("test"), columns=["id", "name"]).columns == ["id", "name"]


def test_a_subscription_grant_of_every_column_serves_only_the_entrys_items(world: World) -> None:
    """Subscriptions from before grants followed the entry (migration 0016) grant every column (None): until the
    entry was republished the consumer read columns it does not list. Served, such a grant covers the items."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.sharing.grants import create_grant
    from registry.sharing.visibility import subscriber_scope

    code = world.resources["unconditional"]
    _republish(code, CATALOGUED)
    with session_scope() as session:
        other = get_agency(session, ref=OTHER_PROVIDER[0])
        create_grant(session, resource=get_resource(session, code=code), agency=other, origin="subscription",
                     purpose="企业名录核对", by=console("migration 0016"), columns=None)
    assert _read(world, code, token="system:other").columns == list(CATALOGUED)
    with session_scope() as session:  # the update notices tell of the same
        scope = subscriber_scope(session, resource=get_resource(session, code=code),
                                 agency_id=get_agency(session, ref=OTHER_PROVIDER[0]).id)
        assert scope.columns == list(CATALOGUED)


def test_the_provider_sets_the_term_on_the_decision_page(world: World) -> None:
    """The API and CLI take a term (有效期); the page had no field, so a provider deciding there granted without
    end. The page takes it and refuses a day already past, as the API does."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from registry.sharing.applications import get_application
    from registry.sharing.grants import get_grant

    number = world.pending_application
    provider = TestClient(create_app())
    assert provider.post("/web/login", data={"username": "provider-data_admin", "password": PASSWORD},
                         follow_redirects=False).status_code == 303
    page = provider.get(f"/web/applications/{number}").text
    assert 'id="decision-expires"' in page and "有效期" in page
    form = {"outcome": "approve", "reasons": "执法检查所需", "approved_items": ["id", "name"]}
    term = clock.today() + timedelta(days=90)
    answers = [provider.post(f"/web/applications/{number}/decision", data={**form, "expires_on": day},
                             follow_redirects=False) for day in (
        (clock.today() - timedelta(days=1)).isoformat(), "明年", term.isoformat())]
    for answer, said in zip(answers[:2], ("早于今天", "不是日期")):
        assert answer.status_code == 400 and said in answer.text, re.findall(r"操作未完成：[^<]*", answer.text)
    assert answers[2].status_code == 303, answers[2].text
    with session_scope() as session:
        made = get_grant(session, grant_id=get_application(session, number=number).grant_id)
        decided = session.scalars(select(AuditEvent).where(AuditEvent.action == "grant.create")
                                  .order_by(AuditEvent.id.desc())).first()
        assert made.agency.code == CONSUMER[0] and clock.beijing_day(made.expires_at) == term
        assert decided.actor == "user:provider-data_admin" and decided.detail["grant"] == made.id


def _grant_other(code: str, *, columns: list[str] | None, origin: str = "application") -> int:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.sharing.grants import create_grant

    with session_scope() as session:
        return create_grant(session, resource=get_resource(session, code=code), agency=get_agency(
            session, ref=OTHER_PROVIDER[0]), origin=origin, purpose="执法检查", by=console("test"), columns=columns).id


def _header(answer) -> list[str]:  # noqa: ANN001 - a response
    return answer.text.lstrip("\ufeff").splitlines()[0].replace('"', "").split(",")


def _served(world: World, code: str) -> dict[str, list[str]]:
    """The columns a consumer's system gets of the resource through each delivery route, and its notices."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.sharing.visibility import subscriber_scope
    from tests.helpers import bearer

    client, auth, base = TestClient(create_app()), bearer(world.tokens["system:other"]), f"/api/v1/resources/{code}"
    page = client.get(f"{base}/records", params={"limit": 5}, headers=auth)
    download = client.get(f"{base}/files", params={"format": "csv"}, headers=auth)
    changes = client.get(f"{base}/changes", params={"since": 1, "format": "csv"}, headers=auth)
    versions = client.get(f"{base}/versions", headers=auth)
    for answer in (page, download, changes, versions):
        assert answer.status_code == 200, answer.text
    with session_scope() as session:
        noticed = subscriber_scope(session, resource=get_resource(session, code=code),
                                   agency_id=get_agency(session, ref=OTHER_PROVIDER[0]).id).columns
    return {"records": sorted({c for record in page.json()["records"] for c in record}),
            "files": sorted(_header(download)), "changes": sorted(c for c in _header(changes) if not c.startswith("_")),
            "versions": sorted(f["name"] for f in versions.json()[0]["schema_fields"]),
            "notices": sorted(noticed) if noticed is not None else ["(every column)"]}


def test_a_grant_of_the_whole_version_serves_only_the_entrys_items_and_the_key(world: World) -> None:
    """An application or console grant approved as the whole version (no column list) served every column of
    the version, those the entry does not list too. Served, it covers the entry's items and the registered key,
    on every route a consumer reads and in its notices."""
    code = world.resources["pending"]
    _republish(code, ("name", "status"))  # ``id``, the registered key, is no listed item
    _grant_other(code, columns=None)
    expected = sorted(["name", "status", "id"])
    assert _served(world, code) == dict.fromkeys(("records", "files", "changes", "versions", "notices"), expected)


def test_a_grant_from_before_grants_followed_the_entry_is_served_narrowed_and_reported(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grant made before grants followed the entry's items may name a column the entry no longer lists until
    its next republication: it was served that column. Served narrowed; `govshare sharing check` names it (exit
    1), and no longer once the republication took the column off the grant."""
    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.subscriptions import subscribe

    code = world.resources["unconditional"]
    with session_scope() as session:  # a live subscription: the grant has its basis
        subscribe(session, resource_code=code, agency=OTHER_PROVIDER[0], purpose="企业名录核对", by=console("test"))
    with monkeypatch.context() as before:  # as the hub published before grants followed the entry's items
        before.setattr("registry.sharing.entry_items.follow_entry_items", lambda session, **_: None)
        _republish(code, ("name", "status"))
    assert _served(world, code) == dict.fromkeys(("records", "files", "changes", "versions", "notices"),
                                                 ["id", "name", "status"])
    from registry.sharing.check import unlisted_grant_columns

    with session_scope() as session:
        [found] = [f for f in unlisted_grant_columns(session) if f.agency_code == OTHER_PROVIDER[0]]
        assert found.resource_code == code and found.columns == _without("id", "name", "status")
    checked = CliRunner().invoke(app, ["sharing", "check"])
    assert checked.exit_code == 1 and "reg_capital" in checked.output and "未列出" in checked.output, checked.output
    _republish(code, ("name", "status", "address"))  # the next republication brings the grant in line
    checked = CliRunner().invoke(app, ["sharing", "check"])
    assert checked.exit_code == 0 and "未列出" not in checked.output, checked.output


def test_the_grant_change_message_names_the_items_in_chinese(world: World) -> None:
    """The consumer's message named raw columns (reg_capital); it names the entry's items (注册资本), those the
    entry just dropped by the name it listed them under, and a column the entry never named by itself."""
    from registry.db import session_scope

    code = world.resources["unconditional"]
    names = {"name": "企业名称", "status": "登记状态", "reg_capital": "注册资本", "legal_rep": "法定代表人"}
    with session_scope() as session:
        publish_entry(session, code, names=names)  # the same items, named: the grant does not change
    assert _told("grant_changed") == []
    with session_scope() as session:
        publish_entry(session, code, columns=CATALOGUED, names=names)
    [narrowed] = _told("grant_changed")
    assert "注册资本" in narrowed and "法定代表人" in narrowed and "reg_capital" not in narrowed
    assert "uscc" in narrowed  # named by its column alone in every revision
