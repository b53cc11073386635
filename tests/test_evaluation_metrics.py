"""Evaluation metrics are defined once, with their formula, and stay within 0-100 %: the data quality pass rate
(数据质量合格率) counts the rows each run read, not the size of the version an incremental run published (which
made it 199.7 % before); a metric's numerator can never leave its denominator."""

from __future__ import annotations

from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import register_resource, sqlite_execute, sync

LATER = "2031-01-01T10:00:00+08:00"


def _period() -> str:
    from core import clock

    today = clock.today()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def test_the_quality_pass_rate_counts_the_rows_runs_read(hub_home: Path, tmp_path: Path) -> None:
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate

    database = tmp_path / "market.db"
    load_sqlite(database, rows=300, seed=23)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    assert sync(hub).rows_read == 300  # run 1: 300 read, 0 quarantined
    # run 2 (incremental): 3 rows changed and a new one whose capital does not fit decimal(18,2); with the row
    # at the watermark, 5 read
    sqlite_execute(database, f"UPDATE enterprises SET status = '注销', updated_at = '{LATER}' WHERE id IN (1, 2, 3)",
                   f"INSERT INTO enterprises SELECT 9001, uscc, name, legal_rep, legal_rep_id, 1.234, "
                   f"established, status, address, industry, '{LATER}' FROM enterprises WHERE id = 4")
    second = sync(hub)
    assert (second.mode, second.rows_read, second.rows_quarantined) == ("incremental", 5, 1)
    third = sync(hub)  # run 3: nothing changed; the 4 rows at the watermark read again, the bad one again
    assert (third.version, third.rows_read, third.rows_quarantined) == (None, 4, 1)

    with session_scope() as session:
        standing = evaluate(session, period=_period()).standing(hub.provider_code)
    # by hand: (300 - 0) + (5 - 1) + (4 - 1) passed of 300 + 5 + 4 read
    assert standing.counts["quality_pass_rate"] == [307, 309]
    assert standing.metrics["quality_pass_rate"] == pytest.approx(307 / 309)
    assert all(value is None or 0 <= value <= 1 for value in standing.metrics.values())


def test_a_metric_cannot_leave_its_range_and_each_has_one_formula() -> None:
    from registry.supervision.evaluation import Ratio, weighted_score
    from schemas.evaluation_config import METRIC_FORMULAS, METRICS

    assert Ratio(0, 0).value is None and Ratio(3, 4).value == 0.75
    with pytest.raises(ValueError, match="not part of its denominator"):
        Ratio(5, 4)  # the bug that showed 199.7 % would now stop the evaluation instead
    with pytest.raises(ValueError):
        Ratio(-1, 4)
    assert set(METRIC_FORMULAS) == set(METRICS) and all(" ÷ " in f or "÷" in f for f in METRIC_FORMULAS.values())
    assert weighted_score({"a": 1.0, "b": 0.5, "c": None}, {"a": 1, "b": 3, "c": 5}) == 62.5  # (1 + 1.5) / 4


def test_a_share_short_of_all_never_reads_100_percent(hub_home: Path, tmp_path: Path) -> None:
    """One row of 3,000 failed the quality rules: 数据质量合格率 2999 / 3000 read 100.0 % on the console, the web page
    and the notice (and in its workbook, the cell's 0.0% format rounding it up too), as if every row had passed."""
    import re

    from openpyxl import load_workbook
    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.supervision.report_writer import write_report
    from schemas.presentation import share

    database = tmp_path / "market.db"
    load_sqlite(database, rows=3000, seed=23)
    sqlite_execute(database, "UPDATE enterprises SET reg_capital = 1.234 WHERE id = 4")  # does not fit decimal(18,2)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    run = sync(hub)
    assert (run.rows_read, run.rows_quarantined) == (3000, 1)

    shown = CliRunner().invoke(app, ["evaluate", "--period", _period()], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    assert re.search(r"数据质量合格率\s*│\s*99\.9%\s*│\s*2999 / 3000", shown.output), shown.output
    with session_scope() as session:
        html = write_report(session, period=_period(), fmt="html", out=tmp_path / "n.html").read_text()
        xlsx = write_report(session, period=_period(), fmt="xlsx", out=tmp_path / "n.xlsx")
    assert "<td>99.9%<br><small>2999/3000</small></td>" in html, html
    header, row = list(load_workbook(xlsx)["得分排名"].iter_rows(values_only=True))
    cell = dict(zip(header, row))["数据质量合格率"]
    assert f"{cell * 100:.1f}%" == "99.9%"  # as the cell's 0.0% format shows it
    # and the other end: one kept of 3,000 is not none
    assert (share(1 / 3000), share(0.0), share(1.0), share(2 / 3)) == ("0.1%", "0.0%", "100.0%", "66.7%")


def test_a_score_short_of_full_marks_never_reads_100() -> None:
    """An agency whose every metric was 100 % but 数据质量合格率 2999 / 3000 scored 100.00 (99.995 rounded), tied
    for first with one that kept everything; one above nothing read 0.00."""
    from registry.supervision.evaluation import weighted_score
    from schemas.presentation import score

    # by hand: 100 x (15 x 2999/3000 + 85 x 1) / 100 = 99.995
    assert score(weighted_score({"quality": 2999 / 3000, "rest": 1.0}, {"quality": 15, "rest": 85})) == "99.99"
    assert score(weighted_score({"quality": 1 / 30000}, {"quality": 1})) == "0.01"  # 0.0033
    assert weighted_score({"a": 1.0, "b": 1.0}, {"a": 1, "b": 3}) == 100.0
    assert weighted_score({"a": 0.0}, {"a": 1}) == 0.0
