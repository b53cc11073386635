"""Days in a violation's facts (违规事实) as staff read them: 2026年11月16日 on the console, the web page, the
notice (HTML, PDF, Excel) and the inbox, while the API keeps the recorded text and its ISO days for programs.
A small world on the real 2026 calendar: an application received Monday 11-02 is due Monday 11-16 (10 working
days, two weekends skipped) and found unanswered on 11-17."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    received_applications,
)
from tests.helpers import PROVIDER, bearer

ISO, CHINESE = "2026-11-16", "2026年11月16日"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # an ISO day anywhere


@pytest.fixture
def unanswered(catalog_home: Path) -> str:
    """The provider's user's session cookie, with one application_unanswered violation detected on 11-17."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user, login
    from registry.supervision.violations import detect_violations
    from tests.clock import on, pinned
    from tests.sharing_world import PASSWORD

    received_applications(date(2026, 11, 2), 1)
    with session_scope() as session:
        add_user(session, username="li.na", agency=PROVIDER[0], roles=["data_admin"], password=PASSWORD,
                 by=console("test"))
    with pinned(on(date(2026, 11, 17))), session_scope() as session:
        found = {v.kind for v in detect_violations(session, as_of=date(2026, 11, 17)).new}
        assert found == {"application_unanswered", "no_data"}  # nor any data since its publication (11-02)
    with pinned(on(date(2026, 11, 18))), session_scope() as session:
        return login(session, username="li.na", password=PASSWORD)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.usefixtures("cheap_hashing")
def test_staff_read_the_days_of_a_violation_in_chinese_and_the_api_keeps_iso(unanswered: str,
                                                                              tmp_path: Path) -> None:
    """Every surface printed 已过 2026-11-16 的答复期限 and 发现 2026-11-17 where a form says 2026年11月16日."""
    from openpyxl import load_workbook
    from pypdf import PdfReader

    from api.app import create_app
    from cli.main import app
    from registry.db import session_scope
    from registry.people.tokens import issue_token
    from registry.supervision.report_writer import write_report
    from tests.clock import on, pinned

    with pinned(on(date(2026, 11, 18))):
        listed = CliRunner().invoke(app, ["violation", "list"], env={"COLUMNS": "400"})
        inbox = CliRunner().invoke(app, ["apply", "inbox", "--as", "li.na"], env={"COLUMNS": "400"})
        client = TestClient(create_app())
        page = client.get("/web/supervision", cookies={"govshare_session": unanswered})
        with session_scope() as session:
            token = issue_token(session, agency=PROVIDER[0], name="scjg-system", days=30, actor="test")
        body = client.get(f"/api/v1/supervision/agencies/{PROVIDER[0]}", headers=bearer(token)).json()
        with session_scope() as session:
            html = write_report(session, period="2026Q4", fmt="html", out=tmp_path / "n.html").read_text()
            xlsx = write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "n.xlsx")
            pdf = write_report(session, period="2026Q4", fmt="pdf", out=tmp_path / "n.pdf")
    assert listed.exit_code == 0, listed.output
    assert f"已过 {CHINESE} 的答复期限" in listed.output and "2026年11月2日 发布后" in listed.output
    assert "2026年11月17日" in listed.output and not DAY.search(listed.output), listed.output  # 发现 (found on)
    assert inbox.exit_code == 0, inbox.output
    assert CHINESE in inbox.output and not DAY.search(inbox.output), inbox.output
    assert page.status_code == 200 and CHINESE in _text(page.text) and ISO not in page.text
    assert f"已过 {CHINESE} 的答复期限" in _text(html) and not DAY.search(_text(html))
    cells = [str(c) for sheet in load_workbook(xlsx) for row in sheet.iter_rows(values_only=True) for c in row if c]
    assert any(CHINESE in c for c in cells) and not any(DAY.search(c) for c in cells), cells
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages).replace(" ", "").replace("\n", "")
    assert CHINESE in text and ISO not in text
    # programs read the record as it is: ISO days in the text and in the fields
    violation = next(v for v in body["violations"] if v["kind"] == "application_unanswered")
    assert ISO in violation["summary"] and violation["detected_on"] == "2026-11-17", violation
    assert violation["evidence"]["facts"]["due_on"] == ISO


def test_only_whole_days_in_a_text_are_rewritten() -> None:
    from schemas.presentation import days_in

    assert days_in("应于 2026-11-16 前更新，2026-11-18 才完成") == "应于 2026年11月16日 前更新，2026年11月18日 才完成"
    for kept in ("2026-11-16T08:00:00+08:00", "2026-13-45", "12026-11-16", "2026-11-160", "v2026-11-16-2"):
        assert days_in(kept) == kept
