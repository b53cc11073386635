"""Workflow invariants that cannot be walked around: only published entries are shared, a refusal takes back
what was granted, a withdrawn entry ends its grants, and `govshare sharing check` finds no grant without its
basis after walking every workflow path (and does find one planted by editing the table)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from samples.loaders import load_sqlite
from tests.helpers import CONSUMER, PROVIDER, bearer, running_api
from tests.sharing_world import World, small_world


pytestmark = pytest.mark.usefixtures("cheap_hashing")

@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    return small_world(tmp_path, rows=80, seed=73)


def _as(session, username: str):  # noqa: ANN001, ANN202
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    return user_principal(get_user(session, username=username))


def _baseless() -> list[int]:
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants

    with session_scope() as session:
        return [g.grant_id for g in baseless_grants(session)]


def test_a_registered_uncatalogued_resource_is_never_shared(hub_home: Path, tmp_path: Path) -> None:
    """The attack: `resource add` (已登记未编目), sync, then subscribe and download with the consumer's token."""
    from core.errors import AccessDenied
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.sharing.grants import create_grant
    from registry.people.auth import console
    from registry.people.agencies import get_agency
    from registry.catalog.resources import get_resource
    from registry.sharing.subscriptions import subscribe
    from tests.helpers import publish_entry, register_resource

    database = tmp_path / "market.db"
    load_sqlite(database, rows=20, seed=5)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, publish=False)
    sync_resource(resource_code=hub.resource_code, after=())
    with session_scope() as session:
        with pytest.raises(AccessDenied, match="未经保密审查和审核发布"):
            subscribe(session, resource_code=hub.resource_code, agency=CONSUMER[0], purpose="核验", actor="test")
    with session_scope() as session:
        with pytest.raises(AccessDenied, match="cannot be granted"):  # nor granted by any other path
            create_grant(session, resource=get_resource(session, code=hub.resource_code),
                         agency=get_agency(session, ref=CONSUMER[0]), origin="subscription", purpose="核验",
                         by=console("test"))
    with running_api() as api:
        url = f"{api.base_url}/api/v1/resources/{hub.resource_code}/files"
        refused = requests.get(url, headers=bearer(hub.token), timeout=30)
        # to the consumer's token it is as if no such resource existed (test_hostile_api)
        assert refused.status_code == 404 and "未经保密审查" not in refused.text
        with session_scope() as session:
            publish_entry(session, hub.resource_code)
            subscribe(session, resource_code=hub.resource_code, agency=CONSUMER[0], purpose="核验", actor="test")
        assert requests.get(url, headers=bearer(hub.token), timeout=30).status_code == 200


def test_a_refusing_conclusion_revokes_the_grant_and_the_next_read_fails(world: World) -> None:
    from registry.sharing.applications import get_application
    from registry.db import session_scope
    from registry.sharing.disputes import conclude_dispute, open_dispute
    from registry.sharing.grants import get_grant

    code = world.resources["conditional"]
    with running_api() as api:
        url = f"{api.base_url}/api/v1/resources/{code}/files"
        assert requests.get(url, headers=bearer(world.tokens["system:consumer"]), timeout=30).status_code == 200
        with session_scope() as session:
            application = get_application(session, number=world.application)
            earlier = application.grant_id
            dispute = open_dispute(session, number=world.application, grounds="审批需要注册资本",
                                   by=_as(session, "consumer-data_admin"))
            conclude_dispute(session, dispute_id=dispute.id, outcome="refuse", conclusion="不予共享",
                             by=_as(session, "office"))
            assert get_grant(session, grant_id=earlier).status == "revoked"
        after = requests.get(url, headers=bearer(world.tokens["system:consumer"]), timeout=30)
        assert after.status_code == 403
    assert _baseless() == []


