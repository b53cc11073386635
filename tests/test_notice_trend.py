"""The notice workbook's trend sheet (得分趋势): a period in which an agency has no score leaves its cell empty, so
the line chart breaks there instead of dropping to 0, and says 无数据 to the person reading the table (a note on
the cell and a line under the table). Read back with openpyxl and from the chart's own XML."""

from __future__ import annotations

import re
import zipfile
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    new_entry,
    publish,
    setup_people,
)
from tests.helpers import PROVIDER


@pytest.fixture
def notice(catalog_home: Path, tmp_path: Path) -> Path:
    """The 2026Q4 notice of a provider that registered its resources on 2026-11-02: the trend's first three
    quarters (Q1-Q3) have no score for it, Q4 has one."""
    from registry.db import session_scope
    from registry.supervision.report_writer import write_report
    from tests.clock import on, pinned

    with pinned(on(date(2026, 11, 2))), session_scope() as session:
        setup_people(session)
        publish(session, new_entry(session, classification="101001", name="企业基本信息"), on=date(2026, 11, 2))
    with pinned(on(date(2026, 11, 25))), session_scope() as session:
        return write_report(session, period="2026Q4", fmt="xlsx", out=tmp_path / "notice.xlsx")


def test_a_period_without_a_score_says_no_data_and_stays_a_gap_in_the_chart(notice: Path) -> None:
    """The empty cell had no explanation: a reader could take it for a value left out by mistake."""
    sheet = load_workbook(notice)["得分趋势"]
    header = [c.value for c in sheet[1]]
    column = header.index(PROVIDER[1]) + 1
    rows = {sheet.cell(row=r, column=1).value: sheet.cell(row=r, column=column) for r in range(2, 6)}
    assert list(rows) == ["2026Q1", "2026Q2", "2026Q3", "2026Q4"]
    assert isinstance(rows["2026Q4"].value, float) and rows["2026Q4"].comment is None
    for period in ("2026Q1", "2026Q2", "2026Q3"):
        cell = rows[period]
        assert cell.value is None  # empty, not 0 and not text: nothing for the chart to plot
        assert cell.comment is not None and "无数据" in cell.comment.text, period
    notes = [c.value for row in sheet.iter_rows(min_row=6, max_col=1) for c in row if c.value]
    assert any("空白" in note and "无数据" in note for note in notes), notes
    with zipfile.ZipFile(notice) as package:
        charts = [package.read(n).decode() for n in package.namelist() if re.match(r"xl/charts/chart\d+\.xml", n)]
    line = next(xml for xml in charts if re.search(r"<(c:)?lineChart>", xml))
    assert re.search(r'dispBlanksAs val="gap"', line)  # an empty cell is a break in the line, never a 0
    assert re.search(r"\$B\$2:\$B\$5", line)  # the series still reads the four periods' cells, the note row not
