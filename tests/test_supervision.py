"""Supervision (articles 10, 14, 16, 22, 23): a seeded year of three provider agencies and a consumer
(tests/supervision_world.py). Every planted violation is found with its evidence and nothing else is; scores
follow the weights file exactly (hand-computed below); rectification deadlines turn into case (6); the notice
renders as HTML, PDF (text read back with pypdf) and Excel; the API shows an agency only its own standing; the
DAG file parses without any I/O."""

from __future__ import annotations

import re

import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import pytest

from tests.catalog_helpers import DISTRICT
from tests.helpers import CONSUMER, OTHER_PROVIDER, PROVIDER
from tests.supervision_world import AS_OF, build

A, B, C = PROVIDER[0], OTHER_PROVIDER[0], DISTRICT[0]
W = {"catalogue_coverage": 15, "catalogue_completeness": 10, "sharing_openness": 15, "update_timeliness": 15,
     "application_timeliness": 10, "quality_pass_rate": 10, "duplicate_collection": 10, "delivery_success": 5,
     "reconfirmation": 10}
# What the seeded records say for 2026Q4 as of 2026-11-25, metric by metric ([kept, total]):
EXPECTED_COUNTS = {
    A: {"catalogue_coverage": [2, 3],  # A1, A2 published; A3 only registered
        "catalogue_completeness": [2, 2],  # A2 was drafted without a release date: set when published
        "sharing_openness": [2, 2], "update_timeliness": [1, 1], "application_timeliness": [1, 1],
        "quality_pass_rate": [100, 100], "duplicate_collection": [2, 2], "delivery_success": [1, 2],
        "reconfirmation": [2, 2]},
    B: {"catalogue_coverage": [3, 3], "catalogue_completeness": [2, 3],  # B2 has an item without description
        "sharing_openness": [2, 3],  # B3 not shared
        "update_timeliness": [0, 1], "application_timeliness": [0, 1], "quality_pass_rate": [50, 50],
        "duplicate_collection": [2, 3],  # B1 collects A's enterprise name again
        "delivery_success": [0, 0], "reconfirmation": [2, 3]},  # B3 last maintained in 2024
    C: {"catalogue_coverage": [2, 3],  # C3 still a draft
        "catalogue_completeness": [2, 2], "sharing_openness": [1, 2],  # C2 not shared
        "update_timeliness": [0, 1],  # due 11-04, published 11-06
        "application_timeliness": [0, 0], "quality_pass_rate": [220, 250],  # 50/50 and 170/200
        "duplicate_collection": [2, 2], "delivery_success": [1, 1], "reconfirmation": [2, 2]},
}
# score = 100 x sum(w x m) / sum(w of metrics that apply)
SCORE_A = 100 * (15 * 2 / 3 + 10 + 15 + 15 + 10 + 10 + 10 + 5 * 1 / 2 + 10) / 100  # 92.5
SCORE_B = 100 * (15 + 10 * 2 / 3 + 15 * 2 / 3 + 0 + 0 + 10 + 10 * 2 / 3 + 10 * 2 / 3) / 95  # no delivery: 57.89
SCORE_C = 100 * (15 * 2 / 3 + 10 + 15 / 2 + 0 + 10 * 0.88 + 10 + 5 + 10) / 90  # no application: 68.11


@contextmanager
def _scratch_postgres() -> Iterator[str]:
    import psycopg2

    from tests.services import require_postgres

    admin_dsn = require_postgres()
    name = f"govshare_sv_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rpartition('/')[0]}/{name}".replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        from registry.db import dispose_engines

        dispose_engines()
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture(scope="module", autouse=True)
def _on_the_seeded_day():
    """The seeded world is a year's records up to AS_OF (Wednesday 2026-11-25): the suite runs on that day."""
    from tests.clock import on, pinned

    with pinned(on(AS_OF)):
        yield


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One seeded registry per backend for the module (building it runs four real syncs). Tests that need the
    supervisor's orders call ``_story`` (once per world); detection and scores are asserted on the fresh world."""
    from core.settings import reset_settings
    from registry.db import dispose_engines
    from registry.migrate import upgrade

    monkeypatch = pytest.MonkeyPatch()
    tmp_path = tmp_path_factory.mktemp("supervision")
    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    monkeypatch.setenv("GOVSHARE_CALENDAR_DIR", str(tmp_path / "calendars"))
    for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_STORAGE", "GOVSHARE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with ExitStack() as stack:
        if request.param == "postgresql":
            monkeypatch.setenv("GOVSHARE_DATABASE_URL", stack.enter_context(_scratch_postgres()))
        reset_settings()
        dispose_engines()
        try:
            upgrade()
            yield build(tmp_path)
        finally:
            reset_settings()
            dispose_engines()
            monkeypatch.undo()


