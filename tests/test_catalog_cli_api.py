"""The catalogue through its two online front doors: the `govshare catalog|person` commands and the HTTP API."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from tests.catalog_helpers import catalog_home_fixture, entry_data, setup_people  # noqa: F401 - fixture
from tests.helpers import (
    CONSUMER,
    OTHER_PROVIDER,
    PROVIDER,
    bearer,
    ensure_agency,
    issue_token,
    running_api,
)

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`


def run(*args: str, ok: bool = True) -> str:
    from cli.main import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert (result.exit_code == 0) == ok, f"{args}: exit {result.exit_code}: {result.output}"
    return text


@pytest.mark.usefixtures("ordinary_day")  # the workflow of an ordinary day; year-end: test_due_days.py
def test_cli_compiles_reviews_and_publishes(catalog_home: Path, tmp_path: Path) -> None:
    run("agency", "add", PROVIDER[0], PROVIDER[1])
    assert "校验码错误" in run("agency", "add", "91110000600037341N", "坏机构", ok=False)
    run("person", "add", "zhang", "张三", "--agency", PROVIDER[1], "--office", "信息中心")
    run("person", "add", "li", "李四", "--agency", PROVIDER[1])
    run("person", "add", "chen", "陈五", "--agency", PROVIDER[1], "--phone", "021-1")
    run("person", "designate", "zhang", "编目人员", "--from", "2025-01-01")
    run("person", "designate", "li", "reviewer", "--from", "2025-01-01")
    run("person", "designate", "chen", "administrator", "--from", "2025-01-01")

    refused = run("catalog", "add", "--agency", PROVIDER[1], "--author", "zhang", "--classification", "101001",
                  "--name", "企业基本信息", "--abstract", "登记信息", "--item", "企业名称:字符型",
                  "--sharing", "not_shared", ok=False)
    assert "法律法规" in refused  # article 8: not shared needs its legal basis
    added = run("catalog", "add", "--agency", PROVIDER[1], "--author", "zhang", "--classification", "101001",
                "--name", "企业基本信息", "--abstract", "本市登记注册企业的基本信息",
                "--item", "统一社会信用代码:字符型:uscc:uscc", "--item", "企业名称:字符型::name",
                "--sharing", "unconditional", "--mode", "接口交换", "--mode", "file")
    assert "101001/0001" in added and "第1版" in added
    run("catalog", "submit", "101001/0001", "--by", "zhang")
    assert "保密审查" in run("catalog", "review", "101001/0001", "--by", "li", "--approve", ok=False)
    run("catalog", "review", "101001/0001", "--by", "li", "--return", "--comment", "信息资源摘要=请写明数据范围",
        "--item-comment", "企业名称=请注明字段长度")
    shown = run("catalog", "show", "101001/0001")
    assert "已退回" in shown and "请写明数据范围" in shown and "信息项「企业名称」" in shown
    run("catalog", "edit", "101001/0001", "--author", "zhang", "--abstract", "本市登记注册企业（含分支机构）的基本信息")
    assert "内容无变化" in run("catalog", "edit", "101001/0001", "--author", "zhang")
    diff = run("catalog", "diff", "101001/0001", "1", "2")
    assert "信息资源摘要" in diff and "含分支机构" in diff
    run("catalog", "submit", "101001/0001", "--by", "zhang")
    run("catalog", "confidentiality", "101001/0001", "--by", "chen", "--passed", "--note", "不涉密")
    assert "已发布" in run("catalog", "review", "101001/0001", "--by", "li", "--approve")
    history = run("catalog", "history", "101001/0001")
    assert "第1版" in history and "已退回" in history and "已发布" in history
    listed = run("catalog", "list", "--published")
    assert "101001/0001" in listed and "已发布" in listed
    assert "101001/0001" not in run("catalog", "overdue")
    assert "完成全面维护确认" in run("catalog", "reconfirm", "101001/0001", "--by", "zhang", "--note", "年度全面维护")
    run("catalog", "edit", "101001/0001", "--author", "zhang", "--cycle", "weekly")  # opens an update obligation
    pending = run("catalog", "overdue", "--pending")
    assert "101001/0001" in pending and "目录要素调整" in pending
    assert "101001/0001" in run("catalog", "overdue", "--today", "2099-01-01", ok=False)

    output = tmp_path / "数据资源管理员.xlsx"
    assert "1 名" in run("person", "administrators", "--output", str(output))
    assert output.is_file()
    assert "陈五" in run("person", "list", "--role", "administrator")


def person_sessions(*accounts: str) -> dict[str, str]:
    """A signed-in person (session token) for each designated person of setup_people, same account name."""
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.people.persons import get_person
    from registry.people.users import add_user, login

    password = "correct-horse-battery"
    with session_scope() as session:
        for account in accounts:
            person = get_person(session, account=account)
            add_user(session, username=account, agency=person.agency.code, roles=["cataloguer"], password=password,
                     by=console("test"))
    with session_scope() as session:
        return {account: login(session, username=account, password=password) for account in accounts}


def test_api_online_compilation_and_published_view(catalog_home: Path, monkeypatch) -> None:  # noqa: ANN001
    from registry.db import session_scope

    monkeypatch.setattr("registry.people.users.SCRYPT_N", 2**10)
    with session_scope() as session:
        setup_people(session)
        ensure_agency(session, *CONSUMER)
    provider_token, other_token, consumer_token = issue_token(PROVIDER[0]), issue_token(OTHER_PROVIDER[0]), \
        issue_token(CONSUMER[0])
    people = person_sessions("zhang", "li", "chen")
    body = {"data": entry_data().model_dump(mode="json")}
    with running_api() as api:
        base = f"{api.base_url}/api/v1/catalog"
        created = requests.post(f"{base}/entries", json=body, headers=bearer(provider_token), timeout=30)
        assert created.status_code == 201, created.text
        code = created.json()["code"]
        assert (created.json()["provider_code"], created.json()["status"]) == (PROVIDER[0], "draft")
        bad = requests.post(f"{base}/entries", headers=bearer(provider_token), timeout=30,
                            json={"data": {**body["data"], "sharing_type": "conditional"}})
        assert bad.status_code == 422 and "共享条件" in bad.text
        # not published yet: hidden from the catalogue and from other agencies
        assert requests.get(f"{base}/entries/{code}", headers=bearer(consumer_token), timeout=30).status_code == 404
        listing = requests.get(base, headers=bearer(consumer_token), timeout=30).json()
        assert code not in {e["code"] for e in listing}
        # another agency is answered as for a code that does not exist (test_hostile_api)
        assert requests.get(f"{base}/entries/{code}/draft", headers=bearer(other_token), timeout=30).status_code == 404

        # the attack: one agency token names whoever it likes as submitter and reviewer
        for step, payload in [("submit", {}), ("confidentiality", {"passed": True}), ("review", {"approve": True})]:
            walked = requests.post(f"{base}/entries/{code}/{step}", json=payload, headers=bearer(provider_token),
                                   timeout=30)
            assert walked.status_code == 403 and "本人登录" in walked.json()["detail_zh"], (step, walked.text)
        named = requests.post(f"{base}/entries/{code}/review", json={"reviewer": "li", "approve": True},
                              headers=bearer(people["zhang"]), timeout=30)
        assert named.status_code == 422  # a name in the body is refused, never taken for the caller
        submitted = requests.post(f"{base}/entries/{code}/submit", headers=bearer(people["li"]), timeout=30)
        assert submitted.status_code == 403 and "编目人员" in submitted.json()["detail_zh"]  # li is no cataloguer
        assert requests.post(f"{base}/entries/{code}/submit", headers=bearer(people["zhang"]),
                             timeout=30).status_code == 200
        assert requests.post(f"{base}/entries/{code}/confidentiality", json={"passed": True},
                             headers=bearer(people["chen"]), timeout=30).status_code == 201
        own = requests.post(f"{base}/entries/{code}/review", json={"approve": True}, headers=bearer(people["zhang"]),
                            timeout=30)
        assert own.status_code == 403  # the submitter is no reviewer, and never reviews their own revision
        answer = requests.post(f"{base}/entries/{code}/review", json={"approve": True}, headers=bearer(people["li"]),
                               timeout=30)
        assert answer.status_code == 200, answer.text
        revision = answer.json()
        assert (revision["author"], revision["submitted_by"], revision["reviewed_by"]) == (
            "system:" + revision["author"].split(":", 1)[1], "zhang", "li")
        with session_scope() as session:
            from sqlalchemy import select

            from registry.audit.models import AuditEvent

            actors = dict(session.execute(select(AuditEvent.action, AuditEvent.actor).where(
                AuditEvent.resource_code == code, AuditEvent.action.like("catalog.%"))).all())
        assert (actors["catalog.submit"], actors["catalog.confidentiality"], actors["catalog.publish"]) == (
            "user:zhang", "user:chen", "user:li")
        changed = {"data": {**body["data"], "update_cycle": "weekly"}}
        assert requests.put(f"{base}/entries/{code}", json=changed, headers=bearer(other_token),
                            timeout=30).status_code == 403
        edited = requests.put(f"{base}/entries/{code}", json=changed, headers=bearer(provider_token), timeout=30)
        assert edited.status_code == 200 and edited.json()["revision"] == 2

        published = requests.get(f"{base}/entries/{code}", headers=bearer(consumer_token), timeout=30).json()
        assert (published["revision"], published["update_cycle"], published["provider"]) == (1, "daily", PROVIDER[1])
        listing = requests.get(base, headers=bearer(consumer_token), timeout=30).json()
        assert {e["code"]: e["catalog_status"] for e in listing}[code] == "published"
        diff = requests.get(f"{base}/entries/{code}/diff", params={"old": 1, "new": 2},
                            headers=bearer(provider_token), timeout=30).json()
        assert [(c["element"], c["old"], c["new"]) for c in diff] == [("update_cycle", "daily", "weekly")]
        revisions = requests.get(f"{base}/entries/{code}/revisions", headers=bearer(provider_token), timeout=30).json()
        assert [(r["number"], r["status"]) for r in revisions] == [(1, "published"), (2, "draft")]
