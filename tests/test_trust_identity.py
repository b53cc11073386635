"""Identity cannot be walked around: the platform operator issues no user or token for an agency (and may still
disable any token); decisions and conclusions need a signed-in person, never a system token or the bare
console; the console acts `--as` an existing account, and the audit names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import CONSUMER, PROVIDER, bearer, running_api
from tests.sharing_world import World, small_world


pytestmark = pytest.mark.usefixtures("cheap_hashing")

@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    return small_world(tmp_path, rows=30, seed=43)


def test_the_operator_cannot_impersonate_an_agency(world: World) -> None:
    operator = world.tokens["provider:operator"]
    with running_api() as api:
        base = f"{api.base_url}/api/v1"
        minted = requests.post(f"{base}/tokens", json={"agency": CONSUMER[0], "name": "rogue"},
                               headers=bearer(operator), timeout=30)
        assert minted.status_code == 403 and "平台运维不代表任何机构" in minted.json()["detail_zh"]
        person = requests.post(f"{base}/users", headers=bearer(operator), timeout=30,
                               json={"username": "rogue", "agency": CONSUMER[0], "roles": ["data_admin"],
                                     "password": "correct-horse-battery"})
        assert person.status_code == 403
        for route in ("files", "versions"):  # and reads no data, metadata included
            read = requests.get(f"{base}/resources/{world.resources['unconditional']}/{route}",
                                headers=bearer(operator), timeout=30)
            assert read.status_code == 403, route
        # the agency's own administrator issues its tokens; the operator may disable any of them
        issued = requests.post(f"{base}/tokens", json={"agency": CONSUMER[0], "name": "hr-batch"},
                               headers=bearer(world.tokens["consumer:agency_admin"]), timeout=30)
        assert issued.status_code == 201
        other = requests.post(f"{base}/tokens", json={"agency": PROVIDER[0], "name": "cross"},
                              headers=bearer(world.tokens["consumer:agency_admin"]), timeout=30)
        assert other.status_code == 403  # and only its own agency's
        from registry.db import session_scope
        from registry.people.tokens import list_tokens

        with session_scope() as session:
            token_id = next(t.id for t in list_tokens(session) if t.name == "hr-batch")
        assert requests.delete(f"{base}/tokens/{token_id}", headers=bearer(operator), timeout=30).status_code == 204
        gone = requests.get(f"{base}/me", headers=bearer(issued.json()["token"]), timeout=30)
        assert gone.status_code == 401
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        refused = session.scalars(select(AuditEvent).where(AuditEvent.action == "request.refused",
                                                           AuditEvent.actor == "user:provider-operator")).all()
        assert len(refused) >= 2  # each attempt is on the record


def test_decisions_and_conclusions_need_a_person(world: World) -> None:
    from cli.main import app

    with running_api() as api:
        decided = requests.post(f"{api.base_url}/api/v1/applications/{world.pending_application}/decision",
                                json={"outcome": "approve", "reasons": "同意"}, timeout=30,
                                headers=bearer(world.tokens["system:provider"]))
        assert decided.status_code == 403 and "本人" in decided.json()["detail_zh"]
    runner = CliRunner()
    bare = runner.invoke(app, ["decide", world.pending_application, "--outcome", "approve", "--reason", "同意"])
    assert bare.exit_code == 4 and "--as" in bare.output  # the bare console is no person
    unknown = runner.invoke(app, ["decide", world.pending_application, "--outcome", "approve", "--reason", "同意",
                                  "--as", "nobody"])
    assert unknown.exit_code != 0 and "nobody" in unknown.output
    done = runner.invoke(app, ["decide", world.pending_application, "--outcome", "approve", "--reason", "同意执法检查",
                               "--as", "provider-data_admin"])
    assert done.exit_code == 0, done.output
    from registry.sharing.applications import get_application
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        assert get_application(session, number=world.pending_application).decided_by == "user:provider-data_admin"
        decision = session.scalars(select(AuditEvent).where(AuditEvent.action == "application.decide")
                                   .order_by(AuditEvent.id.desc())).first()
        assert decision.actor == "user:provider-data_admin"