def _detected(world) -> set[tuple]:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.supervision.models import Violation

    with session_scope() as session:
        return {(v.case, v.kind, v.agency.code, v.resource.code if v.resource else None)
                for v in session.scalars(select(Violation).where(Violation.status == "open"))}


def test_scores_follow_the_weights_file(world) -> None:
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate

    with session_scope() as session:
        result = evaluate(session, period="2026Q4", as_of=AS_OF)
    assert result.weights == W
    assert [a.code for a in result.agencies] == [A, C, B]  # consumers without resources are not evaluated
    for code, counts in EXPECTED_COUNTS.items():
        standing = result.standing(code)
        assert standing.counts == counts, code
    assert result.standing(A).score == round(SCORE_A, 2) == 92.5
    assert result.standing(B).score == round(SCORE_B, 2) == 57.89
    assert result.standing(C).score == round(SCORE_C, 2) == 68.11
    assert [a.rank for a in result.agencies] == [1, 2, 3]
    assert result.standing(B).metrics["delivery_success"] is None  # nothing delivered: left out, not 0
    assert result.standing(B).clocks["application"] == {"kept": 0, "missed": 1}


def _planted(world) -> set[tuple]:
    code = world.codes
    return {
        (1, "no_data", B, code["B2"]),  # published 09-01, no data since
        (1, "uncatalogued", C, code["C3"]),  # a draft since 09-01, never reviewed
        (1, "application_unanswered", B, code["B2"]),  # due 11-09, undecided
        (2, "duplicate_collection", B, code["B1"]),  # carries element QYMC, authority A
        (2, "widened_collection", C, code["C1"]),  # source added 'mobile', not catalogued
        (3, "late_update", B, code["B1"]),  # due 10-21, still open
        (3, "late_update", C, code["C1"]),  # due 11-04, published 11-06
        (3, "reconfirmation_overdue", B, code["B3"]),  # last maintained 2024
        (3, "inconsistent_copy", B, code["B1"]),  # 3 mismatches with the authority
        (3, "inaccurate_data", C, code["C1"]),  # 30 of 200 rows quarantined, still open
        (3, "stale_data", B, code["B1"]),  # weekly, last version 10-15
        (4, "read_outside_grant", CONSUMER[0], code["C1"]),  # read after the grant was revoked
        (4, "revoked_token_use", CONSUMER[0], None),  # a revoked token presented twice
        (5, "purpose_mismatch", CONSUMER[0], code["A1"]),  # read for marketing under an employment grant
    }


def _evidence(session, kind: str, agency: str):
    from sqlalchemy import select

    from registry.people.agencies import get_agency
    from registry.supervision.models import Violation

    return session.scalar(select(Violation).where(Violation.kind == kind, Violation.agency_id == get_agency(
        session, ref=agency).id)).evidence


