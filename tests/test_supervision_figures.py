"""The figures the supervising office and agency staff read (评估与监督): every statutory clock due in a period is
counted in that period, also when it falls on the period's last day; a metric with nothing to measure says
无数据 on every surface; the figures are the same on the CLI, the API, the web page and the notice. Small
worlds on the real 2026 calendar, numbers worked out by hand in each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    entry_data,
    new_entry,
    publish,
    received_applications,
    setup_people,
)
from tests.helpers import PROVIDER

SEEN_ON = date(2026, 11, 25)  # an ordinary Wednesday, after the third quarter


@pytest.fixture
def seen_later() -> Iterator[None]:
    from tests.clock import on, pinned

    with pinned(on(SEEN_ON)):
        yield


def _registered(session, *, classification: str, name: str, on: date) -> str:
    """An entry of the provider registered on `on` (Beijing)."""
    from sqlalchemy import select

    from registry.catalog.models import Resource
    from tests.clock import on as at

    code = new_entry(session, classification=classification, name=name)
    session.scalar(select(Resource).where(Resource.code == code)).created_at = at(on)
    return code


@pytest.mark.usefixtures("seen_later")
def test_an_update_due_on_the_last_day_of_a_period_counts_in_it(catalog_home: Path) -> None:
    """2026Q3 ends on Wednesday 30 September. An update that fell due that day and was never made, or made after
    the quarter, was counted in no period at all: 更新及时率 of the closed quarter said 100 % (1 / 1)."""
    from registry.catalog.obligations import open_update_obligation
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate

    with session_scope() as session:
        setup_people(session)
        kept = _registered(session, classification="101001", name="企业基本信息", on=date(2026, 9, 1))
        never = _registered(session, classification="101002", name="企业年报信息", on=date(2026, 9, 1))
        late = _registered(session, classification="101003", name="企业变更记录", on=date(2026, 9, 1))
        for code in (kept, never, late):
            publish(session, code, on=date(2026, 9, 2))
        # Friday 09-25: Saturday off, Sunday 09-27 off, due Tuesday 09-29; published that day: kept
        first = open_update_obligation(session, resource_code=kept, reason="信息项调整", actor="test",
                                       opened_on=date(2026, 9, 25))
        # Monday 09-28: due Wednesday 09-30, the quarter's last day; one never published, one published 10-09
        second = open_update_obligation(session, resource_code=never, reason="数据源结构变更", actor="test",
                                        opened_on=date(2026, 9, 28))
        third = open_update_obligation(session, resource_code=late, reason="数据源结构变更", actor="test",
                                       opened_on=date(2026, 9, 28))
        assert (first.due_on, second.due_on, third.due_on) == (date(2026, 9, 29), date(2026, 9, 30), date(2026, 9, 30))
        session.flush()
        from registry.catalog.entries import upsert_entry

        for code, day in ((kept, date(2026, 9, 29)), (late, date(2026, 10, 9))):
            upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", data=entry_data(
                classification=code[:6], name="更新后", abstract="调整后的摘要"))
            publish(session, code, on=day)
    with session_scope() as session:
        quarter = evaluate(session, period="2026Q3").standing(PROVIDER[0])
        month = evaluate(session, period="2026-09").standing(PROVIDER[0])
        october = evaluate(session, period="2026-10").standing(PROVIDER[0])
    # by hand: due 09-29 kept; due 09-30 never done and due 09-30 done 10-09 both missed
    assert quarter.counts["update_timeliness"] == [1, 3]
    assert quarter.clocks["update"] == {"kept": 1, "missed": 2}
    assert month.counts["update_timeliness"] == [1, 3]
    assert october.counts["update_timeliness"] == [0, 0]  # counted in the period it fell due in, once
    assert october.metrics["update_timeliness"] is None


def _surfaces_world(session) -> str:
    """The provider registers three entries and publishes two (目录覆盖率 2 / 3); its data items carry no
    description (目录要素完整率 0 / 2: a real 0 %); nothing else happened in the quarter, so 更新及时率, 申请答复及时率,
    数据质量合格率 and 交付成功率 have nothing to measure. Returns the provider's user's session token."""
    from registry.people.auth import console
    from registry.people.users import add_user, login
    from tests.sharing_world import PASSWORD

    setup_people(session)
    for classification, name in (("101001", "企业基本信息"), ("101002", "企业年报信息")):
        publish(session, new_entry(session, classification=classification, name=name), on=date(2026, 11, 2))
    new_entry(session, classification="101003", name="企业变更记录")
    add_user(session, username="li.na", agency=PROVIDER[0], roles=["data_admin"], password=PASSWORD,
             by=console("test"))
    session.flush()
    return login(session, username="li.na", password=PASSWORD)


# by hand: 100 x (15 x 2/3 + 10 x 0 + 15 x 1 + 10 x 1 + 10 x 1) / (15 + 10 + 15 + 10 + 10), the four metrics with
# nothing to measure (weights 15, 10, 10, 5) left out of both sums
SCORE = "75.00"
COVERAGE, COMPLETENESS, NO_DATA = "66.7%", "0.0%", "无数据"


@pytest.mark.usefixtures("seen_later", "cheap_hashing")
def test_every_surface_shows_the_same_figures_and_no_data_where_nothing_was_measured(catalog_home: Path,
                                                                                     tmp_path: Path) -> None:
    """A metric with nothing to measure read "—" on the CLI, the notice and the web page, and an empty cell in
    Excel; a standard 80-column terminal cut every figure of `govshare evaluate` to "100…" or "10…"."""
    import re

    import requests
    from openpyxl import load_workbook
    from pypdf import PdfReader
    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.people.tokens import issue_token
    from registry.supervision.report_writer import write_report
    from tests.helpers import bearer, running_api

    with session_scope() as session:
        cookie = _surfaces_world(session)
        token = issue_token(session, agency=PROVIDER[0], name="scjg-system", days=30, actor="test")

    cli = CliRunner().invoke(app, ["evaluate", "--period", "2026Q4"], env={"COLUMNS": "80"})
    assert cli.exit_code == 0, cli.output
    assert "…" not in cli.output, cli.output
    assert SCORE in cli.output and COVERAGE in cli.output and COMPLETENESS in cli.output
    assert re.search(r"目录覆盖率\s*│\s*66\.7%\s*│\s*2 / 3", cli.output), cli.output
    assert re.search(r"更新及时率\s*│\s*无数据\s*│\s*0 / 0", cli.output), cli.output

    with running_api() as api:
        body = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{PROVIDER[0]}",
                            params={"period": "2026Q4"}, headers=bearer(token), timeout=30).json()
        page = requests.get(f"{api.base_url}/web/supervision", params={"period": "2026Q4"},
                            cookies={"govshare_session": cookie}, timeout=30).text
    assert body["score"] == 75.0 and body["counts"]["catalogue_coverage"] == [2, 3]
    assert body["metrics"]["catalogue_coverage"] == pytest.approx(2 / 3)
    assert body["metrics"]["update_timeliness"] is None and body["counts"]["update_timeliness"] == [0, 0]
    cells = [re.sub(r"<[^>]+>|\s+", " ", row).split() for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    assert ["目录覆盖率", COVERAGE, "2", "/", "3"] in cells and ["目录要素完整率", COMPLETENESS, "0", "/", "2"] in cells
    assert ["更新及时率", NO_DATA, "0", "/", "0"] in cells, cells
    assert f"得分： {SCORE}" in re.sub(r"<[^>]+>|\s+", " ", page)

    with session_scope() as session:
        html = write_report(session, period="2026Q4", fmt="html", out=tmp_path / "n.html").read_text()
        xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx")
        pdf = write_report(session, period="2026Q4", fmt="pdf", out=tmp_path / "n.pdf")
    html_cells = [re.sub(r"<[^>]+>", " ", cell).split() for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    assert [COVERAGE, "2/3"] in html_cells and [COMPLETENESS, "0/2"] in html_cells and [NO_DATA, "0/0"] in html_cells
    assert "—" not in re.sub(r"<td>—</td>", "", html.split("二、评估得分与排名")[1].split("三、")[0])
    header, row = list(load_workbook(xlsx)["得分排名"].iter_rows(values_only=True))
    shown = dict(zip(header, row))
    assert shown["得分"] == 75.0 and shown["目录覆盖率"] == 0.667 and shown["目录要素完整率"] == 0
    assert shown["更新及时率"] == NO_DATA and shown["交付成功率"] == NO_DATA
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages).replace(" ", "").replace("\n", "")
    assert f"{SCORE}{COVERAGE}2/3{COMPLETENESS}0/2" in text and f"{NO_DATA}0/0" in text, text[:2000]


def _published(session, *, classification: str, name: str, on: date) -> str:
    """An entry registered and published (as consumers saw it) on `on`."""
    from sqlalchemy import select

    from registry.catalog.models import CatalogRevision, Resource
    from tests.clock import on as at

    code = _registered(session, classification=classification, name=name, on=on)
    publish(session, code, on=on)
    resource = session.scalar(select(Resource).where(Resource.code == code))
    session.scalar(select(CatalogRevision).where(CatalogRevision.resource_id == resource.id,
                                                 CatalogRevision.status == "published")).published_at = at(on)
    return code


def test_the_yearly_reconfirmation_is_late_only_after_its_due_day(catalog_home: Path) -> None:
    """年度全面维护 is due by 31 December. An entry last maintained the year before, not yet reconfirmed in the
    first quarter, was counted 超时 in that quarter and lowered 年度全面维护率 although its due day was months
    away; one that skipped a whole year is late, and at the year's end every entry not maintained is."""
    from registry.catalog.obligations import reconfirm_entry
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate
    from tests.clock import on, pinned

    with pinned(on(SEEN_ON)), session_scope() as session:
        setup_people(session)
        kept = _published(session, classification="101001", name="企业基本信息", on=date(2025, 6, 2))
        _published(session, classification="101002", name="企业年报信息", on=date(2025, 6, 2))  # due 2026-12-31
        _published(session, classification="101003", name="企业变更记录", on=date(2024, 5, 6))  # nothing in 2025
        reconfirm_entry(session, code=kept, account="zhang", on=date(2026, 2, 10))
    with pinned(on(SEEN_ON)), session_scope() as session:
        first_quarter = evaluate(session, period="2026Q1").standing(PROVIDER[0])
    # by hand: 101001 kept (02-10); 101003 late (missed 2025); 101002 not due until 2026-12-31: not counted yet
    assert first_quarter.counts["reconfirmation"] == [1, 2]
    assert first_quarter.clocks["reconfirmation"] == {"kept": 1, "missed": 1}
    with pinned(on(date(2027, 1, 6))), session_scope() as session:  # the year is over: 101002 missed it too
        year = evaluate(session, period="2026").standing(PROVIDER[0])
    assert year.counts["reconfirmation"] == [1, 3]
    assert year.clocks["reconfirmation"] == {"kept": 1, "missed": 2}


