"""The sharing workflows through the `govshare` command: people, tokens, applications with the PDF form,
decisions, disputes, secrecy agreements, grants, deadlines; refusals say why in Chinese and English."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pypdf
import pytest
from typer.testing import CliRunner

from tests.helpers import CONSUMER, PROVIDER, ensure_agency, publish_entry
from tests.sharing_world import OFFICE

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`


@pytest.fixture
def cli(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    from registry.db import session_scope
    from registry.catalog.resources import add_resource

    monkeypatch.setattr("registry.people.users.SCRYPT_N", 2**10)
    monkeypatch.setenv("PW", "a-long-enough-password")
    monkeypatch.setattr("cli.output.console._width", 400)  # whole table cells, not ellipses
    monkeypatch.setattr("cli.output.err_console._width", 400)
    with session_scope() as session:
        for code, name in (PROVIDER, CONSUMER, OFFICE):
            ensure_agency(session, code, name)
        for resource in (
                add_resource(session, name="企业纳税信用信息", agency=PROVIDER[0], classification="101001",
                             sharing_type="conditional", sharing_condition="限于行政审批核验", actor="test"),
                add_resource(session, name="涉密企业名录", agency=PROVIDER[0], classification="101002",
                             sharing_type="not_shared", sharing_condition="《中华人民共和国保守国家秘密法》第九条",
                             actor="test")):
            publish_entry(session, resource.code, columns=("uscc", "credit_level", "district"))
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    from cli.main import app

    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


@pytest.mark.usefixtures("ordinary_day")  # the workflow of an ordinary day; year-end: test_due_days.py
def test_the_whole_workflow_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    for username, agency, role in (("p.admin", PROVIDER[0], "data_admin"), ("c.admin", CONSUMER[0], "data_admin"),
                                   ("c.cat", CONSUMER[0], "cataloguer"), ("c.boss", CONSUMER[0], "agency_admin")):
        run(cli, "user", "add", username, "--agency", agency, "--role", role, "--password-env", "PW")
    run(cli, "user", "add", "o.office", "--agency", OFFICE[0], "--role", "coordination_office", "--password-env", "PW")
    refused = run(cli, "user", "add", "rogue", "--agency", CONSUMER[0], "--role", "operator", "--password-env", "PW",
                  "--as", "c.boss", code=4)
    assert "跨机构角色" in refused and "platform's console" in refused
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        attempt = session.scalars(select(AuditEvent).where(AuditEvent.action == "command.refused")).one()
        assert attempt.actor == "user:c.boss" and attempt.detail["command"].endswith("user add")
    assert "c.cat" in run(cli, "user", "list", "--as", "c.boss") and "p.admin" not in run(cli, "user", "list",
                                                                                         "--as", "c.boss")

    not_shared = run(cli, "subscribe", "101002/0001", "--agency", CONSUMER[0], "--purpose", "核验", code=4)
    assert "不予共享" in not_shared and "保守国家秘密法" in not_shared and "not shared" in not_shared

    form = tmp_path / "需求申请表.pdf"
    submitted = run(cli, "apply", "submit", "101001/0001", "--agency", CONSUMER[0], "--scope", "本市企业", "--purpose",
                    "行政审批核验", "--item", "uscc", "--item", "credit_level", "--filter",
                    '{"column": "district", "op": "eq", "value": "浦东新区"}', "--form", str(form), "--as", "c.admin")
    number = re.search(r"(XQSQ-\d{8}-\d{4})", submitted).group(1)
    assert number in pypdf.PdfReader(io.BytesIO(form.read_bytes())).pages[0].extract_text()
    cat = run(cli, "apply", "submit", "101001/0001", "--agency", CONSUMER[0], "--scope", "x", "--purpose", "y",
              "--item", "uscc", "--as", "c.cat", code=4)
    assert "数据资源管理员" in cat and "data resource administrator" in cat

    consumer_decides = run(cli, "decide", number, "--outcome", "approve", "--reason", "同意", "--as", "c.admin", code=4)
    assert "提供方" in consumer_decides and "provider" in consumer_decides
    no_reason = run(cli, "decide", number, "--outcome", "refuse", "--reason", "", "--as", "p.admin", code=1)
    assert "reasons" in no_reason
    decided = run(cli, "decide", number, "--outcome", "partial", "--item", "uscc", "--reason", "信用等级不予提供",
                  "--as", "p.admin")
    assert "部分同意" in decided and "partial" not in decided  # the outcome as staff read it
    grants = run(cli, "grant", "list", "--as", "c.admin")
    assert "uscc" in grants and "credit_level" not in grants and "浦东新区" in grants

    opened = run(cli, "dispute", "open", number, "--grounds", "审批需要信用等级", "--as", "c.admin")
    dispute_id = re.search(r"dispute (\d+) opened", opened).group(1)
    not_office = run(cli, "dispute", "conclude", dispute_id, "--outcome", "approve", "--conclusion", "同意",
                     "--as", "p.admin", code=4)
    assert "领导小组办公室" in not_office
    concluded = run(cli, "dispute", "conclude", dispute_id, "--outcome", "approve", "--conclusion",
                    "信用等级为审批所必需", "--as", "o.office")
    grant_id = re.search(r"grant (\d+)", concluded).group(1)
    assert "同意共享" in concluded and "approve" not in concluded  # the conclusion as staff read it
    assert "credit_level" in run(cli, "grant", "list", "--agency", CONSUMER[0])

    run(cli, "agreement", "review", "101001/0001", "--commercial-secret", "--as", "p.admin")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 signed")
    agreement = ("agreement", "add", "101001/0001", "--consumer", CONSUMER[0], "--party", PROVIDER[1], "--party",
                 CONSUMER[1], "--signed-on", "2026-01-05", "--valid-until", "2027-01-04", "--scan", str(scan))
    # the consumer cannot open its own grant: the provider's side records the agreement
    assert "提供方" in run(cli, *agreement, "--as", "c.admin", code=4)
    added = run(cli, *agreement, "--as", "p.admin")
    assert "BMXY-" in added
    assert "True" in run(cli, "agreement", "list")
    number = re.search(r"BMXY-\d{8}-\d{4}", added).group(0)
    assert "revoked" in run(cli, "agreement", "revoke", number, "--reason", "协议终止", "--as", "p.admin")
    assert "已于" in run(cli, "agreement", "revoke", number, "--reason", "再次", "--as", "p.admin", code=1)

    assert "revoked" in run(cli, "grant", "revoke", grant_id, "--reason", "超出用途", "--as", "p.admin")
    assert "已撤销" in run(cli, "grant", "list")  # statuses in Chinese, from the one label table

    token_issued = run(cli, "token", "issue", CONSUMER[0], "--name", "hr-sync")
    assert token_issued.startswith("gsk_")
    listed = run(cli, "token", "list")
    token_id = re.search(r"(\d+)\s+\S+\s+hr-sync", listed.replace("│", " ")).group(1)
    assert "revoked" in run(cli, "token", "revoke", token_id, "--as", "c.boss")

    later = run(cli, "apply", "submit", "101001/0001", "--agency", CONSUMER[0], "--scope", "x", "--purpose", "y",
                "--item", "uscc", "--as", "c.admin")
    assert "10 working days" in later
    deadlines = run(cli, "apply", "deadlines", "--today", "2099-01-01")
    assert "overdue" in deadlines
    assert "超过" in run(cli, "apply", "inbox", "--as", "o.office")
    assert "intact" in run(cli, "audit", "verify")