def test_every_planted_violation_is_found_with_its_evidence_and_nothing_else(world) -> None:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.supervision.models import Violation
    from registry.supervision.violations import detect_violations

    with session_scope() as session:
        report = detect_violations(session, as_of=AS_OF, actor="test")
        assert len(report.new) == len(report.found) == 14
    assert _detected(world) == _planted(world)  # nothing about A, the well-kept agency; nothing twice
    ids = world.ids
    with session_scope() as session:
        def refs(kind: str, agency: str) -> set[tuple]:
            return {(r["table"], r["id"]) for r in _evidence(session, kind, agency)["records"]}

        assert ("resources", ids["B2"]) in refs("no_data", B)
        assert ("sharing_applications", ids["B2.application"]) in refs("application_unanswered", B)
        assert ("update_obligations", ids["B1.obligation"]) in refs("late_update", B)
        assert ("update_obligations", ids["C1.obligation"]) in refs("late_update", C)
        assert _evidence(session, "late_update", C)["facts"]["closed_on"] == "2026-11-06"
        assert ("schema_changes", ids["C1.change"]) in refs("widened_collection", C)
        assert _evidence(session, "widened_collection", C)["facts"]["added"] == ["mobile"]
        assert _evidence(session, "duplicate_collection", B)["facts"]["authority"] == A
        assert ("consistency_checks", ids["B1.check"]) in refs("inconsistent_copy", B)
        assert ("quarantine_sets", ids["C1.quarantine"]) in refs("inaccurate_data", C)
        assert ("dataset_versions", ids["B1.version"]) in refs("stale_data", B)
        assert refs("read_outside_grant", CONSUMER[0]) == {("audit_events", ids["outside.event"]),
                                                            ("grants", ids["C1.grant"])}
        assert _evidence(session, "read_outside_grant", CONSUMER[0])["facts"]["problem"] == "grant_revoked"
        uncatalogued = session.scalar(select(Violation).where(Violation.kind == "uncatalogued")).summary
        assert uncatalogued.endswith("未完成目录编制和审核发布（状态 草稿）"), uncatalogued  # the status in Chinese
        assert refs("purpose_mismatch", CONSUMER[0]) == {("audit_events", ids["purpose.event"]),
                                                          ("grants", ids["A1.grant"])}
        leaked = _evidence(session, "revoked_token_use", CONSUMER[0])
        assert ("api_tokens", ids["leaked.token"]) in refs("revoked_token_use", CONSUMER[0])
        assert leaked["facts"]["attempts"] == 2 and len(leaked["records"]) == 3
        # the records behind the evidence are real rows
        from registry.audit.models import AuditEvent

        event = session.get(AuditEvent, ids["outside.event"])
        assert event.action == "data.read" and event.result == "ok"
    with session_scope() as session:  # idempotent: a second run finds the same, records nothing new
        again = detect_violations(session, as_of=AS_OF, actor="test")
        assert again.new == [] and again.resolved == [] and len(again.found) == 14


def test_a_violation_the_records_no_longer_show_is_resolved(world) -> None:
    from registry.sharing.applications import decide
    from registry.db import session_scope
    from registry.sharing.models import Application
    from registry.supervision.violations import detect_violations
    from tests.helpers import person_of

    with session_scope() as session:
        detect_violations(session, as_of=AS_OF, actor="test")
        application = session.get(Application, world.ids["B2.application"])
        decide(session, number=application.number, outcome="refuse", reasons="尚无数据可供共享",
               by=person_of(session, application.resource.agency.code, "data_admin"))
    with session_scope() as session:
        report = detect_violations(session, as_of=AS_OF, actor="test")
        assert [(v.kind, v.status, v.resolved_on) for v in report.resolved] == [
            ("application_unanswered", "resolved", AS_OF)]
    assert (1, "application_unanswered", B, world.codes["B2"]) not in _detected(world)


def test_inspection_findings_point_at_real_records_and_can_be_dismissed(world) -> None:  # noqa: ANN001
    from core.errors import AccessDenied, ConfigError
    from registry.people.auth import Principal, console
    from registry.db import session_scope
    from registry.supervision.violations import dismiss_violation, list_violations, record_finding

    inspector = console("inspector")
    with session_scope() as session:
        agency_user = Principal(kind="user", name="hr", agency_id=None, agency_code=CONSUMER[0],
                                roles=frozenset({"data_admin"}))
        with pytest.raises(AccessDenied):
            record_finding(session, case=5, agency=CONSUMER[0], summary="x", by=agency_user)
        with pytest.raises(ConfigError, match="no row 999999 in grants"):
            record_finding(session, case=5, agency=CONSUMER[0], summary="将共享数据提供给第三方", by=inspector,
                           records=[{"table": "grants", "id": 999999}])
        with pytest.raises(ConfigError, match="article 23 has no case 7"):
            record_finding(session, case=7, agency=CONSUMER[0], summary="其他", by=inspector)
        finding = record_finding(session, case=5, agency=CONSUMER[0], resource_code=world.codes["A1"], by=inspector,
                                 summary="现场检查发现将企业基本信息提供给第三方公司用于营销",
                                 records=[{"table": "grants", "id": world.ids["A1.grant"]}])
        assert (finding.origin, finding.case, finding.status) == ("inspection", 5, "open")
        with pytest.raises(ConfigError, match="reason"):
            dismiss_violation(session, violation_id=finding.id, reason=" ", by=inspector)
        dismiss_violation(session, violation_id=finding.id, reason="经核实系合同约定的数据处理方", by=inspector)
        assert finding.status == "dismissed"
        # the consumer's own people see only their agency's violations
        own = Principal(kind="user", name="hr", agency_id=finding.agency_id, agency_code=CONSUMER[0],
                        roles=frozenset({"data_admin"}))
        assert {v.agency.code for v in list_violations(session, by=own)} == {CONSUMER[0]}


