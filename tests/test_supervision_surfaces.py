"""What people read of a violation and of the periodic notice (违规情形, 评估定期通报): a violation's kind in
Chinese on every surface (the API keeps the code beside its label), the notice's 总体情况 saying the same in HTML
and PDF, and the notice's download audited with the period it reported. A small world on the real 2026
calendar: one provider with one published entry, two violations and one rectification order, seen on an
ordinary Wednesday after the third quarter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    new_entry,
    publish,
    setup_people,
)
from tests.helpers import PROVIDER

SEEN_ON = date(2026, 11, 25)  # Wednesday, in 2026Q4
LATE_UPDATE, INSPECTION = "目录逾期未更新", "监督检查发现"


@pytest.fixture
def seen_later() -> Iterator[None]:
    from tests.clock import on, pinned

    with pinned(on(SEEN_ON)):
        yield


def _world(session) -> str:
    """The provider publishes 企业基本信息; a missed catalogue update (late_update) is detected against it and the
    commission records an inspection finding, with an order to put it right. Returns the supervisor's session."""
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.people.users import add_user, login
    from registry.supervision.findings import Finding
    from registry.supervision.rectification import issue_order
    from registry.supervision.violations import record_finding, upsert_violation
    from tests.helpers import ensure_agency
    from tests.sharing_world import COMMISSION, PASSWORD

    setup_people(session)
    publish(session, new_entry(session, classification="101001", name="企业基本信息"), on=date(2026, 11, 2))
    provider = get_agency(session, ref=PROVIDER[0])
    upsert_violation(session, finding=Finding(3, "late_update", provider.id, "obligation-1", summary="目录更新义务逾期未完成",
                                              records=[]), on=SEEN_ON, actor="test")
    finding = record_finding(session, case=5, agency=PROVIDER[0], summary="将共享数据提供给第三方", by=console("test"))
    issue_order(session, violation_id=finding.id, requirement="收回已提供的数据", by=console("test"), working_days=10,
                issued_on=date(2026, 11, 23))
    ensure_agency(session, *COMMISSION)
    add_user(session, username="inspector", agency=COMMISSION[0], roles=["supervisor"], password=PASSWORD,
             by=console("test"))
    session.flush()
    return login(session, username="inspector", password=PASSWORD)


def test_every_kind_of_violation_has_one_chinese_label() -> None:
    """Every kind the detectors, the rectification check and the inspection record has its label, one each."""
    from registry.supervision.models import VIOLATION_KINDS

    root = Path(__file__).resolve().parents[1] / "registry" / "supervision"  # where violations are recorded
    recorded = {m.group(1) for path in root.rglob("*.py")
                for m in re.finditer(r'Finding\(\s*\w+,\s*"(\w+)"', path.read_text(encoding="utf-8"))}
    assert len(recorded) == 15, recorded  # the regex still sees every detector
    assert recorded == set(VIOLATION_KINDS)
    shown = list(VIOLATION_KINDS.values())
    assert all(re.fullmatch(r"[\u4e00-\u9fff]+", text) for text in shown) and len(set(shown)) == len(shown)


@pytest.mark.usefixtures("seen_later", "cheap_hashing")
def test_a_violation_reads_its_kind_in_chinese_wherever_a_person_reads_it(catalog_home: Path, tmp_path: Path) -> None:
    """`govshare violation list` printed late_update and inspection; the API keeps the code and adds kind_zh."""
    import requests
    from openpyxl import load_workbook
    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.supervision.report_writer import write_report
    from tests.helpers import running_api

    with session_scope() as session:
        cookie = _world(session)

    listed = CliRunner().invoke(app, ["violation", "list"], env={"COLUMNS": "240"})
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "目录更新义务逾期" in line or "第三方" in line]
    assert len(rows) == 2 and LATE_UPDATE in rows[0] and INSPECTION in rows[1], listed.output
    assert "late_update" not in listed.output and "inspection" not in listed.output

    with running_api() as api:
        body = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{PROVIDER[0]}", params={"period": "2026Q4"},
                            headers={"Authorization": f"Bearer {cookie}"}, timeout=30).json()
        page = requests.get(f"{api.base_url}/web/supervision/{PROVIDER[0]}", params={"period": "2026Q4"},
                            cookies={"govshare_session": cookie}, timeout=30).text
    assert [(v["kind"], v["kind_zh"]) for v in body["violations"]] == [("late_update", LATE_UPDATE),
                                                                       ("inspection", INSPECTION)]
    assert LATE_UPDATE in page and INSPECTION in page and "late_update" not in page

    with session_scope() as session:
        html = write_report(session, period="2026Q4", fmt="html", out=tmp_path / "n.html").read_text()
        xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx")
    assert LATE_UPDATE in html and INSPECTION in html and "late_update" not in html
    header, *violations = load_workbook(xlsx)["违规情形"].iter_rows(values_only=True)
    assert [dict(zip(header, row))["类型"] for row in violations] == [LATE_UPDATE, INSPECTION]