def test_every_workflow_path_leaves_no_grant_without_its_basis(world: World) -> None:
    from core.errors import NotFound
    from registry.sharing.applications import apply, decide
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope
    from registry.sharing.disputes import conclude_dispute, open_dispute
    from registry.sharing.grants import list_grants, revoke_grant
    from registry.sharing.models import Application, Grant
    from registry.sharing.subscriptions import subscribe

    assert _baseless() == []  # subscription, partial approval with an agreement, a pending application
    with session_scope() as session:
        consumer, provider, office = (_as(session, n) for n in ("consumer-data_admin", "provider-data_admin", "office"))
        # a pending application refused outright: nothing granted
        decide(session, number=world.pending_application, outcome="refuse", reasons="不属于执法检查范围", by=provider)
        # the refusal disputed and concluded "approve": the conclusion grants
        dispute = open_dispute(session, number=world.pending_application, grounds="执法检查需要", by=consumer)
        conclude_dispute(session, dispute_id=dispute.id, outcome="approve", conclusion="应予共享", by=office)
        # article 17: leave to publish, then the partial grant disputed and concluded "partial"
        external = apply(session, resource_code=world.resources["conditional"], consumer=CONSUMER[0],
                         scope="统计公开", purpose="发布统计", items=["status"], kind="external", by=consumer)
        decide(session, number=external.number, outcome="approve", reasons="同意", by=provider)
    assert _baseless() == []
    with session_scope() as session:
        consumer, provider, office = (_as(session, n) for n in ("consumer-data_admin", "provider-data_admin", "office"))
        second = apply(session, resource_code=world.resources["pending"], consumer=CONSUMER[0], scope="全部",
                       purpose="执法检查", items=["id", "name"], by=consumer)
        decide(session, number=second.number, outcome="partial", approved_items=["id"], reasons="仅核验代码",
               by=provider)
        dispute = open_dispute(session, number=second.number, grounds="需要名称", by=consumer)
        conclude_dispute(session, dispute_id=dispute.id, outcome="refuse", conclusion="维持不予共享", by=office)
        # a grant revoked by hand
        live = [g for g in list_grants(session, by=provider) if g.status == "active"
                and g.resource.code == world.resources["unconditional"]]
        revoke_grant(session, grant_id=live[0].id, reason="超出共享用途使用", by=provider)
        subscribe(session, resource_code=world.resources["unconditional"], agency=CONSUMER[0], purpose="就业登记核验",
                  by=consumer)
    assert _baseless() == []
    # withdrawing the entry ends its grants, and nothing can be taken again
    with session_scope() as session:
        from registry.people.persons import add_person, designate

        add_person(session, agency=PROVIDER[0], account="provider-reviewer", name="审核人", actor="test")
        designate(session, account="provider-reviewer", role="reviewer", actor="test")
        withdraw_entry(session, code=world.resources["unconditional"], account="provider-reviewer",
                       reason="数据来源停止采集")
        gone = [g.status for g in session.scalars(select(Grant)) if g.resource.code == world.resources["unconditional"]]
        assert "active" not in gone
    # withdrawn: to the consumer as if no such resource (its inbox was told why its grant ended; test_hostile_api)
    with session_scope() as session, pytest.raises(NotFound, match="no resource"):
        subscribe(session, resource_code=world.resources["unconditional"], agency=CONSUMER[0], purpose="核验",
                  by=_as(session, "consumer-data_admin"))
    assert _baseless() == []
    with running_api() as api:
        url = f"{api.base_url}/api/v1/resources/{world.resources['unconditional']}/files"
        assert requests.get(url, headers=bearer(world.tokens["system:consumer"]), timeout=30).status_code == 404

    # the check is not vacuous: an application set to "refused" behind the hub's back leaves its grant baseless
    with session_scope() as session:
        planted_grant = session.scalars(select(Grant).where(Grant.status == "active", Grant.application_id.is_not(None))
                                        .order_by(Grant.id)).first()
        session.execute(update(Application).where(Application.id == planted_grant.application_id)
                        .values(status="refused"))
        planted = planted_grant.id
    assert _baseless() == [planted]
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["sharing", "check"], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and str(planted) in result.output and "approved" in result.output
    assert "共享申请" in result.output  # where the grant came from, in Chinese (grant_origins)
