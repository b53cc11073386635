"""Registry migrations: upgrade to head, downgrade to base and upgrade again, on SQLite and PostgreSQL;
`govshare init` is idempotent and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

REGISTRY_TABLES = {"agencies", "sources", "resources", "dataset_versions", "cursor_states", "sync_runs",
                   "subscriptions", "api_tokens", "audit_events"}


def _reset() -> None:
    from core.settings import reset_settings
    from registry.db import dispose_engines

    reset_settings()
    dispose_engines()


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Settings and engines are process-wide caches: start and end each test with none.
    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_STORAGE", "GOVSHARE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    _reset()
    yield
    _reset()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)  # a separate engine: sees what is committed, not a cached pool's view
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _heads() -> str:
    """Every head revision of the migration scripts, as current_revision() spells the applied ones."""
    from alembic.script import ScriptDirectory

    from registry.migrate import alembic_config

    return ",".join(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


def _round_trip(url: str) -> None:
    from registry.migrate import current_revision, downgrade, upgrade

    assert not REGISTRY_TABLES & _tables(url), "the scratch database should start empty"

    upgrade(url=url)
    assert REGISTRY_TABLES <= _tables(url)
    assert current_revision(url=url) == _heads()

    downgrade(url=url)
    assert not REGISTRY_TABLES & _tables(url), f"left behind: {sorted(REGISTRY_TABLES & _tables(url))}"
    assert current_revision(url=url) is None

    upgrade(url=url)
    assert REGISTRY_TABLES <= _tables(url)
    assert current_revision(url=url) == _heads()


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")


def test_postgres_upgrade_downgrade_upgrade(pg_database: str) -> None:
    _round_trip(pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))


def test_upgraded_schema_is_usable_after_a_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After downgrade and upgrade again, the registry accepts writes (no half-dropped constraint remains)."""
    from registry.people.agencies import add_agency, list_agencies
    from registry.audit.log import verify_chain
    from registry.db import session_scope
    from registry.migrate import downgrade, upgrade

    url = f"sqlite:///{(tmp_path / 'registry.db').as_posix()}"
    monkeypatch.setenv("GOVSHARE_DATABASE_URL", url)
    _reset()
    upgrade()
    with session_scope() as session:
        add_agency(session, code="113100000024200171", name="上海市市场监督管理局")
    downgrade()
    upgrade()
    with session_scope() as session:
        assert list_agencies(session) == []  # the downgrade dropped the data with the tables
        add_agency(session, code="113100000024200171", name="上海市市场监督管理局")
    with session_scope() as session:
        assert [a.code for a in list_agencies(session)] == ["113100000024200171"]
        assert verify_chain(session) == []