def _violation_id(kind: str, agency: str) -> int:
    from sqlalchemy import select

    from registry.people.agencies import get_agency
    from registry.db import session_scope
    from registry.supervision.models import Violation

    with session_scope() as session:
        return session.scalar(select(Violation.id).where(Violation.kind == kind, Violation.agency_id == get_agency(
            session, ref=agency).id))


def _story(world) -> dict:
    """Detection, then the supervisor's three orders (once per world): one ignored, one fixed late, one fixed in
    time; then the daily deadline check. Later tests see this state whichever of them runs first."""
    if "story" in world.ids:
        return world.ids["story"]
    from registry.people.auth import Principal, console
    from registry.db import session_scope
    from registry.supervision.rectification import check_orders, issue_order, report_fixed
    from registry.supervision.models import Violation
    from registry.supervision.violations import detect_violations

    supervisor = console("inspector")
    with session_scope() as session:
        detect_violations(session, as_of=AS_OF, actor="test")
    no_data, stale, widened = (_violation_id("no_data", B), _violation_id("stale_data", B),
                               _violation_id("widened_collection", C))
    with session_scope() as session:
        b_admin = Principal(kind="user", name="b-admin", agency_id=session.get(Violation, no_data).agency_id,
                            agency_code=B, roles=frozenset({"agency_admin"}))
        ignored = issue_order(session, violation_id=no_data, requirement="接入数据源并发布数据", by=supervisor,
                              working_days=5, issued_on=date(2026, 11, 2))
        late = issue_order(session, violation_id=stale, requirement="按更新周期更新数据", by=supervisor,
                           working_days=2, issued_on=date(2026, 11, 2))
        kept = issue_order(session, violation_id=widened, requirement="将新增字段列入目录或停止采集", by=supervisor,
                           issued_on=date(2026, 11, 16))
        story = {"due": (ignored.due_on, late.due_on, kept.due_on), "numbers": (ignored.number, late.number, kept.number),
                 "b_admin": b_admin, "violations": (no_data, stale, widened)}
        report_fixed(session, number=late.number, note="已恢复每周同步", by=b_admin, fixed_on=date(2026, 11, 10))
        report_fixed(session, number=kept.number, note="目录已增列信息项", by=supervisor, fixed_on=date(2026, 11, 20))
    with session_scope() as session:
        story["flagged"] = [o.number for o in check_orders(session, today=AS_OF, actor="test")]
        story["flagged_again"] = check_orders(session, today=AS_OF, actor="test")
    world.ids["story"] = story
    return story


