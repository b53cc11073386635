"""The DAG snapshot (dag_specs.json) follows every change of a resource's schedule, whatever made it: a
catalogue review through the API or the command line, a stream edit, a new resource; no command has to
remember to rewrite it."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.catalog_helpers import entry_data, new_entry, publish, setup_people
from tests.helpers import PROVIDER, bearer, issue_token, running_api


def _cycles(home: Path) -> dict[str, str]:
    specs = json.loads((home / "dag_specs.json").read_text())["resources"]
    return {spec["resource_code"]: spec["update_cycle"] for spec in specs}


def test_review_and_stream_changes_reschedule_the_dag(hub_home: Path, tmp_path: Path, cheap_hashing: None) -> None:
    from registry.catalog.entries import attach_stream
    from registry.db import session_scope
    from registry.catalog.sources import add_source

    database = tmp_path / "market.db"
    load_sqlite(database, rows=20, seed=1)
    with session_scope() as session:
        setup_people(session)
        add_source(session, name="scjg", agency=PROVIDER[0], kind="sqlite", config={"path": str(database)},
                   actor="test")
        code = new_entry(session)
        attach_stream(session, code=code, source="scjg", table="enterprises", primary_key=["id"],
                      cursor_column="updated_at", actor="test")
    assert _cycles(hub_home) == {code: "daily"}  # the stream made a DAG

    # Through the API: the provider's system edits the cycle, its signed-in people submit, review and publish.
    from tests.test_catalog_cli_api import person_sessions

    token = issue_token(PROVIDER[0])
    people = person_sessions("zhang", "li")
    body = {"data": entry_data(update_cycle="weekly").model_dump(mode="json")}
    with running_api() as api:
        base = f"{api.base_url}/api/v1/catalog/entries/{code}"
        with session_scope() as session:
            publish(session, code)  # revision 1, daily
        assert requests.put(base, json=body, headers=bearer(token), timeout=30).status_code == 200
        assert _cycles(hub_home) == {code: "daily"}  # a draft changes nothing consumers or the scheduler see
        for step, payload, person in (("submit", {}, "zhang"), ("confidentiality", {"passed": True}, "li"),
                                      ("review", {"approve": True}, "li")):
            answer = requests.post(f"{base}/{step}", json=payload, headers=bearer(people[person]), timeout=30)
            assert answer.status_code in (200, 201), answer.text
    assert _cycles(hub_home) == {code: "weekly"}

    # Through the command line.
    from cli.main import app

    runner = CliRunner()
    for args in (["catalog", "edit", code, "--author", "zhang", "--cycle", "monthly"],
                 ["catalog", "submit", code, "--by", "zhang"],
                 ["catalog", "confidentiality", code, "--by", "li", "--passed", "--note", "不涉密"],
                 ["catalog", "review", code, "--by", "li", "--approve"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, (args, done.output)
    assert _cycles(hub_home) == {code: "monthly"}

    # The release date (发布日期) was set at the first publication and kept by every later revision.
    from registry.catalog.entries import published_revision

    with session_scope() as session:
        from registry.catalog.resources import get_resource

        revision = published_revision(session, resource=get_resource(session, code=code))
        assert revision.content["release_date"] and revision.number == 3