def _registry_url(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> str:
    """The registry's URL on each backend: a scratch PostgreSQL database (set as GOVSHARE_DATABASE_URL), or the
    default SQLite file under the test's GOVSHARE_HOME."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1)
        monkeypatch.setenv("GOVSHARE_DATABASE_URL", url)
        return url
    return f"sqlite:///{(tmp_path / 'var' / 'govshare.db').as_posix()}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_init_twice_says_already_up_to_date(backend: str, request: pytest.FixtureRequest,
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cli.main import app

    url = _registry_url(backend, request, monkeypatch, tmp_path)
    _reset()

    runner = CliRunner()
    first = runner.invoke(app, ["init"])
    assert first.exit_code == 0, first.output
    first_text = " ".join(first.output.split())
    assert "migrated empty ->" in first_text
    assert REGISTRY_TABLES <= _tables(url)
    assert (tmp_path / "var" / "dag_specs.json").is_file()  # init also writes the DAG snapshot

    second = runner.invoke(app, ["init"])
    assert second.exit_code == 0, second.output
    second_text = " ".join(second.output.split())
    assert "already up to date" in second_text
    assert "migrated" not in second_text
    # The registry address is reported, never the credentials part of a URL.
    assert "@" not in second_text


def test_the_migrations_have_one_head() -> None:
    """Capability branches are merged (0020_merge): an operator's `alembic upgrade head` reaches every table."""
    assert "," not in _heads(), f"several heads {_heads()}: add a merge migration revising all of them"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_migration_that_fails_changes_nothing_and_init_then_goes_on(backend: str, request: pytest.FixtureRequest,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """A migration failing half way (here the audit sealing marker's, after its CREATE TABLE) leaves the schema
    and the recorded revision as they were: on SQLite the table used to stay, unrecorded, and every later
    `govshare init` failed on it ("table audit_sealing already exists")."""
    from registry.audit import log
    from registry.migrate import current_revision, upgrade

    url = (request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1)
           if backend == "postgresql" else f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")
    upgrade(url=url, revision="0021_due_days")
    before = _tables(url)

    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("the disk is full")

    sealing_seal = log.sealing_seal
    monkeypatch.setattr(log, "sealing_seal", broken)
    with pytest.raises(RuntimeError, match="the disk is full"):
        upgrade(url=url)
    assert current_revision(url=url) == "0021_due_days"
    assert _tables(url) == before and "audit_sealing" not in before

    monkeypatch.setattr(log, "sealing_seal", sealing_seal)
    upgrade(url=url)
    assert current_revision(url=url) == _heads() and "audit_sealing" in _tables(url)


def test_init_without_a_secret_key_stops_before_touching_the_schema(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """The sealing migration needs GOVSHARE_SECRET_KEY: init says so before migrating anything (it used to
    migrate half way and fail), then runs whole once the key is set."""
    from cli.main import app

    monkeypatch.delenv("GOVSHARE_DEMO")
    _reset()
    url = f"sqlite:///{(tmp_path / 'var' / 'govshare.db').as_posix()}"
    refused = CliRunner().invoke(app, ["init"])
    assert refused.exit_code == 1 and "GOVSHARE_SECRET_KEY" in refused.output
    assert "Traceback" not in refused.output
    assert not REGISTRY_TABLES & _tables(url)

    monkeypatch.setenv("GOVSHARE_SECRET_KEY", "a-long-random-secret-for-the-test-only")
    _reset()
    done = CliRunner().invoke(app, ["init"])
    assert done.exit_code == 0, done.output
    assert REGISTRY_TABLES <= _tables(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_init_on_tables_without_their_migration_record_says_what_it_is(backend: str, request: pytest.FixtureRequest,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    """A registry whose `alembic_version` was lost (restored from a partial dump, made by another tool): init
    failed with "table agencies already exists" shown as an unreachable registry to retry (exit 2); it now says
    what the database is and what to do (exit 1), and changes nothing."""
    from sqlalchemy import text

    from cli.main import app

    url = _registry_url(backend, request, monkeypatch, tmp_path)
    _reset()
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    before = _tables(url)

    again = runner.invoke(app, ["init"], env={"COLUMNS": "300"})
    assert again.exit_code == 1, again.output
    flat = " ".join(again.output.split())
    assert "没有迁移版本记录" in flat and "no migration record (alembic_version)" in flat and "agencies" in flat
    assert _tables(url) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_row_seals_migration_seals_the_rows_it_finds(backend: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    """0095_row_seals seals the tokens, users, sessions and designations an older hub wrote as they are: none is
    refused after the upgrade (a user locked out by the upgrade itself), and each one's seal is its own."""
    from sqlalchemy import text

    from registry.db import engine_for
    from registry.migrate import upgrade
    from registry.orm import Base
    from registry.seals import broken_rows

    url = (f"sqlite:///{(tmp_path / 'registry.db').as_posix()}" if backend == "sqlite" else
           request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1))
    upgrade(url=url, revision="0090_grant_seal")
    with engine_for(url).begin() as connection:
        for statement in (
                "INSERT INTO agencies (id, code, name, level, created_at) VALUES "
                "(1, '113100000024200171', '上海市市场监督管理局', 'city', '2026-12-01 08:00:00')",
                "INSERT INTO users (id, username, display_name, agency_id, roles, password_hash, active, "
                "failed_logins, created_at) VALUES (1, 'li.na', '李娜', 1, '[\"agency_admin\"]', 'scrypt$x', "
                "true, 0, '2026-12-01 08:00:00')",
                "INSERT INTO user_sessions (id, user_id, token_sha256, created_at, expires_at) VALUES "
                "(1, 1, 'aa', '2026-12-01 08:00:00', '2026-12-01 16:00:00')",
                "INSERT INTO api_tokens (id, agency_id, name, token_sha256, created_at, expires_at) VALUES "
                "(1, 1, 'hr-system', 'bb', '2026-12-01 08:00:00', '2027-03-01 08:00:00')",
                "INSERT INTO people (id, agency_id, account, name, phone, email, office, created_at) VALUES "
                "(1, 1, 'li.na', '李娜', '', '', '', '2026-12-01 08:00:00')",
                "INSERT INTO designations (id, person_id, agency_id, role, valid_from, note, created_at) VALUES "
                "(1, 1, 1, 'reviewer', '2026-01-05', '', '2026-12-01 08:00:00')"):
            connection.execute(text(statement))
    upgrade(url=url)
    with engine_for(url).begin() as connection:
        for name in ("api_tokens", "users", "user_sessions", "designations"):
            table = Base.metadata.tables[name]
            assert connection.execute(text(f"SELECT seal FROM {name}")).scalar_one(), name
            assert broken_rows(connection, table) == [], name
        connection.execute(text("UPDATE users SET roles = '[\"supervisor\"]'"))
        assert broken_rows(connection, Base.metadata.tables["users"]) == [1]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_lockout_seal_migration_keeps_an_edited_user_broken(backend: str, request: pytest.FixtureRequest,
                                                                tmp_path: Path) -> None:
    """0100_user_lockout_seal adds the lockout to the users' seals: a user the hub wrote (sealed without it) is
    sealed again with it and still signs in; one already edited outside the hub is not laundered by the upgrade
    (nor by the downgrade, which seals them as before)."""
    from sqlalchemy import text

    from registry.db import engine_for
    from registry.migrate import downgrade, upgrade
    from registry.orm import Base
    from registry.seals import broken_rows, seal_of

    before = ("id", "username", "agency_id", "roles", "password_hash", "active")
    url = (f"sqlite:///{(tmp_path / 'registry.db').as_posix()}" if backend == "sqlite" else
           request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1))
    upgrade(url=url, revision="0095_row_seals")
    users = Base.metadata.tables["users"]
    with engine_for(url).begin() as connection:
        connection.execute(text("INSERT INTO agencies (id, code, name, level, created_at) VALUES "
                                "(1, '113100000024200171', '上海市市场监督管理局', 'city', '2026-12-01 08:00:00')"))
        for number, name in ((1, "li.na"), (2, "wu.gang")):
            connection.execute(text(
                "INSERT INTO users (id, username, display_name, agency_id, roles, password_hash, active, "
                "failed_logins, locked_until, created_at) VALUES (:id, :name, '', 1, '[\"agency_admin\"]', "
                "'scrypt$x', true, 3, '2026-12-01 09:00:00', '2026-12-01 08:00:00')"), {"id": number, "name": name})
        # as 0095 sealed them before the lockout was part of the seal
        for row in connection.execute(users.select()).mappings().all():
            connection.execute(users.update().where(users.c.id == row["id"]).values(
                seal=seal_of(users, row, fields=before)))
        connection.execute(text("UPDATE users SET roles = '[\"supervisor\"]' WHERE id = 2"))
    upgrade(url=url)
    with engine_for(url).begin() as connection:
        assert broken_rows(connection, users) == [2]
        connection.execute(text("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = 1"))
        assert broken_rows(connection, users) == [1, 2]
        connection.execute(text("UPDATE users SET failed_logins = 3, locked_until = '2026-12-01 09:00:00' "
                                "WHERE id = 1"))
    downgrade(url=url, revision="0095_row_seals")
    with engine_for(url).begin() as connection:
        rows = {row["id"]: row for row in connection.execute(users.select()).mappings()}
        assert rows[1]["seal"] == seal_of(users, rows[1], fields=before)
        assert rows[2]["seal"] != seal_of(users, rows[2], fields=before)


def _an_entry_at(url: str, head: str, *columns: str):  # noqa: ANN202 - a sqlalchemy Table
    """A registry migrated to ``head`` holding one agency and one catalogue entry, and catalog_revisions with only
    the columns that head had (besides ``columns``): the model's later columns and their defaults are not there."""
    from sqlalchemy import MetaData, Table, text

    from registry.db import engine_for
    from registry.migrate import upgrade
    from registry.orm import Base

    upgrade(url=url, revision=head)
    with engine_for(url).begin() as connection:
        connection.execute(text("INSERT INTO agencies (id, code, name, level, created_at) VALUES "
                                "(1, '113100000024200171', '上海市市场监督管理局', 'city', '2026-12-01 08:00:00')"))
        connection.execute(Base.metadata.tables["resources"].insert().values(
            id=1, code="101001/0001", classification="101001", name="企业基本信息", abstract="", agency_id=1,
            stream={}, sharing_type="unconditional", sharing_condition="", sharing_modes=[], update_cycle="daily",
            catalog_status="draft"))
    model = Base.metadata.tables["catalog_revisions"]
    kept = ("id", "resource_id", "number", "content", "content_sha256", "author", "status", "created_at",
            "review_comments", *columns)
    return Table("catalog_revisions", MetaData(), *(model.c[name].copy() for name in kept))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_submission_day_migration_dates_past_submissions(backend: str, request: pytest.FixtureRequest,
                                                             tmp_path: Path) -> None:
    """0105_revision_submitted_on stores the day a submission counts for; a revision submitted before it gets the
    Beijing day of its submitted_at (a draft none), so a decision cannot be backdated before it either."""
    from datetime import date, datetime

    from sqlalchemy import inspect as inspect_engine, text

    from registry.db import engine_for
    from registry.migrate import downgrade, upgrade

    url = (f"sqlite:///{(tmp_path / 'registry.db').as_posix()}" if backend == "sqlite" else
           request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1))
    revisions = _an_entry_at(url, "0100_user_lockout_seal", "submitted_at")
    with engine_for(url).begin() as connection:
        for number, submitted_at in ((1, datetime(2026, 12, 1, 17, 30)), (2, None)):  # 01:30 on 12-02 in Beijing
            connection.execute(revisions.insert().values(
                id=number, resource_id=1, number=number, content={}, content_sha256="0" * 64, author="zhang",
                status="submitted" if submitted_at else "draft", submitted_at=submitted_at, review_comments={}))
    upgrade(url=url)
    with engine_for(url).begin() as connection:
        days = dict(connection.execute(text("SELECT number, submitted_on FROM catalog_revisions")).all())
    assert {n: date.fromisoformat(str(d)) if d else None for n, d in days.items()} == {1: date(2026, 12, 2), 2: None}
    downgrade(url=url, revision="0100_user_lockout_seal")
    engine = engine_for(url)
    assert "submitted_on" not in {c["name"] for c in inspect_engine(engine).get_columns("catalog_revisions")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_draft_day_migration_dates_past_revisions(backend: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    """revision_created_on stores the day a catalogue revision was made (the floor of a never-submitted draft's
    保密审查); revisions made before it get the Beijing day of their created_at; the column is added in place."""
    from datetime import date, datetime

    from sqlalchemy import inspect as inspect_engine, text

    from registry.db import engine_for
    from registry.migrate import downgrade, upgrade

    url = (f"sqlite:///{(tmp_path / 'registry.db').as_posix()}" if backend == "sqlite" else
           request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg2://", 1))
    revisions = _an_entry_at(url, "0105_revision_submitted_on")
    with engine_for(url).begin() as connection:
        for number, created_at in ((1, datetime(2026, 12, 1, 17, 30)), (2, datetime(2026, 12, 3, 2, 0))):
            connection.execute(revisions.insert().values(  # 17:30 UTC on 12-01 is 01:30 on 12-02 in Beijing
                id=number, resource_id=1, number=number, content={}, content_sha256="0" * 64, author="zhang",
                status="draft", created_at=created_at, review_comments={}))
    upgrade(url=url)
    with engine_for(url).begin() as connection:
        days = dict(connection.execute(text("SELECT number, created_on FROM catalog_revisions")).all())
    assert {n: date.fromisoformat(str(d)) for n, d in days.items()} == {1: date(2026, 12, 2), 2: date(2026, 12, 3)}
    downgrade(url=url, revision="0105_revision_submitted_on")
    engine = engine_for(url)
    assert "created_on" not in {c["name"] for c in inspect_engine(engine).get_columns("catalog_revisions")}