@pytest.mark.usefixtures("seen_later", "cheap_hashing")
def test_the_pdf_notice_says_how_many_agencies_were_scored_as_the_html_does(catalog_home: Path,
                                                                             tmp_path: Path) -> None:
    """The PDF's 总体情况 left out 其中参与评分 N 个, which the HTML notice has."""
    from registry.db import session_scope
    from registry.supervision.report_writer import write_report
    from tests.pdf_checks import require_poppler, text

    require_poppler()
    with session_scope() as session:
        _world(session)
        html = write_report(session, period="2026Q4", fmt="html", out=tmp_path / "n.html").read_text()
        pdf = write_report(session, period="2026Q4", fmt="pdf", out=tmp_path / "n.pdf")
    # by hand: one provider, scored; two violations found in the quarter; one order issued on 11-23
    overview = "本期参与评估的行政机构共 1 个，其中参与评分 1 个；发现违规情形 2 项，下达整改通知 1 份。"
    flat = re.sub(r"\s+", "", overview)
    assert flat in re.sub(r"<[^>]+>|\s+", "", html)
    assert flat in re.sub(r"\s+", "", text(pdf)), text(pdf)[:1500]


@pytest.mark.usefixtures("seen_later", "cheap_hashing")
def test_the_notice_download_is_audited_with_the_period_it_reported(catalog_home: Path) -> None:
    """/web/supervision/report.pdf without ?period= reports the current quarter, and recorded period: null."""
    import requests
    from sqlalchemy import select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.helpers import running_api

    with session_scope() as session:
        cookie = _world(session)
    with running_api() as api:
        for params in ({}, {"period": "2026-10"}):
            answer = requests.get(f"{api.base_url}/web/supervision/report.pdf", params=params,
                                  cookies={"govshare_session": cookie}, timeout=60)
            assert answer.status_code == 200 and answer.content.startswith(b"%PDF"), answer.text[:300]
    with session_scope() as session:
        recorded = [e.detail["period"] for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "supervision.notice_read").order_by(AuditEvent.id))]
    assert recorded == ["2026Q4", "2026-10"]  # 25 November 2026 is in the fourth quarter


@pytest.mark.usefixtures("seen_later", "cheap_hashing")
def test_the_ranking_over_the_api_carries_the_figures_the_notice_shows(catalog_home: Path, tmp_path: Path) -> None:
    """GET /api/v1/supervision/evaluation gave each agency's score and metrics only: no numerator and denominator
    (the notice's 2/3 under 66.7 %, so 无数据 could not be told from a real figure without them) and no
    未整改违规, which the notice's ranking sheet lists beside the score."""
    import requests
    from openpyxl import load_workbook

    from registry.db import session_scope
    from registry.supervision.report_writer import write_report
    from tests.helpers import running_api

    with session_scope() as session:
        supervisor = _world(session)
        xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx")
    with running_api() as api:
        ranking = requests.get(f"{api.base_url}/api/v1/supervision/evaluation", params={"period": "2026Q4"},
                               headers={"Authorization": f"Bearer {supervisor}"}, timeout=30)
        standing = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{PROVIDER[0]}",
                                params={"period": "2026Q4"}, headers={"Authorization": f"Bearer {supervisor}"},
                                timeout=30).json()
    assert ranking.status_code == 200, ranking.text
    (row,) = ranking.json()
    assert row["counts"] == standing["counts"] and row["counts"]["catalogue_coverage"] == [1, 1]
    header, sheet_row = list(load_workbook(xlsx)["得分排名"].iter_rows(values_only=True))
    # by hand: the late update and the inspection finding, both open on 11-25
    assert row["open_violations"] == dict(zip(header, sheet_row))["未整改违规"] == 2
