"""The inbox (消息) in Chinese and a consumer's withdrawal (撤回共享申请) from its application page.

Agency staff read each message's kind as its one Chinese label (schemas/labels.yaml `inbox_kinds`) on the
console, and the API keeps the code beside `kind_zh`; the consumer's person withdraws an unanswered application
from the web page with a reason, as the signed-in person, audited, and nobody else can."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.helpers import PROVIDER, bearer, conditional_hub, issue_token

pytestmark = [pytest.mark.clock, pytest.mark.usefixtures("cheap_hashing")]

PASSWORD = "a-long-enough-password"
REASON = "业务系统改造，需求已取消"


@pytest.fixture
def hub(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A published conditional entry of the provider, a data administrator on each side; its code."""
    from registry.db import session_scope

    monkeypatch.setattr("cli.output.console._width", 400)  # whole table cells, not ellipses
    with session_scope() as session:
        return conditional_hub(session, password=PASSWORD)


def _signed_in(username: str) -> TestClient:
    from api.app import create_app

    client = TestClient(create_app())
    answer = client.post("/web/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def _apply(consumer: TestClient, code: str) -> str:
    made = consumer.post("/web/applications", data={"resource": code, "scope": "本市企业", "purpose": "行政审批核验",
                                                    "items": ["uscc"]}, follow_redirects=False)
    assert made.status_code == 303, made.text
    return made.headers["location"].rsplit("/", 1)[1]


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _withdrawals(number: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [(e.actor, e.detail["reason"]) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "application.withdraw")) if e.detail["number"] == number]


def _refusals() -> list[tuple[str, str]]:
    from sqlalchemy import select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [(e.actor, e.result) for e in session.scalars(select(AuditEvent).where(AuditEvent.result == "denied"))]


def test_the_consumer_withdraws_an_unanswered_application_from_its_page(hub: str) -> None:
    consumer, provider = _signed_in("c.admin"), _signed_in("p.admin")
    number = _apply(consumer, hub)

    page = consumer.get(f"/web/applications/{number}").text
    assert 'id="withdraw-form"' in page and "撤回申请" in page and 'name="reason"' in page
    assert 'id="withdraw-form"' not in provider.get(f"/web/applications/{number}").text  # not the provider's

    # no reason: the page again with what to do, nothing changed
    empty = consumer.post(f"/web/applications/{number}/withdrawal", data={"reason": " "}, follow_redirects=False)
    assert empty.status_code == 400 and "撤回申请须说明理由" in empty.text and "Traceback" not in empty.text
    assert "待答复" in _text(consumer.get(f"/web/applications/{number}").text) and not _withdrawals(number)

    # the provider cannot withdraw the consumer's application
    refused = provider.post(f"/web/applications/{number}/withdrawal", data={"reason": "代为撤回"},
                            follow_redirects=False)
    assert refused.status_code == 403 and "只有申请机构可以撤回" in refused.text and not _withdrawals(number)
    assert ("user:p.admin", "denied") in _refusals()

    done = consumer.post(f"/web/applications/{number}/withdrawal", data={"reason": REASON}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/web/applications/{number}"
    after = consumer.get(f"/web/applications/{number}").text
    assert "已撤回" in _text(after) and 'id="withdraw-form"' not in after
    assert _withdrawals(number) == [("user:c.admin", REASON)]  # the signed-in person, with the reason

    again = consumer.post(f"/web/applications/{number}/withdrawal", data={"reason": REASON}, follow_redirects=False)
    assert again.status_code == 400 and "已经撤回，不能撤回" in again.text
    assert len(_withdrawals(number)) == 1


def test_the_inbox_names_each_message_kind_in_chinese(hub: str) -> None:
    from api.app import create_app
    from cli.main import app as cli

    number = _apply(_signed_in("c.admin"), hub)
    withdrawn = CliRunner().invoke(cli, ["apply", "withdraw", number, "--reason", REASON, "--as", "c.admin"])
    assert withdrawn.exit_code == 0, withdrawn.output

    shown = CliRunner().invoke(cli, ["apply", "inbox", "--as", "p.admin"])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.output.splitlines() if number in line]
    kinds = {"application": "收到共享申请", "withdrawal": "申请已撤回"}  # as schemas/labels.yaml inbox_kinds
    assert any(kinds["application"] in r for r in rows) and any(kinds["withdrawal"] in r for r in rows), rows
    assert not any(re.search(r"\b(application|withdrawal)\b", r) for r in rows), rows

    messages = TestClient(create_app()).get("/api/v1/inbox", headers=bearer(issue_token(PROVIDER[0]))).json()
    assert {(m["kind"], m["kind_zh"]) for m in messages} == {("application", kinds["application"]),
                                                             ("withdrawal", kinds["withdrawal"])}


def test_a_decision_message_names_the_outcome_in_chinese(hub: str) -> None:
    from cli.main import app as cli

    number = _apply(_signed_in("c.admin"), hub)
    decided = CliRunner().invoke(cli, ["decide", number, "--outcome", "refuse", "--reason", "超出共享条件",
                                       "--as", "p.admin"])
    assert decided.exit_code == 0, decided.output
    shown = CliRunner().invoke(cli, ["apply", "inbox", "--as", "c.admin"])
    row = " ".join(line for line in shown.output.splitlines() if number in line)
    assert "申请已答复" in row and "的意见：不予共享；理由：超出共享条件" in row and "refused" not in row, row
