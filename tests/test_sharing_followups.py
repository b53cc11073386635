"""Follow-ups of the sharing probe: a subscription grants only the catalogued data items; a secrecy agreement's
revocation is reasoned, once, and audited with its resource and agency; the provider hears of a dispute and the
consumer of its grant's end (and a read says so); a dispute concluded after the provider's term ran out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import re

import pytest
from sqlalchemy import select

from core import clock
from samples.loaders import load_sqlite
from tests.helpers import CONSUMER, ENTERPRISE_COLUMNS, PROVIDER, publish_entry
from tests.sharing_world import CHANNELS, World, build_world

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]

CATALOGUED = ("id", "name", "status")


@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    database = tmp_path / "market.db"
    load_sqlite(database, rows=40, seed=23)
    return build_world(database, tmp_path)


def _as(session, username: str):  # noqa: ANN001, ANN202
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    return user_principal(get_user(session, username=username))


def _read(world: World, code: str, *, token: str = "system:consumer", channel: str = "file"):  # noqa: ANN202
    from delivery.access import authorize_read
    from registry.db import session_scope

    with session_scope() as session:
        return authorize_read(session, token=world.tokens[token], resource_code=code, channel=channel)


def _inbox(username: str) -> list[tuple[str, str]]:
    from registry.db import session_scope
    from registry.sharing.applications import inbox

    with session_scope() as session:
        return [(m.kind, m.message) for m in inbox(session, by=_as(session, username))]


def test_a_subscription_grants_only_the_items_its_entry_catalogues(world: World) -> None:
    from delivery.access import restrict
    from delivery.files import iter_batches
    from pipeline.sync import sync_resource
    from registry.catalog.resources import add_resource, get_resource
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe
    from registry.sharing.visibility import subscriber_scope

    with session_scope() as session:
        source = get_resource(session, code=world.resources["unconditional"]).source.name
        resource = add_resource(session, name="企业名录（公开项）", agency=PROVIDER[0], classification="101001",
                                source=source, table="enterprises", primary_key=["id"], cursor_column="updated_at",
                                sharing_type="unconditional", sharing_condition="", sharing_modes=list(CHANNELS),
                                actor="test")
        code = resource.code
        publish_entry(session, code, columns=CATALOGUED)
    sync_resource(resource_code=code, after=())
    with session_scope() as session:
        subscribe(session, resource_code=code, agency=CONSUMER[0], purpose="企业名录核对",
                  by=_as(session, "consumer-data_admin"))
    for channel in CHANNELS:
        decision = _read(world, code, channel=channel)
        assert decision.columns == list(CATALOGUED), channel
    batch = next(restrict(decision, iter_batches(decision.version, columns=decision.read_columns)))
    assert batch.schema.names == list(CATALOGUED)  # no legal_rep_id, no reg_capital: not catalogued
    with session_scope() as session:  # the update notice tells of the same items
        scope = subscriber_scope(session, resource=get_resource(session, code=code),
                                 agency_id=_as(session, "consumer-data_admin").agency_id)
        assert scope.columns == list(CATALOGUED)


def test_an_item_the_entry_lists_but_the_source_does_not_deliver_is_absent_not_an_error(world: World) -> None:
    """An entry may list a data item its source does not deliver yet (or no longer: dropped at the source). The
    subscription grants it; the version has no such column, and every keyed lookup and page of the resource
    answered 500. The item is simply absent: the reader gets the granted items the version holds."""
    from delivery import interface
    from pipeline.sync import sync_resource
    from registry.catalog.resources import add_resource, get_resource
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe

    with session_scope() as session:
        source = get_resource(session, code=world.resources["unconditional"]).source.name
        code = add_resource(session, name="企业名录（含待接入项）", agency=PROVIDER[0], classification="101001",
                            source=source, table="enterprises", primary_key=["id"], cursor_column="updated_at",
                            sharing_type="unconditional", sharing_condition="", sharing_modes=list(CHANNELS),
                            actor="test").code
        publish_entry(session, code, columns=[*CATALOGUED, "credit_rating"])  # not in the source's table
    sync_resource(resource_code=code, after=())
    with session_scope() as session:
        subscribe(session, resource_code=code, agency=CONSUMER[0], purpose="企业名录核对",
                  by=_as(session, "consumer-data_admin"))
    decision = _read(world, code, channel="interface")
    assert decision.columns == list(CATALOGUED)
    found = interface.lookup(decision, decision.version, column="id", value="1", fields=None)
    assert found.num_rows == 1 and found.schema.names == list(CATALOGUED)


def test_revoking_a_secrecy_agreement_needs_a_reason_happens_once_and_names_what_it_ended(world: World) -> None:
    from core.errors import ConfigError
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from registry.sharing.agreements import list_agreements, revoke_agreement

    with session_scope() as session:
        provider = _as(session, "provider-data_admin")
        number = list_agreements(session, by=provider)[0].number
        with pytest.raises(ConfigError, match="理由"):
            revoke_agreement(session, number=number, reason="  ", by=provider)
        revoked = revoke_agreement(session, number=number, reason="需求方超范围使用", by=provider)
        first_end = clock.as_utc(revoked.revoked_at)
    with session_scope() as session:
        with pytest.raises(ConfigError, match="已于"):
            revoke_agreement(session, number=number, reason="再次撤销", by=_as(session, "provider-data_admin"))
    with session_scope() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "agreement.revoke")).all()
        assert len(events) == 1
        assert events[0].resource_code == world.resources["conditional"] and events[0].agency_code == CONSUMER[0]
        assert events[0].detail["reason"] == "需求方超范围使用"
        assert clock.as_utc(list_agreements(session, by=_as(session, "provider-data_admin"))[0].revoked_at) == first_end


def test_the_provider_hears_of_a_dispute_and_the_consumer_of_its_grants_end(world: World) -> None:
    from core.errors import AccessDenied
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.sharing.disputes import open_dispute
    from registry.sharing.grants import live_grant, revoke_grant

    with session_scope() as session:
        open_dispute(session, number=world.application, grounds="核验需要注册资本", by=_as(session, "consumer-data_admin"))
    assert any(kind == "dispute" and world.application in message for kind, message in _inbox("provider-data_admin"))

    code = world.resources["unconditional"]
    with session_scope() as session:
        grant = live_grant(session, resource=get_resource(session, code=code),
                           agency_id=_as(session, "consumer-data_admin").agency_id)
        revoke_grant(session, grant_id=grant.id, reason="内部核查：超出共享用途使用", by=_as(session, "provider-data_admin"))
    ended = [message for kind, message in _inbox("consumer-data_admin") if kind == "grant_ended"]
    assert len(ended) == 1 and "企业登记信息0" in ended[0]
    with pytest.raises(AccessDenied) as refused:
        _read(world, code)
    day = clock.today().isoformat()
    assert "no grant" not in refused.value.en and f"revoked on {day}" in refused.value.en
    assert "撤销" in refused.value.zh and "内部核查" not in refused.value.zh  # the provider's reason stays its own
    with pytest.raises(AccessDenied) as never:  # an agency that never held one is still told only that
        _read(world, code, token="system:other")
    assert "no grant" in never.value.en


def _after_the_term():  # noqa: ANN202 - a context manager
    """Two days on: a term can only be set from today on, so one that has run out is one set earlier."""
    from tests.clock import pinned

    return pinned(clock.now() + timedelta(days=2))


def test_a_dispute_concluded_after_the_providers_term_ran_out_needs_a_new_term(world: World) -> None:
    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.sharing.applications import decide
    from registry.sharing.disputes import conclude_dispute, open_dispute
    from registry.sharing.grants import get_grant

    with session_scope() as session:
        decide(session, number=world.pending_application, outcome="partial", approved_items=["id"],
               reasons="名称不属于执法检查所需", expires_on=clock.today(), by=_as(session, "provider-data_admin"))
    with _after_the_term():
        with session_scope() as session:
            dispute = open_dispute(session, number=world.pending_application, grounds="执法检查需要企业名称",
                                   by=_as(session, "consumer-data_admin"))
            office = _as(session, "office")
            with pytest.raises(ConfigError, match="期限") as refused:
                conclude_dispute(session, dispute_id=dispute.id, outcome="approve", conclusion="名称为执法所必需",
                                 by=office)
            assert "--expires" in refused.value.args[0]
            with pytest.raises(ConfigError, match="期限"):
                conclude_dispute(session, dispute_id=dispute.id, outcome="approve", conclusion="名称为执法所必需",
                                 expires_on=clock.today() - timedelta(days=1), by=office)
            concluded = conclude_dispute(session, dispute_id=dispute.id, outcome="approve",
                                         conclusion="名称为执法所必需",
                                         expires_on=clock.today() + timedelta(days=90), by=office)
            grant = get_grant(session, grant_id=concluded.application.grant_id)
            assert clock.beijing_day(clock.as_utc(grant.expires_at)) == clock.today() + timedelta(days=90)
        assert _read(world, world.resources["pending"]).grant_id == grant.id


def test_the_office_sets_the_new_term_on_the_conclusion_page(world: World) -> None:
    from registry.db import session_scope
    from registry.sharing.applications import decide

    number = world.pending_application
    with session_scope() as session:
        decide(session, number=number, outcome="partial", approved_items=["id"], reasons="名称不属于执法检查所需",
               expires_on=clock.today(), by=_as(session, "provider-data_admin"))
    with _after_the_term():
        _conclude_on_the_page(number)


def _conclude_on_the_page(number: str) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.db import session_scope
    from registry.sharing.applications import get_application
    from registry.sharing.disputes import open_dispute
    from registry.sharing.grants import get_grant
    from tests.sharing_world import PASSWORD

    with session_scope() as session:
        open_dispute(session, number=number, grounds="执法检查需要企业名称", by=_as(session, "consumer-data_admin"))
    office = TestClient(create_app())
    assert office.post("/web/login", data={"username": "office", "password": PASSWORD},
                       follow_redirects=False).status_code == 303
    assert 'name="expires_on"' in office.get(f"/web/applications/{number}").text
    form = {"outcome": "approve", "conclusion": "名称为执法所必需", "approved_items": ["id", "name"]}
    refused = office.post(f"/web/applications/{number}/conclusion", data=form, follow_redirects=False)
    assert refused.status_code == 400 and "另定授权期限" in refused.text, re.findall(r"操作未完成：[^<]*", refused.text)
    term = clock.today() + timedelta(days=60)
    done = office.post(f"/web/applications/{number}/conclusion", data={**form, "expires_on": term.isoformat()},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    with session_scope() as session:
        grant = get_grant(session, grant_id=get_application(session, number=number).grant_id)
        assert grant.columns == ["id", "name"] and clock.beijing_day(grant.expires_at) == term


def test_the_consumer_is_told_once_when_its_grant_runs_out(world: World) -> None:
    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.sharing.applications import decide
    from registry.supervision.daily import run_clocks

    ended = clock.today()
    with session_scope() as session:
        decide(session, number=world.pending_application, outcome="approve", reasons="同意执法检查使用",
               expires_on=ended, by=_as(session, "provider-data_admin"))
    with _after_the_term():
        assert len(run_clocks(actor="test")["expired_grants"]) == 1
        assert run_clocks(actor="test")["expired_grants"] == []  # told once, not every day
        told = [message for kind, message in _inbox("consumer-data_admin") if kind == "grant_ended"]
        assert len(told) == 1 and "到期" in told[0] and "企业登记信息2" in told[0]
        with pytest.raises(AccessDenied) as refused:
            _read(world, world.resources["pending"])
    assert f"on {ended.isoformat()}" in refused.value.en


def _grant_changes(code: str) -> list[dict]:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [dict(e.detail, actor=e.actor) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "grant.change", AuditEvent.resource_code == code).order_by(AuditEvent.id))]


def test_a_subscription_grant_follows_its_entrys_republished_items(world: World) -> None:
    """A subscription (无条件共享) grant kept the items of the entry it was made under: republished without an
    item, the consumer still read it; with a new one, it never got it. It now follows the published entry,
    narrowed and widened, each change audited as the reviewer who published it."""
    from registry.db import session_scope

    code = world.resources["unconditional"]
    assert _read(world, code).columns == list(ENTERPRISE_COLUMNS)
    with session_scope() as session:
        publish_entry(session, code, columns=CATALOGUED)
    assert _read(world, code).columns == list(CATALOGUED)  # legal_rep_id and the rest no longer shared
    with session_scope() as session:
        publish_entry(session, code, columns=(*CATALOGUED, "uscc"))
    assert _read(world, code).columns == [*CATALOGUED, "uscc"]
    changes = _grant_changes(code)
    assert [(c["before"], c["after"]) for c in changes] == [
        (list(ENTERPRISE_COLUMNS), list(CATALOGUED)), (list(CATALOGUED), [*CATALOGUED, "uscc"])]
    assert all(c["actor"].startswith("user:rev-") and c["origin"] == "subscription" for c in changes)


def test_an_application_grant_keeps_its_approval_but_loses_items_the_entry_drops(world: World) -> None:
    """An approved application's grant is what the provider approved: a republished entry adding items widens
    nothing, but an item the entry no longer lists is no longer shared through it."""
    from registry.db import session_scope
    from tests.sharing_world import APPROVED_ITEMS

    code = world.resources["conditional"]
    assert _read(world, code).columns == APPROVED_ITEMS
    with session_scope() as session:
        publish_entry(session, code, columns=[c for c in ENTERPRISE_COLUMNS if c != "legal_rep"])
    kept = [c for c in APPROVED_ITEMS if c != "legal_rep"]
    assert _read(world, code).columns == kept
    with session_scope() as session:
        publish_entry(session, code)  # legal_rep listed again: the approval is not widened back
    assert _read(world, code).columns == kept
    assert [(c["before"], c["after"], c["origin"]) for c in _grant_changes(code)] == [
        (APPROVED_ITEMS, kept, "application")]


def test_an_application_grant_with_none_of_its_items_left_ends_and_the_consumer_is_told(world: World) -> None:
    from core.errors import AccessDenied
    from registry.db import session_scope

    code = world.resources["conditional"]
    with session_scope() as session:
        publish_entry(session, code, columns=("uscc", "reg_capital"))
    with pytest.raises(AccessDenied) as refused:  # not an empty list read as "every column"
        _read(world, code)
    assert "revoked" in refused.value.en
    told = [message for kind, message in _inbox("consumer-data_admin") if kind == "grant_ended"]
    assert len(told) == 1 and "不再列出" in told[0]
