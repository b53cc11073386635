"""What feeds a resource can change without a new resource: a source's settings and secret (`source edit`,
audited, the secret never shown) and the source itself (`resource edit --source`, only to one of the same
agency); the versions stay, and the next run, reading in full, publishes only if something differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.helpers import OTHER_PROVIDER, PROVIDER, ensure_agency, register_resource, sqlite_execute, sync, versions


def _cli(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})


def test_a_resource_moves_to_another_source_of_its_agency(hub_home: Path, tmp_path: Path) -> None:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent
    from registry.catalog.sources import add_source

    old, new, foreign = tmp_path / "old.db", tmp_path / "new.db", tmp_path / "foreign.db"
    for path in (old, new, foreign):
        load_sqlite(path, rows=60, seed=4)  # the same data: a replica, or the database under a new account
    hub = register_resource(kind="sqlite", config={"path": str(old)})
    with session_scope() as session:
        ensure_agency(session, *OTHER_PROVIDER)
        add_source(session, name="new-db", agency=PROVIDER[0], kind="sqlite", config={"path": str(new)}, actor="test")
        add_source(session, name="foreign-db", agency=OTHER_PROVIDER[0], kind="sqlite", config={"path": str(foreign)},
                   actor="test")
    assert sync(hub).version == 1

    refused = _cli("resource", "edit", hub.resource_code, "--source", "foreign-db")
    assert refused.exit_code == 1 and "belongs to another agency" in refused.output
    moved = _cli("resource", "edit", hub.resource_code, "--source", "new-db")
    assert moved.exit_code == 0 and "the next sync reads in full" in moved.output, moved.output
    report = sync(hub)
    assert report.mode == "full" and report.version is None  # the same rows: nothing to publish
    sqlite_execute(new, "UPDATE enterprises SET name = '上海迁移后更名有限公司', "
                        "updated_at = '2031-01-01T00:00:00+08:00' WHERE id = 2")
    report = sync(hub)
    assert report.mode == "incremental" and report.version == 2 and report.changes["updated"] == 1
    assert [v.number for v in versions(hub.resource_code)] == [1, 2]
    with session_scope() as session:
        (edit,) = [e.detail for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "resource.edit"))]
    assert (edit["before"]["source"], edit["after"]["source"]) == (hub.source_name, "new-db")


def test_source_edit_rotates_the_secret_without_showing_it(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent
    from registry.catalog.sources import get_source, open_connector

    secret = "Sh-2027-新口令-" + "x" * 8
    assert _cli("agency", "add", PROVIDER[0], PROVIDER[1]).exit_code == 0
    monkeypatch.setenv("OLD_PW", "old-secret-value")
    added = _cli("source", "add", "pg", "--agency", PROVIDER[1], "--kind", "postgresql", "-o", "host=db.invalid",
                 "-o", "dbname=registry", "-o", "user=reader", "--password-env", "OLD_PW")
    assert added.exit_code == 0, added.output
    monkeypatch.setenv("NEW_PW", secret)
    edited = _cli("source", "edit", "pg", "--password-env", "NEW_PW", "-o", "port=6432", "--unset", "dbname",
                  "--no-check")
    assert edited.exit_code == 1 and "needs dbname" in edited.output  # a setting the kind needs stays
    edited = _cli("source", "edit", "pg", "--password-env", "NEW_PW", "-o", "port=6432", "--no-check")
    assert edited.exit_code == 0 and "password replaced" in edited.output and secret not in edited.output
    listed = _cli("source", "list")
    assert "6432" in listed.output and secret not in listed.output
    with session_scope() as session:
        connector = open_connector(get_source(session, name="pg"))
        assert connector.secret == {"password": secret} and connector.config["port"] == "6432"
        events = [json.dumps(e.detail, ensure_ascii=False)
                  for e in session.scalars(select(AuditEvent).where(AuditEvent.action.like("source.%")))]
    assert any('"secret_fields": ["password"]' in e and '"port": "6432"' in e for e in events)
    assert not any(secret in e or "old-secret-value" in e for e in events)
    unreachable = _cli("source", "edit", "pg", "-o", "connect_timeout=2")  # checked: the host does not resolve
    assert unreachable.exit_code == 0 and "check failed" in unreachable.output
