"""Rows the access and review checks read, edited in the registry database outside the hub (a careless operator,
a script): an API token moved to another agency or un-revoked, a user given another agency, a session moved to
another person, a designation that had ended opened again. Each was believed; each is now refused (audited) and
reported by `govshare sharing check`, and the row put back as the hub wrote it works again (registry/seals.py).
The hub's own writes (issue and revoke a token, add a user, set roles, sign in and out, designate) stay sealed."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.delivery_helpers import DENIED_AGENCY, Delivery
from tests.helpers import CONSUMER, PROVIDER
from tests.test_delivery_web import PASSWORD
from tests import test_trust_attacks
from tests.test_trust_attacks import _events, _login, _registry_sql

pytestmark = pytest.mark.clock
site = test_trust_attacks.site  # the delivery site fixture of the attack tests

FILES = "/api/v1/resources/{code}/files"


def _agency_id(code: str) -> int:
    from registry.db import session_scope

    with session_scope() as session:
        return session.execute(text("SELECT id FROM agencies WHERE code = :code"), {"code": code}).scalar_one()


def site_session():  # noqa: ANN201 - a session_scope
    from registry.db import session_scope

    return session_scope()


def _edited_reported() -> str:
    """What `govshare sharing check` prints of rows changed outside the hub (it exits 1 then): the tables named."""
    from cli.main import app
    from registry.seals import SEALED

    result = CliRunner().invoke(app, ["sharing", "check"])
    assert "Traceback" not in result.output, result.output
    named = " ".join(name for name in SEALED if name != "grants" and f" {name} " in result.output)
    assert not named or result.exit_code == 1, result.output
    return named


def test_a_token_moved_to_another_agency_in_the_database_is_refused(site: Delivery) -> None:
    """The statistics bureau's system token holds no grant; an UPDATE gave it the consumer's agency and it
    downloaded the consumer's granted data. Now it is an invalid credential (401, audited with the token's id),
    `sharing check` names the row, and put back it is the statistics bureau's token again (403: no grant)."""
    from registry.db import session_scope
    from registry.people.models import ApiToken
    from registry.people.tokens import authenticate

    files = FILES.format(code=site.hub.resource_code)
    assert site.get(files, token=site.denied_token, params={"format": "csv"}).status_code == 403
    with session_scope() as session:
        token_id = authenticate(session, token=site.denied_token).id
    _registry_sql("UPDATE api_tokens SET agency_id = :agency WHERE id = :id", agency=_agency_id(CONSUMER[0]),
                  id=token_id)

    moved = site.get(files, token=site.denied_token, params={"format": "csv"})
    assert moved.status_code == 401, (moved.status_code, moved.text[:300])
    assert "平台之外被改动" in moved.json()["detail_zh"], moved.json()
    refused = [d for _, result, d in _events("data.read") if result == "denied"]
    assert refused and refused[-1].get("token") == token_id and "changed outside the hub" in refused[-1]["reason"]
    assert "api_tokens" in _edited_reported()

    _registry_sql("UPDATE api_tokens SET agency_id = :agency WHERE id = :id", agency=_agency_id(DENIED_AGENCY[0]),
                  id=token_id)
    assert site.get(files, token=site.denied_token, params={"format": "csv"}).status_code == 403
    assert _edited_reported() == ""
    with session_scope() as session:
        assert session.get(ApiToken, token_id).agency.code == DENIED_AGENCY[0]