def test_rectification_not_fixed_by_the_deadline_is_case_6(world) -> None:
    from sqlalchemy import select

    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate
    from registry.supervision.rectification import issue_order
    from registry.supervision.models import RectificationOrder, Violation

    story = _story(world)
    assert story["due"] == (date(2026, 11, 9), date(2026, 11, 4), date(2026, 11, 30))  # 5, 2, 10 working days
    assert story["flagged"] == [story["numbers"][0]] and story["flagged_again"] == []  # flagged once
    with session_scope() as session:
        with pytest.raises(AccessDenied):  # an agency cannot order itself (or anyone) to rectify
            issue_order(session, violation_id=story["violations"][0], requirement="提供数据", by=story["b_admin"])
        refusals = list(session.scalars(select(Violation).where(Violation.case == 6)))
        # the ignored order, and the one fixed six days late
        assert {(v.agency.code, v.evidence["facts"]["fixed_on"]) for v in refusals} == {
            (B, None), (B, "2026-11-10")}
        for refusal in refusals:
            order = session.scalar(select(RectificationOrder).where(RectificationOrder.refusal_violation_id == refusal.id))
            assert {(r["table"], r["id"]) for r in refusal.evidence["records"]} == {
                ("rectification_orders", order.id), ("violations", order.violation_id)}
        assert session.get(Violation, story["violations"][2]).status == "resolved"
        assert [o.status for o in session.scalars(select(RectificationOrder).order_by(RectificationOrder.id))] == [
            "overdue", "fixed", "fixed"]
        result = evaluate(session, period="2026Q4", as_of=AS_OF)
        assert result.standing(B).clocks["rectification"] == {"kept": 0, "missed": 2}
        assert result.standing(C).clocks["rectification"] == {"kept": 1, "missed": 0}


def _names() -> list[str]:
    return [PROVIDER[1], OTHER_PROVIDER[1], DISTRICT[1]]