@pytest.mark.usefixtures("seen_later")
def test_rectification_orders_on_the_console_say_their_state_in_chinese(catalog_home: Path) -> None:
    """`govshare rectification list` printed open / fixed / overdue where the notice and the web page say 待整改,
    已整改, 逾期未整改."""
    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.supervision.rectification import issue_order
    from registry.supervision.violations import record_finding

    with session_scope() as session:
        setup_people(session)
        finding = record_finding(session, case=3, agency=PROVIDER[0], summary="数据更新不及时", by=console("test"))
        order = issue_order(session, violation_id=finding.id, requirement="按更新周期发布数据", by=console("test"),
                            working_days=10, issued_on=date(2026, 11, 2))
        assert order.due_on == date(2026, 11, 16)  # Monday 11-02 + 10 working days, two weekends skipped
    listed = CliRunner().invoke(app, ["rectification", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if order.number in line)
    assert "待整改" in row and "open" not in row, listed.output


def test_an_application_withdrawn_after_its_due_day_counts_as_answered_late(catalog_home: Path) -> None:
    """申请答复及时率 left out an application the provider let pass its 10-working-day due day unanswered when the
    consumer withdrew it afterwards, so the provider's silence cost it nothing; one withdrawn before its due day
    had nothing to answer and is not counted."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.applications import decide
    from registry.sharing.withdrawal import withdraw_application
    from registry.supervision.evaluation import evaluate
    from tests.clock import on, pinned
    from tests.helpers import person_of

    numbers = received_applications(date(2026, 11, 2), 3)  # Monday; + 10 working days = Monday 11-16
    with session_scope() as session:
        assert {a.due_on for a in map(lambda n: _application(session, n), numbers)} == {date(2026, 11, 16)}
    answered, withdrawn_late, withdrawn_early = numbers
    with pinned(on(date(2026, 11, 5))), session_scope() as session:
        decide(session, number=answered, outcome="approve", reasons="符合履职需要",
               by=person_of(session, PROVIDER[0], "data_admin"))
    from typer.testing import CliRunner

    from cli.main import app

    with pinned(on(date(2026, 11, 10))):  # the consumer withdraws on the console; an answered one cannot be
        refused = CliRunner().invoke(app, ["apply", "withdraw", answered, "--reason", "需求已取消"])
        withdrawn = CliRunner().invoke(app, ["apply", "withdraw", withdrawn_early, "--reason", "需求已取消"])
    assert refused.exit_code == 1 and "已答复" in refused.output and "Traceback" not in refused.output
    assert withdrawn.exit_code == 0 and "已撤回申请" in withdrawn.output, withdrawn.output
    with pinned(on(date(2026, 11, 18))), session_scope() as session:
        withdraw_application(session, number=withdrawn_late, reason="久未答复，改用其他渠道", by=console("test"))
    with pinned(on(SEEN_ON)), session_scope() as session:
        quarter = evaluate(session, period="2026Q4").standing(PROVIDER[0])
    # by hand: answered 11-05 by its due day 11-16: kept; withdrawn 11-18, two days after 11-16 unanswered: late;
    # withdrawn 11-10, before its due day: not counted
    assert quarter.counts["application_timeliness"] == [1, 2]
    assert quarter.clocks["application"] == {"kept": 1, "missed": 1}
    assert quarter.metrics["application_timeliness"] == pytest.approx(0.5)


def _application(session, number: str):  # noqa: ANN202 - Application
    from registry.sharing.applications import get_application

    return get_application(session, number=number)


def test_the_daily_run_keeps_the_closed_quarter_with_its_last_day_counted(catalog_home: Path) -> None:
    """The supervision DAG evaluated only the current quarter, so the last evaluation kept of 2026Q3 was the one
    of the morning of Wednesday 30 September: an update due that day and never made was not yet counted, and
    the kept record said 更新及时率 无数据 for the closed quarter for good."""
    from sqlalchemy import select

    from registry.catalog.obligations import open_update_obligation
    from registry.db import session_scope
    from registry.supervision.daily import run_scheduled_evaluation
    from registry.supervision.models import EvaluationRun
    from tests.clock import on, pinned

    with pinned(on(date(2026, 9, 28))), session_scope() as session:
        setup_people(session)
        code = _registered(session, classification="101001", name="企业基本信息", on=date(2026, 9, 1))
        publish(session, code, on=date(2026, 9, 2))
        obligation = open_update_obligation(session, resource_code=code, reason="数据源结构变更", actor="test",
                                            opened_on=date(2026, 9, 28))
        assert obligation.due_on == date(2026, 9, 30)  # the quarter's last day; never made
    for day in (date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 2)):
        with pinned(on(day, 7)):
            run_scheduled_evaluation(today=day, actor="test")

    def kept(period: str) -> list[EvaluationRun]:
        with session_scope() as session:
            runs = list(session.scalars(select(EvaluationRun).where(EvaluationRun.period == period)
                                        .order_by(EvaluationRun.id)))
            session.expunge_all()
            return runs

    closed = kept("2026Q3")
    # by hand: the morning of 09-30 the update is not yet late; once the quarter is over it is (0 kept of 1),
    # and the closed quarter is kept once, not again each day after
    assert [(r.as_of, r.results["agencies"][0]["counts"]["update_timeliness"]) for r in closed] == \
        [(date(2026, 9, 30), [0, 0]), (date(2026, 9, 30), [0, 1])]
    assert [r.as_of for r in kept("2026Q4")] == [date(2026, 10, 1), date(2026, 10, 2)]


def test_open_violations_of_a_past_period_are_those_open_at_its_end(catalog_home: Path) -> None:
    """未整改违规 of the 2026Q3 evaluation (the notice's ranking, the API, the page) counted the violations open
    today, so a violation found in October raised the third quarter's figure and one open all through September
    but put right in October left it."""
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.supervision.evaluation import evaluate
    from registry.supervision.findings import Finding
    from registry.supervision.violations import detect_violations, upsert_violation
    from tests.clock import on, pinned

    with pinned(on(date(2026, 9, 2))), session_scope() as session:
        setup_people(session)
        publish(session, new_entry(session, classification="101001", name="企业基本信息"), on=date(2026, 9, 2))
        provider = get_agency(session, ref=PROVIDER[0]).id
        upsert_violation(session, finding=Finding(3, "late_update", provider, "obligation-1", summary="目录更新义务逾期未完成",
                                                  records=[]), on=date(2026, 9, 10), actor="test")
    with pinned(on(date(2026, 10, 8))), session_scope() as session:
        detect_violations(session, as_of=date(2026, 10, 8), actor="test")  # the records no longer show it: resolved
        upsert_violation(session, finding=Finding(3, "late_update", provider, "obligation-2", summary="目录更新义务逾期未完成",
                                                  records=[]), on=date(2026, 10, 12), actor="test")
    with pinned(on(SEEN_ON)), session_scope() as session:
        third = evaluate(session, period="2026Q3").standing(PROVIDER[0])
        fourth = evaluate(session, period="2026Q4").standing(PROVIDER[0])
        from sqlalchemy import func, select

        from registry.supervision.models import Violation

        open_now = session.scalar(select(func.count()).select_from(Violation).where(Violation.status == "open"))
    # by hand: on 09-30 only obligation-1 (found 09-10, resolved 10-08) was open; today it is not, the ones found
    # in October are
    assert third.open_violations == 1
    assert fourth.open_violations == open_now >= 1