def test_a_revoked_token_revived_in_the_database_stays_refused(site: Delivery) -> None:
    """Revocation (吊销) undone by `UPDATE api_tokens SET revoked_at = NULL`, or an expiry pushed out, made the
    leaked token download again; the edited row is refused as an invalid credential."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.tokens import authenticate, revoke_token

    files = FILES.format(code=site.hub.resource_code)
    assert site.get(files, token=site.hub.token, params={"format": "csv"}).status_code == 200
    with session_scope() as session:
        token_id = authenticate(session, token=site.hub.token).id
        revoke_token(session, token_id=token_id, by=console("test"))
    assert site.get(files, token=site.hub.token, params={"format": "csv"}).status_code == 401

    _registry_sql("UPDATE api_tokens SET revoked_at = NULL, expires_at = :later WHERE id = :id",
                  later=date(2099, 1, 1), id=token_id)
    revived = site.get(files, token=site.hub.token, params={"format": "csv"})
    assert revived.status_code == 401, (revived.status_code, revived.text[:300])
    assert "changed outside the hub" in revived.json()["detail"], revived.json()


def test_a_user_moved_to_another_agency_in_the_database_is_refused(site: Delivery) -> None:
    """zhou of the statistics bureau (no grant) was moved by an UPDATE to the consumer's agency and read its
    data with the session already open, and signed in again as the consumer's data administrator. Now the session
    and the sign-in are refused (401, audited), a wrong password as the right one (neither makes the edit
    stick); put back, zhou's session works again."""
    token = _login(site, "zhou")
    files = FILES.format(code=site.hub.resource_code)
    assert site.get(files, token=token, params={"format": "csv"}).status_code == 403
    _registry_sql("UPDATE users SET agency_id = :agency WHERE username = 'zhou'", agency=_agency_id(CONSUMER[0]))

    escalated = site.get(files, token=token, params={"format": "csv"})
    assert escalated.status_code == 401, (escalated.status_code, escalated.text[:300])
    assert "用户账户" in escalated.json()["detail_zh"], escalated.json()
    wrong = requests.post(site.url("/api/v1/auth/login"), json={"username": "zhou", "password": "not-it"}, timeout=30)
    assert wrong.status_code == 401
    again = requests.post(site.url("/api/v1/auth/login"), json={"username": "zhou", "password": PASSWORD}, timeout=30)
    assert again.status_code == 401 and "changed outside the hub" in again.json()["detail"], again.text
    refused = [d for actor, result, d in _events("user.login") if actor == "user:zhou" and result == "denied"]
    assert refused and "changed outside the hub" in refused[-1]["reason"]
    read = [d for _, result, d in _events("data.read") if result == "denied"]
    assert read and "user account 'zhou'" in read[-1]["reason"], read
    assert "users" in _edited_reported()

    _registry_sql("UPDATE users SET agency_id = :agency WHERE username = 'zhou'", agency=_agency_id(DENIED_AGENCY[0]))
    assert site.get(files, token=token, params={"format": "csv"}).status_code == 403
    assert _edited_reported() == ""


def test_a_user_given_a_platform_role_in_the_database_is_refused_on_the_console(site: Delivery) -> None:
    """Roles escalated by an UPDATE (a data administrator made supervisor) were honoured by `--as` too."""
    from cli.main import app

    _registry_sql("""UPDATE users SET roles = '["supervisor"]' WHERE username = 'zhou'""")
    result = CliRunner().invoke(app, ["user", "list", "--as", "zhou"])
    assert result.exit_code != 0, result.output
    assert "changed outside the hub" in result.output and "Traceback" not in result.output, result.output


def test_a_session_moved_to_another_person_in_the_database_is_refused(site: Delivery) -> None:
    """zhou's session, moved by an UPDATE to wang (the consumer's data administrator), read as wang."""
    token = _login(site, "zhou")
    _registry_sql("UPDATE user_sessions SET user_id = (SELECT id FROM users WHERE username = 'wang') "
                  "WHERE user_id = (SELECT id FROM users WHERE username = 'zhou')")
    moved = site.get(FILES.format(code=site.hub.resource_code), token=token, params={"format": "csv"})
    assert moved.status_code == 401, (moved.status_code, moved.text[:300])
    assert "session" in moved.json()["detail"]
    assert "user_sessions" in _edited_reported()


def test_a_lockout_lifted_in_the_database_is_refused(site: Delivery) -> None:
    """zhou's account locked after five wrong passwords (连续失败锁定); an UPDATE cleared the lockout and the
    counter, and the guessing went on: the brute-force limit was one statement away, and the right password then
    signed in. The lockout is sealed now: the edited account refuses every sign-in, the right password and a
    wrong one alike (no answer tells a guess right), audited, and `sharing check` names the row; put back as the
    hub wrote it, it is simply locked again."""
    from registry.people.users import MAX_FAILURES

    def sign_in(password: str) -> requests.Response:
        return requests.post(site.url("/api/v1/auth/login"), json={"username": "zhou", "password": password},
                             timeout=30)

    for attempt in range(MAX_FAILURES):
        assert sign_in(f"guess-{attempt}").status_code == 401
    locked = sign_in(PASSWORD)
    assert locked.status_code == 401 and "too many failed logins" in locked.json()["detail"], locked.text
    with site_session() as session:
        stored = session.execute(text("SELECT failed_logins, locked_until FROM users WHERE username = 'zhou'")).one()
    _registry_sql("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = 'zhou'")

    for password in ("guess-again", PASSWORD):
        refused = sign_in(password)
        assert refused.status_code == 401 and "changed outside the hub" in refused.json()["detail"], refused.text
    denied = [d for actor, result, d in _events("user.login") if actor == "user:zhou" and result == "denied"]
    assert [d.get("edited") for d in denied[-2:]] == [True, True], denied[-2:]
    assert "users" in _edited_reported()

    _registry_sql("UPDATE users SET failed_logins = :failed, locked_until = :until WHERE username = 'zhou'",
                  failed=stored.failed_logins, until=stored.locked_until)
    assert _edited_reported() == ""
    assert "too many failed logins" in sign_in(PASSWORD).json()["detail"]