def test_the_periodic_notice_as_pdf_through_the_cli(world, tmp_path: Path) -> None:
    _story(world)
    from pypdf import PdfReader
    from typer.testing import CliRunner

    from cli.main import app

    out = tmp_path / "notice-2026Q4.pdf"
    result = CliRunner().invoke(app, ["report", "evaluation", "--period", "2026Q4", "--format", "pdf", "--out",
                                      str(out), "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    reader = PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    compact = text.replace("\n", "").replace(" ", "")
    assert "政务数据资源共享评估定期通报（2026年第四季度）" in compact
    for name in _names():
        assert name in compact
    for score in ("92.50", "68.11", "57.89"):
        assert score in compact
    for heading in ("评估得分与排名", "得分趋势", "时限执行情况", "违规情形", "责令整改情况", "评估指标、计算方法与权重"):
        assert heading in compact
    from schemas.evaluation_config import METRIC_FORMULAS

    for formula in METRIC_FORMULAS.values():  # each metric's one definition, in the notice's notes
        assert formula.split(" / ")[0].replace(" ", "") in compact
    assert "拒不整改" in compact and "整改通知第" in compact and "rectification_orders#" not in compact
    assert "2026年第一季度" in compact and "2026Q1" not in compact  # the trend's periods, by their Chinese names
    assert reader.metadata.title == "政务数据资源共享评估定期通报（2026年第四季度）"


def test_the_notice_as_html_with_svg_charts_and_as_xlsx_with_charts(world, tmp_path: Path) -> None:
    _story(world)
    from openpyxl import load_workbook

    from registry.db import session_scope
    from registry.supervision.report_writer import write_report

    with session_scope() as session:
        html = write_report(session, period="2026Q4", fmt="html", out=tmp_path / "n.html", as_of=AS_OF).read_text()
        xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx", as_of=AS_OF)
    assert html.count("<svg") == 3 and "<polyline" in html and "图2 近4期得分趋势" in html
    assert "92.50" in html and "按时 / 超时" in html and all(name in html for name in _names())
    assert "<script" not in html
    workbook = load_workbook(xlsx)
    assert workbook.sheetnames == ["得分排名", "得分趋势", "时限执行", "时限汇总", "违规情形", "整改情况", "指标权重"]
    scores = workbook["得分排名"]
    assert [(row[0], row[1], row[3]) for row in scores.iter_rows(min_row=2, values_only=True)] == [
        (1, PROVIDER[1], 92.5), (2, DISTRICT[1], 68.11), (3, OTHER_PROVIDER[1], 57.89)]
    assert len(scores._charts) == 1 and len(workbook["得分趋势"]._charts) == 1 and len(workbook["时限汇总"]._charts) == 1
    assert workbook["得分趋势"].max_row == 5  # header + 2026Q1..Q4
    cases = {row[1] for row in workbook["违规情形"].iter_rows(min_row=2, values_only=True)}
    assert cases == {1, 2, 3, 4, 5, 6}
    # Evidence and metrics are read by people: table names and metric codes in Chinese, never the English codes.
    evidence = [row[6] for row in workbook["违规情形"].iter_rows(min_row=2, values_only=True)]
    part = r"[\u4e00-\u9fff]+(第\d+号| [\w-]+)"
    assert all(re.fullmatch(rf"{part}(，{part})*( 等\d+条)?", text) for text in evidence), evidence
    assert "数据资源第" in html and "resources#" not in html and "catalogue_coverage" not in html
    notes = list(workbook["指标权重"].iter_rows(values_only=True))
    assert notes[0] == ("指标", "计算方法", "权重") and not any(re.search(r"\b[a-z]+_[a-z_]+\b", str(row[0]))
                                                          for row in notes)


def test_an_agency_name_is_never_a_formula_in_the_notice_workbook(world, tmp_path: Path) -> None:
    """The trend sheet heads a column with each agency's name: a name such as =HYPERLINK(...) (a hostile or
    careless registration) was written as a live formula there, run by the supervisor's Excel."""
    _story(world)
    from openpyxl import load_workbook
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.people.models import Agency
    from registry.supervision.report_writer import write_report

    hostile = '=HYPERLINK("http://evil.example","点我")'
    with session_scope() as session:
        agency = session.scalar(select(Agency).where(Agency.code == PROVIDER[0]))
        agency.name = hostile
    try:
        with session_scope() as session:
            xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx", as_of=AS_OF)
    finally:
        with session_scope() as session:
            session.scalar(select(Agency).where(Agency.code == PROVIDER[0])).name = PROVIDER[1]
    workbook = load_workbook(xlsx)
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row if cell.value == hostile]
    assert {cell.parent.title for cell in cells} >= {"得分排名", "得分趋势"}
    assert all(cell.data_type == "s" for cell in cells)


def test_the_api_shows_an_agency_its_own_standing_and_the_supervisor_all(world) -> None:
    _story(world)
    import requests

    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate
    from tests.helpers import bearer, running_api

    with session_scope() as session:
        expected = evaluate(session, period="2026Q4").standing(B).score
    with running_api() as api:
        own = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{B}", params={"period": "2026Q4"},
                           headers=bearer(world.provider_b_token), timeout=30)
        assert own.status_code == 200, own.text
        body = own.json()
        assert body["agency_code"] == B and body["period"] == "2026Q4" and body["score"] == expected
        assert body["ranked_agencies"] == 3 and body["metrics"]["delivery_success"] is None
        kinds = {v["kind"] for v in body["violations"]}
        assert {"no_data", "duplicate_collection", "late_update", "rectification_refused"} <= kinds
        assert all(v["evidence"]["records"] for v in body["violations"])
        assert [o["status"] for o in body["rectification_orders"]] == ["overdue"]
        assert [o["due_on"] for o in body["open_obligations"]] == ["2026-10-21"]
        other = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{A}", headers=bearer(world.provider_b_token),
                             timeout=30)
        assert other.status_code == 403 and "本机构" in other.json()["detail_zh"]
        from sqlalchemy import select

        from registry.audit.models import AuditEvent

        with session_scope() as session:  # the refusal is evidence too
            refused = session.scalars(select(AuditEvent).where(AuditEvent.action == "request.refused")
                                      .order_by(AuditEvent.id.desc())).first()
            assert refused.agency_code == B and refused.detail["path"].endswith(f"/supervision/agencies/{A}")
        ranking = requests.get(f"{api.base_url}/api/v1/supervision/evaluation", params={"period": "2026Q4"},
                               headers=bearer(world.provider_b_token), timeout=30)
        assert ranking.status_code == 403
        supervisor = bearer(world.supervisor_session)
        seen = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{A}", params={"period": "2026Q4"},
                            headers=supervisor, timeout=30)
        assert seen.status_code == 200 and seen.json()["violations"] == []
        ranking = requests.get(f"{api.base_url}/api/v1/supervision/evaluation", params={"period": "2026Q4"},
                               headers=supervisor, timeout=30).json()
        assert [r["code"] for r in ranking] == [A, C, B]
        assert requests.get(f"{api.base_url}/api/v1/supervision/agencies/{B}", timeout=30).status_code == 401
        # the web page: the same view behind the session cookie
        own_page = requests.get(f"{api.base_url}/web/supervision", params={"period": "2026Q4"},
                                cookies={"govshare_session": world.provider_b_session}, timeout=30)
        assert own_page.status_code == 200 and OTHER_PROVIDER[1] in own_page.text
        assert "未整改的违规情形" in own_page.text and "逾期未整改" in own_page.text
        assert f"第 {body['rank']} 名" in own_page.text and "更新义务第" in own_page.text
        assert "update_obligations#" not in own_page.text
        assert requests.get(f"{api.base_url}/web/supervision/{A}", cookies={"govshare_session": world.provider_b_session},
                            timeout=30).status_code == 403
        assert requests.get(f"{api.base_url}/web/supervision/{A}", cookies={"govshare_session": world.supervisor_session},
                            timeout=30).status_code == 200
        anonymous = requests.get(f"{api.base_url}/web/supervision", allow_redirects=False, timeout=30)
        assert anonymous.status_code == 303 and "/web/login" in anonymous.headers["location"]


