"""Statutory due days in a year whose State Council schedule is not installed (core/calendar/due_days.py, filled in by
registry/supervision/due_days.py): accepted
and shown as 待国务院公布节假日安排 everywhere (API, page, PDF form, CLI, supervision), never overdue and never
guessed; loading the schedule fills every due day in (audited), and a passed one is overdue from then on. From
November the operator is told, with the command to run, while next year's schedule is missing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pypdf
import pytest
import requests
from typer.testing import CliRunner

from cli.main import app as cli
from tests.clock import on, pinned
from tests.helpers import CONSUMER, PROVIDER, bearer, ensure_agency, publish_entry, running_api
from tests.sharing_world import COMMISSION, PASSWORD

pytestmark = [pytest.mark.clock,  # re-run on several pinned days by `make test-days`
              pytest.mark.usefixtures("cheap_hashing")]

AWAITING = "待国务院公布节假日安排"
runner = CliRunner()
# A 2027 schedule declared by the test itself (not the State Council's): New Year's Day 1-3 January.
SCHEDULE_2027 = {"year": 2027, "source": "test schedule", "holidays": [
    {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03"},
    {"name": "春节", "start": "2027-02-06", "end": "2027-02-14"}], "workdays": ["2027-02-20"]}


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.output import console

    monkeypatch.setattr(console, "_width", 200)  # tables keep each cell on one line (restored to "detect")


@pytest.fixture
def office(hub_home: Path) -> Iterator[dict[str, str]]:
    """Provider, consumer and supervisor with their people; a conditional entry; no 2027 schedule installed."""
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.catalog.resources import add_resource
    from registry.people.users import add_user

    from core.settings import get_settings

    assert not any(get_settings().calendar_dir.glob("2027.*"))
    with session_scope() as session:
        for code, name in (PROVIDER, CONSUMER, COMMISSION):
            ensure_agency(session, code, name)
        entry = add_resource(session, name="企业纳税信用信息", agency=PROVIDER[0], classification="101001",
                             sharing_type="conditional", sharing_condition="限于行政审批核验", actor="test")
        for username, agency, roles in (("prov", PROVIDER[0], ["data_admin"]), ("cons", CONSUMER[0], ["data_admin"]),
                                        ("commission", COMMISSION[0], ["supervisor"])):
            add_user(session, username=username, agency=agency, roles=roles, password=PASSWORD, by=console("test"))
        code = entry.code
        publish_entry(session, code, columns=("uscc", "name", "credit_level"))  # only published entries are shared
    yield {"code": code}


def _token(base_url: str, username: str) -> str:
    answer = requests.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": PASSWORD},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def _page(base_url: str, username: str, path: str) -> str:
    browser = requests.Session()
    signed_in = browser.post(f"{base_url}/web/login", data={"username": username, "password": PASSWORD,
                                                             "next": path}, timeout=30)
    assert signed_in.status_code == 200, signed_in.text
    return signed_in.text


def _unknown_duties(code: str) -> tuple[str, str]:
    """An update obligation and a rectification order whose due days fall in 2027, opened on 31 December."""
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.catalog.obligations import open_update_obligation
    from registry.supervision.rectification import issue_order
    from registry.supervision.violations import record_finding

    supervisor = console("commission")
    with session_scope() as session:
        obligation = open_update_obligation(session, resource_code=code, reason="数据结构变化", actor="test",
                                            opened_on=date(2026, 12, 31))
        violation = record_finding(session, case=3, agency=PROVIDER[0], summary="目录未按时更新", by=supervisor,
                                   on=date(2026, 12, 31))
        order = issue_order(session, violation_id=violation.id, requirement="补充更新目录", by=supervisor,
                            working_days=5, issued_on=date(2026, 12, 31))
        assert obligation.due_on is None and "2027" in obligation.due_problem
        assert order.due_on is None and "govshare calendar load 2027.json" in order.due_problem
        return order.number, code


def test_an_application_waits_for_the_schedule_then_gets_its_day(office: dict[str, str], tmp_path: Path) -> None:
    from sqlalchemy import select

    from registry.sharing.applications import check_deadlines
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with pinned(on(date(2026, 12, 20))), running_api() as api:  # a Sunday: 10 working days reach into 2027
        consumer = _token(api.base_url, "cons")
        applied = requests.post(f"{api.base_url}/api/v1/applications", headers=bearer(consumer), timeout=30, json={
            "resource_code": office["code"], "scope": "本市企业", "purpose": "行政审批核验", "items": ["uscc", "name"]})
        assert applied.status_code == 201, applied.text
        number = applied.json()["number"]
        assert applied.json()["due_on"] is None and applied.json()["due_status"] == "awaiting_schedule"
        assert applied.json()["received_on"] == "2026-12-20"

        shown = requests.get(f"{api.base_url}/api/v1/applications/{number}", headers=bearer(consumer), timeout=30)
        assert shown.json()["due_on"] is None and shown.json()["due_status"] == "awaiting_schedule"
        page = _page(api.base_url, "cons", f"/web/applications/{number}")
        assert AWAITING in page and "2027" not in page.split('id="due"')[1].split("</td>")[0]
        form = requests.get(f"{api.base_url}/api/v1/applications/{number}/form.pdf", headers=bearer(consumer),
                            timeout=30)
        text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(form.content)).pages)
        assert AWAITING in text.replace("\n", "")
        listed = runner.invoke(cli, ["apply", "list", "--as", "prov"])
        assert listed.exit_code == 0 and number in listed.output and AWAITING in listed.output

        supervisor = _token(api.base_url, "commission")
        standing = requests.get(f"{api.base_url}/api/v1/supervision/agencies/{PROVIDER[0]}",
                                headers=bearer(supervisor), timeout=30).json()
        [pending] = standing["pending_applications"]
        assert pending["due_on"] is None and pending["due_status"] == "awaiting_schedule" and not pending["overdue"]
        assert "govshare calendar load 2027.json" in standing["schedule_warning"]
        supervision_page = _page(api.base_url, "commission", f"/web/supervision/{PROVIDER[0]}")
        assert AWAITING in supervision_page and "govshare calendar load 2027.json" in supervision_page

    order, _ = _unknown_duties(office["code"])
    with session_scope() as session:  # weeks later, still no schedule: never reminded, never overdue
        assert check_deadlines(session, today=date(2027, 1, 29), by=console("scheduler")) == []

    with pinned(on(date(2026, 12, 21))):
        schedule = tmp_path / "2027.json"
        schedule.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False, indent=2), encoding="utf-8")
        loaded = runner.invoke(cli, ["calendar", "load", str(schedule)])
        assert loaded.exit_code == 0, loaded.output
        # Received Sunday 20 December: 21-25, 28-31 December are working days 1-9; 1-3 January are off.
        assert f"application {number} -> 2027-01-04" in loaded.output
        assert "update_obligation" in loaded.output and f"rectification_order {order} -> 2027-01-08" in loaded.output
        with session_scope() as session:
            scheduled = [e.detail for e in session.scalars(select(AuditEvent).where(
                AuditEvent.action == "due_day.scheduled"))]
        assert {"kind": "application", "reference": number, "due_on": "2027-01-04"} in scheduled
        assert {"kind": "update_obligation", "reference": office["code"], "due_on": "2027-01-05"} in scheduled
        with running_api() as api:
            shown = requests.get(f"{api.base_url}/api/v1/applications/{number}",
                                 headers=bearer(_token(api.base_url, "cons")), timeout=30).json()
            assert shown["due_on"] == "2027-01-04" and shown["due_status"] == "pending"
            assert "2027年1月4日" in _page(api.base_url, "cons", f"/web/applications/{number}")  # no zero padding
        again = runner.invoke(cli, ["calendar", "load", str(schedule)])
        assert "0 个待定期限已计算" in again.output  # each due day is filled in once

    with pinned(on(date(2027, 1, 5))), session_scope() as session:
        assert (number, "overdue") in check_deadlines(session, by=console("scheduler"))
        from core.calendar.due_days import due_status
        from registry.sharing.models import Application

        application = session.scalar(select(Application).where(Application.number == number))
        assert due_status(application.due_on) == "overdue"


@pytest.mark.parametrize(("day", "warned"), [(date(2026, 10, 31), False), (date(2026, 11, 2), True),
                                             (date(2026, 12, 31), True)])
def test_the_operator_is_told_from_november_while_next_year_is_missing(office: dict[str, str], day: date,
                                                                      warned: bool) -> None:
    from registry.supervision.daily import run_clocks

    with pinned(on(day)):
        years = runner.invoke(cli, ["calendar", "years"])
        assert years.exit_code == 0
        assert ("govshare calendar load 2027.json" in years.output) is warned
        result = run_clocks(actor="test")
        assert (result["schedule_warning"] is not None) is warned


def test_loading_the_schedule_ends_the_warning(office: dict[str, str], tmp_path: Path) -> None:
    schedule = tmp_path / "2027.json"
    schedule.write_text(json.dumps(SCHEDULE_2027, ensure_ascii=False), encoding="utf-8")
    with pinned(on(date(2026, 11, 20))):
        assert runner.invoke(cli, ["calendar", "load", str(schedule)]).exit_code == 0
        years = runner.invoke(cli, ["calendar", "years"])
        assert "warning" not in years.output and "2027  file" in years.output