def test_a_designation_reopened_in_the_database_is_refused(hub_home: Path) -> None:
    """A reviewer's designation that had ended (指定专人, article 10) was opened again by an UPDATE, and the
    person reviewed the agency's entries as if designated; now the review check refuses it, named."""
    from core import clock
    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.people.persons import add_person, designate, end_designation, require_designated
    from registry.sharing.check import edited_rows
    from tests.helpers import ensure_agency

    with session_scope() as session:
        agency = ensure_agency(session, *PROVIDER)
        add_person(session, agency=PROVIDER[0], account="li", name="李四", actor="test")
        designate(session, account="li", role="reviewer", valid_from=clock.today() - timedelta(days=30), actor="test")
        end_designation(session, account="li", role="reviewer", actor="test")
        agency_id = agency.id
    today = clock.today()
    with session_scope() as session, pytest.raises(AccessDenied, match="was not designated"):
        require_designated(session, account="li", agency_id=agency_id, roles=("reviewer",), on=today)

    _registry_sql("UPDATE designations SET valid_to = NULL")
    with session_scope() as session, pytest.raises(AccessDenied, match="changed outside the hub"):
        require_designated(session, account="li", agency_id=agency_id, roles=("reviewer",), on=today)
    with session_scope() as session:
        assert [(e.table, e.row_id) for e in edited_rows(session)] == [("designations", 1)]
    _registry_sql("UPDATE designations SET valid_to = :day", day=today - timedelta(days=1))
    with session_scope() as session:
        assert edited_rows(session) == []


def test_a_resource_given_to_the_consumer_in_the_database_is_refused(site: Delivery) -> None:
    """An UPDATE made the consumer the resource's owner: its grant's columns, row condition and masking no longer
    applied ("the provider's own data") and it downloaded the whole table unmasked. The edited resource is now
    refused on every channel (audited) and reported; put back, the consumer gets what it was granted again."""
    code, token = site.hub.resource_code, site.hub.token
    files = FILES.format(code=code)
    before = site.get(files, token=token, params={"format": "csv"})
    assert before.status_code == 200 and "address" not in before.text.splitlines()[0], before.text[:300]
    _registry_sql("UPDATE resources SET agency_id = :agency WHERE code = :code", agency=_agency_id(CONSUMER[0]),
                  code=code)

    for path, params in ((files, {"format": "csv"}), (f"/api/v1/resources/{code}/records", {"limit": 5})):
        taken = site.get(path, token=token, params=params)
        assert taken.status_code == 403, (path, taken.status_code, taken.text[:300])
        assert "目录记录在平台之外被改动" in taken.json()["detail_zh"] and "address" not in taken.text
    refused = [d for _, result, d in _events("data.read", agency_code=CONSUMER[0]) if result == "denied"]
    assert refused and "changed outside the hub" in refused[-1]["reason"]
    assert "resources" in _edited_reported()

    _registry_sql("UPDATE resources SET agency_id = :agency WHERE code = :code", agency=_agency_id(PROVIDER[0]),
                  code=code)
    again = site.get(files, token=token, params={"format": "csv"})
    assert again.status_code == 200 and again.content == before.content
    assert _edited_reported() == ""


