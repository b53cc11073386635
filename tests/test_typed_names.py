"""Names people type are refused at registration when a spreadsheet would run them (公式注入): an agency's, a
person's or account's name, a resource's, catalogue entry's or data item's name, an element's, a token's or an
application's scope beginning with ``=``, ``+``, ``@`` or a control character. Every output neutralises such text
already (core/sheet_text.py, core/xlsx.py); refusing it where it is typed means it never reaches a colleague's
sheet through a path that forgot. ``-`` may begin a name (-1层停车场) and is neutralised on output only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.helpers import PROVIDER, bearer, conditional_hub, issue_token

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]

PASSWORD = "a-long-enough-password"
FORMULAS = ['=HYPERLINK("http://evil.example","点我")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd", "\t=1+1", "\x07铃"]
ADVICE = "不能以 =、+、@ 或控制字符开头"


@pytest.fixture
def hub(hub_home: Path) -> str:
    """A published conditional entry of the provider, an administrator on each side (who may add users); its code."""
    from registry.db import session_scope

    with session_scope() as session:
        return conditional_hub(session, password=PASSWORD, roles=("agency_admin", "data_admin"))


def _count(model) -> int:  # noqa: ANN001 - a mapped class
    from sqlalchemy import func, select

    from registry.db import session_scope

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("name", FORMULAS)
def test_the_console_refuses_a_formula_looking_name_in_both_languages(hub: str, name: str) -> None:
    from cli.main import app
    from registry.people.models import Agency, Person

    agencies, people = _count(Agency), _count(Person)
    runner = CliRunner()
    agency = runner.invoke(app, ["agency", "add", "11310000MB2F3956X1", name])
    person = runner.invoke(app, ["person", "add", "wang.fang", name, "--agency", PROVIDER[0]])
    for answer in (agency, person):
        assert answer.exit_code == 1 and "Traceback" not in answer.output, answer.output
        assert ADVICE in answer.output and "must not begin with =, +, @ or a control character" in answer.output
    assert (_count(Agency), _count(Person)) == (agencies, people)  # nothing registered


def test_a_name_may_begin_with_a_minus(hub: str) -> None:
    from cli.main import app

    person = CliRunner().invoke(app, ["person", "add", "--agency", PROVIDER[0], "--", "wang.fang", "-1层值班员"])
    assert person.exit_code == 0, person.output


def test_the_api_answers_422_with_the_reason_in_chinese(hub: str) -> None:
    from api.app import create_app
    from registry.catalog.models import Resource
    from registry.people.models import User

    token = issue_token(PROVIDER[0])
    client, resources, users = TestClient(create_app()), _count(Resource), _count(User)
    login = client.post("/api/v1/auth/login", json={"username": "p.admin", "password": PASSWORD}).json()
    person = client.post("/api/v1/users", headers=bearer(login["token"]), json={
        "username": "li.si", "agency": PROVIDER[0], "roles": ["data_admin"], "password": PASSWORD,
        "display_name": "@SUM(1+1)*cmd"})
    entry = {"classification": "101002", "name": "企业年报信息", "abstract": "年报", "sharing_type": "unconditional",
             "sharing_modes": ["interface"], "data_items": [{"name": "统一社会信用代码", "data_type": "string"}]}
    named = client.post("/api/v1/catalog/entries", headers=bearer(token),
                        json={"data": {**entry, "name": '=HYPERLINK("http://evil.example","点我")'}})
    item = client.post("/api/v1/catalog/entries", headers=bearer(token), json={"data": {
        **entry, "data_items": [{"name": "+cmd|' /C calc'!A0", "data_type": "string"}]}})
    for answer in (person, named, item):
        assert answer.status_code == 422, answer.text
        assert ADVICE in answer.json()["detail_zh"] and "must not begin" in answer.json()["detail"]
    assert (_count(Resource), _count(User)) == (resources, users)


def test_the_application_form_shows_the_reason_and_keeps_what_was_typed(hub: str) -> None:
    from api.app import create_app
    from registry.sharing.models import Application

    client = TestClient(create_app())
    assert client.post("/web/login", data={"username": "c.admin", "password": PASSWORD},
                       follow_redirects=False).status_code == 303
    answer = client.post("/web/applications", data={"resource": hub, "scope": "=HYPERLINK(\"http://e\")",
                                                     "purpose": "行政审批核验", "items": ["uscc"]},
                         follow_redirects=False)
    text = " ".join(re.sub(r"<[^>]+>", " ", answer.text).split())
    assert answer.status_code == 422 and "共享范围" + ADVICE in text, text[:2000]
    assert 'id="scope"' in answer.text and "行政审批核验" in answer.text  # the form again, as it was filled in
    assert _count(Application) == 0