def test_the_daily_run_keeps_the_clocks_and_saves_the_evaluation(world) -> None:
    _story(world)
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.supervision.daily import run_daily
    from registry.supervision.models import EvaluationRun

    first = run_daily(today=AS_OF, actor="test")
    assert first["evaluation"]["period"] == "2026Q4" and first["evaluation"]["agencies"] == 3
    # reported fixed, but the records still show both: reopened (the order stays fixed; the next one would not)
    assert sorted(first["violations"]["new"]) == sorted([_violation_id("widened_collection", C),
                                                         _violation_id("stale_data", B)])
    assert first["clocks"]["rectification_overdue"] == []
    assert first["clocks"]["overdue_obligations"] == [world.ids["B1.obligation"]]
    assert first["clocks"]["unscheduled_obligations"] == []  # every due day of the seed is in a known year
    with session_scope() as session:
        run = session.scalars(select(EvaluationRun).order_by(EvaluationRun.id.desc())).first()
        assert run.as_of == AS_OF and [a["code"] for a in run.results["agencies"]] == [A, C, B]
        assert run.results["agencies"][0]["score"] == 92.5 and run.weights["weights"] == W


def test_weights_come_from_the_configuration_file_and_are_validated(world, tmp_path: Path) -> None:
    import yaml

    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate
    from schemas.evaluation_config import DEFAULT_FILE, load_config

    only_updates = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    only_updates["weights"] = {name: 0 for name in W} | {"update_timeliness": 1, "delivery_success": 1}
    own = tmp_path / "evaluation.yaml"
    own.write_text(yaml.safe_dump(only_updates), encoding="utf-8")
    with session_scope() as session:
        result = evaluate(session, period="2026Q4", as_of=AS_OF, config=load_config(own))
    # A: updates 1/1, delivery 1/2 -> 75; C: 0/1 and 1/1 -> 50; B: updates 0/1, no delivery -> 0
    assert [(a.code, a.score, a.rank) for a in result.agencies] == [(A, 75.0, 1), (C, 50.0, 2), (B, 0.0, 3)]
    only_updates["weights"]["updte_timeliness"] = 3
    own.write_text(yaml.safe_dump(only_updates), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown metric.*updte_timeliness"):
        load_config(own)
    own.write_text("weights: {catalogue_coverage: -1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing"):
        load_config(own)
    with session_scope() as session, pytest.raises(ConfigError, match="2026Q4"):
        evaluate(session, period="2026-Q4")


def test_the_supervision_dag_parses_without_io(tmp_path: Path) -> None:
    from tests.test_dags import _parse_dags

    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dags" / "govshare_supervision.py", folder)
    parsed = _parse_dags(folder, home=tmp_path / "no-home", airflow_home=tmp_path / "airflow")
    assert parsed["import_errors"] == {} and parsed["attempts"] == []
    dag = parsed["dags"]["govshare_supervision"]
    assert dag["schedule"] == "0 7 * * *" and "supervision" in dag["tags"] and dag["catchup"] is False
    assert set(dag["task_retries"]) == {"clocks", "violations", "evaluation", "sharing_check", "audit_anchor"}
    assert not (tmp_path / "no-home").exists()  # nothing was written either


@pytest.mark.slow
def test_the_supervision_dag_runs_through_airflow(hub_home: Path, tmp_path: Path) -> None:
    """dag.test() of govshare_supervision on a small registry: the three tasks succeed and leave their records."""
    from sqlalchemy import select

    from pipeline.airflow_runner import run_dags
    from registry.db import session_scope
    from registry.audit.models import AuditEvent
    from core import clock
    from registry.supervision.models import EvaluationRun
    from registry.supervision.periods import current_quarter, parse_period
    from tests.helpers import register_resource

    register_resource(kind=None, name="政策文件目录", classification="103001")

    assert run_dags(["govshare_supervision"], airflow_home=tmp_path / "airflow") == {"govshare_supervision": "success"}

    with session_scope() as session:
        closed, run = session.scalars(select(EvaluationRun).order_by(EvaluationRun.id)).all()
        # the quarter before, once after its end (its last morning's run could not count that day's clocks)
        current = parse_period(current_quarter(clock.today()))
        assert (closed.period, run.period) == (current.previous().code, current.code)
        assert run.actor == "supervision" and [a["code"] for a in run.results["agencies"]] == [PROVIDER[0]]
        assert "supervision.evaluate" in session.scalars(select(AuditEvent.action)).all()
        assert "sharing.check" in session.scalars(select(AuditEvent.action)).all()
    assert list((hub_home / "audit-anchors").glob("audit-anchor-*.json"))  # the head, kept outside the database


def test_inaccurate_data_is_one_violation_per_resource_and_rule(world) -> None:
    """Re-reading the same bad rows keeps one violation (not one per run); a second broken rule is a second
    one; fixing a rule's rows resolves its violation only. Last in the module: it changes the shared world's
    quarantine (its runs are dated before the evaluated quarter, so no score counts them)."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from registry.db import session_scope
    from registry.exchange.models import SyncRun
    from registry.quality.quarantine import Findings, settle_quarantine
    from registry.supervision.models import Violation
    from registry.supervision.violations import detect_violations

    def inaccurate() -> dict[str, tuple[str, int]]:
        with session_scope() as session:
            return {v.evidence["facts"]["rule"]: (v.status, v.evidence["facts"]["open_records"])
                    for v in session.scalars(select(Violation).where(Violation.kind == "inaccurate_data"))}

    def run(run_id: str, entries: list[tuple[str, str, str]], seen: set[str] = frozenset()) -> None:
        with session_scope() as session:
            moment = datetime(2026, 9, 20, 2, tzinfo=UTC)
            session.add(SyncRun(id=run_id, resource_id=world.ids["C1"], status="published", mode="incremental",
                                started_at=moment, finished_at=moment, rows_read=200,
                                rows_published=200 - len(entries), rows_quarantined=len(entries)))
            session.flush()
            settle_quarantine(session, resource_id=world.ids["C1"], run_id=run_id, version_id=None,
                              path=f"quarantine/c1/{run_id}.parquet", rows=len(entries),
                              rules={rule: 1 for _, rule, _ in entries}, findings=Findings(entries=entries, seen=seen))
        with session_scope() as session:
            detect_violations(session, as_of=AS_OF, actor="test")

    with session_scope() as session:
        detect_violations(session, as_of=AS_OF, actor="test")
    assert inaccurate() == {"identifier_uscc": ("open", 30)}
    uscc = [(str(k), "identifier_uscc", "统一社会信用代码无效 / invalid") for k in range(1, 31)]
    capital = [(str(k), "range_reg_capital", "注册资本为负 / negative") for k in range(1, 21)]
    run("run-c1-again", uscc)  # the same 30 rows read again: superseded, still one violation
    assert inaccurate() == {"identifier_uscc": ("open", 30)}
    run("run-c1-capital", uscc + capital)  # 20 of them also break a second rule
    assert inaccurate() == {"identifier_uscc": ("open", 30), "range_reg_capital": ("open", 20)}
    run("run-c1-fixed", capital, seen={k for k, _, _ in uscc})  # the codes corrected, the capitals not
    assert inaccurate() == {"identifier_uscc": ("resolved", 30), "range_reg_capital": ("open", 20)}
    assert len(inaccurate()) == 2  # one violation per resource and rule, whatever the number of runs