def test_a_token_edited_in_a_postgresql_registry_is_refused_too(pg_hub_home: Path) -> None:
    """The same on PostgreSQL (its timestamps come back aware): a revoked token revived, and one moved."""
    from core.errors import AuthenticationFailed
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.tokens import authenticate, revoke_token
    from registry.sharing.check import edited_rows
    from tests.helpers import register_resource

    hub = register_resource(kind=None, subscribe=True)
    with session_scope() as session:
        token_id = authenticate(session, token=hub.token).id
        assert edited_rows(session) == []
        revoke_token(session, token_id=token_id, by=console("test"))
    _registry_sql("UPDATE api_tokens SET revoked_at = NULL WHERE id = :id", id=token_id)
    with session_scope() as session, pytest.raises(AuthenticationFailed, match="changed outside the hub"):
        authenticate(session, token=hub.token)
    with session_scope() as session:
        assert [(e.table, e.row_id) for e in edited_rows(session)] == [("api_tokens", token_id)]


def test_the_hubs_own_writes_keep_every_row_sealed(hub_home: Path) -> None:
    """Issue and revoke a token, add a user, change roles and password, sign in and out, fail a sign-in,
    deactivate, designate and end a designation: every row the hub wrote matches its seal, and still works."""
    from registry.db import session_scope
    from registry.people.auth import console, user_principal
    from registry.people.bearer import authenticate_principal
    from registry.people.models import User
    from registry.people.persons import add_person, designate, end_designation
    from registry.people.tokens import authenticate, issue_token, revoke_token
    from registry.people.users import add_user, deactivate_user, login, logout, set_password, set_roles
    from registry.sharing.check import edited_rows
    from tests.helpers import ensure_agency

    by = console("test")
    with session_scope() as session:
        ensure_agency(session, *CONSUMER)
        kept, revoked = (issue_token(session, agency=CONSUMER[0], name=name, by=by) for name in ("kept", "gone"))
        revoke_token(session, token_id=authenticate(session, token=revoked).id, by=by)
        add_user(session, username="wang", agency=CONSUMER[0], roles=["data_admin"], password="a-long-password",
                 by=by)
        add_user(session, username="liu", agency=CONSUMER[0], roles=["data_admin"], password="a-long-password",
                 by=by)
    with session_scope() as session:
        set_roles(session, username="wang", roles=["agency_admin", "data_admin"], by=by)
        set_password(session, username="wang", password="another-long-one", by=by)
        with pytest.raises(Exception, match="wrong username or password"):
            login(session, username="wang", password="not-it-at-all")
    with session_scope() as session:
        session_token = login(session, username="wang", password="another-long-one")
        other = login(session, username="liu", password="a-long-password")
        logout(session, token=other)
        deactivate_user(session, username="liu", by=by)
        add_person(session, agency=CONSUMER[0], account="wang", name="王五", actor="test")
        designate(session, account="wang", role="reviewer", valid_from=date(2026, 1, 5), actor="test")
        end_designation(session, account="wang", role="reviewer", actor="test")
    with session_scope() as session:
        assert edited_rows(session) == []
        assert authenticate(session, token=kept).agency.code == CONSUMER[0]
        person = authenticate_principal(session, token=session_token)
        assert person.roles == {"agency_admin", "data_admin"} and person.agency_code == CONSUMER[0]
        wang = session.scalar(select(User).where(User.username == "wang"))
        assert user_principal(wang).name == "wang"


def test_a_flush_of_many_sealed_rows_reads_their_stored_rows_once(hub_home: Path) -> None:
    """Before a sealed row is written its stored row is read back (a broken seal is never laundered): one SELECT
    per updated row had made a flush of n rows n round trips; it is one per table and flush. An edited row among
    them still keeps its broken seal."""
    from sqlalchemy import event, select, text

    from registry.db import get_engine, session_scope
    from registry.people.models import ApiToken
    from registry.seals import intact
    from tests.helpers import CONSUMER, issue_token, register_resource

    register_resource(kind=None, name="封签资源")
    for _ in range(4):
        issue_token(CONSUMER[0])
    with session_scope() as session:
        ids = sorted(session.scalars(select(ApiToken.id)))
        session.execute(text("UPDATE api_tokens SET name = 'edited' WHERE id = :id"), {"id": ids[0]})
    reads: list[str] = []

    def counted(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT") and "api_tokens" in statement:
            reads.append(statement)
    engine = get_engine()
    event.listen(engine, "before_cursor_execute", counted)
    try:
        with session_scope() as session:
            tokens = list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
            reads.clear()
            for token in tokens:
                token.expires_at = None
            session.flush()
            assert len(reads) == 1, reads
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    with session_scope() as session:
        kept = {token.id: intact(token) for token in session.scalars(select(ApiToken))}
    assert kept == {token_id: token_id != ids[0] for token_id in ids}, "the edited row keeps its broken seal"
