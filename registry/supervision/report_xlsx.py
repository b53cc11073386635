"""The periodic notice as an Excel workbook (openpyxl): one sheet per section, native Excel charts."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from core.xlsx import append_row
from registry.supervision.report import ReportData
from schemas.presentation import NO_DATA, NOT_SCORED, shown_share

HEADER_FILL = PatternFill("solid", fgColor="EEF3FA")
# A period without a score stays an empty cell (the trend line breaks there; text or 0 would be plotted as 0), and
# says so to the reader: a note on the cell and a line under the table (decision, 2026-12-07).
NO_SCORE_NOTE = f"{NO_DATA}：本期{NOT_SCORED}（没有可统计的指标，或机构尚未登记资源）"
NO_SCORE_LEGEND = f"空白单元格 = {NO_DATA}（本期{NOT_SCORED}），折线在此断开，不按 0 分计"


def _sheet(workbook: Workbook, title: str, header: list[str], rows: list[list[object]], *, first: bool = False):
    sheet = workbook.active if first else workbook.create_sheet()
    sheet.title = title
    append_row(sheet, header)  # the trend sheet heads its columns with agency names: text, never formulas
    for cell in sheet[1]:
        cell.font, cell.fill = Font(bold=True), HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for row in rows:
        append_row(sheet, row)  # agency names as text, never formulas (core.xlsx)
    for index, name in enumerate(header, start=1):
        width = max([len(str(name))] + [len(str(r[index - 1])) for r in rows if index - 1 < len(r)])
        sheet.column_dimensions[get_column_letter(index)].width = min(60, max(8, width * 1.6))
    sheet.freeze_panes = "A2"
    return sheet


def _mark_no_score(sheet, *, rows: int, columns: int) -> None:  # noqa: ANN001 - an openpyxl worksheet
    """Each empty score cell of the trend table gets the 无数据 note; the legend goes under the table."""
    blank = False
    for row in sheet.iter_rows(min_row=2, max_row=1 + rows, min_col=2, max_col=1 + columns):
        for cell in row:
            if cell.value is None:
                cell.comment, blank = Comment(NO_SCORE_NOTE, "govshare"), True
    if blank:
        sheet.cell(row=rows + 3, column=1, value=NO_SCORE_LEGEND)


def render_xlsx(data: ReportData, out: Path) -> Path:
    workbook = Workbook()
    evaluation, labels = data.evaluation, data.metric_labels
    scores = _sheet(workbook, "得分排名", ["排名", "行政机构", "统一社会信用代码", "得分", *labels.values(), "未整改违规"],
                    [[a.rank, a.name, a.code, NOT_SCORED if a.score is None else a.score,
                      *[NO_DATA if a.metrics[k] is None else shown_share(a.metrics[k]) for k in labels],
                      a.open_violations]
                     for a in evaluation.agencies], first=True)
    for row in scores.iter_rows(min_row=2, min_col=5, max_col=4 + len(labels)):
        for cell in row:
            cell.number_format = "0.0%"
    scored = sum(1 for a in evaluation.agencies if a.score is not None)
    if scored:
        chart = BarChart()
        chart.type, chart.title, chart.y_axis.title = "bar", "各机构评估得分", "得分"
        chart.add_data(Reference(scores, min_col=4, min_row=1, max_row=1 + scored), titles_from_data=True)
        chart.set_categories(Reference(scores, min_col=2, min_row=2, max_row=1 + scored))
        chart.height, chart.width = 4 + scored, 18
        scores.add_chart(chart, f"A{len(evaluation.agencies) + 4}")
    periods, names = list(data.trend), data.names()
    trend = _sheet(workbook, "得分趋势", ["评估期", *names.values()],
                   [[p, *[data.trend[p].get(code) for code in names]] for p in periods])
    _mark_no_score(trend, rows=len(periods), columns=len(names))
    if names:
        line = LineChart()
        line.display_blanks = "gap"
        line.title, line.y_axis.title = f"近{len(periods)}期得分趋势", "得分"
        line.y_axis.scaling.min, line.y_axis.scaling.max = 0, 100
        line.add_data(Reference(trend, min_col=2, max_col=1 + len(names), min_row=1, max_row=1 + len(periods)),
                      titles_from_data=True)
        line.set_categories(Reference(trend, min_col=1, min_row=2, max_row=1 + len(periods)))
        line.width = 20
        trend.add_chart(line, f"A{len(periods) + 5}")
    clocks = data.clock_labels
    _sheet(workbook, "时限执行", ["行政机构", *[f"{v}按时" for v in clocks.values()],
                                   *[f"{v}超时" for v in clocks.values()]],
           [[a.name, *[a.clocks[k]["kept"] for k in clocks], *[a.clocks[k]["missed"] for k in clocks]]
            for a in evaluation.agencies])
    totals = data.clock_totals()
    summary = _sheet(workbook, "时限汇总", ["时限", "按时", "超时"],
                     [[label, totals[k][0], totals[k][1]] for k, label in clocks.items()])
    stacked = BarChart()
    stacked.type, stacked.grouping, stacked.overlap, stacked.title = "bar", "stacked", 100, "各类时限按时与超时情况"
    stacked.add_data(Reference(summary, min_col=2, max_col=3, min_row=1, max_row=1 + len(clocks)), titles_from_data=True)
    stacked.set_categories(Reference(summary, min_col=1, min_row=2, max_row=1 + len(clocks)))
    summary.add_chart(stacked, "E2")
    _sheet(workbook, "违规情形", ["编号", "情形", "情形说明", "类型", "行政机构", "事实", "证据记录", "发现日期", "状态"],
           [[v["id"], v["case"], v["case_label"], v["kind"], v["agency"], v["summary"], v["evidence"], v["detected_on"],
             v["status"]] for v in data.violations])
    _sheet(workbook, "整改情况", ["通知编号", "行政机构", "违规编号", "整改要求", "下达日期", "整改期限", "完成日期", "状态"],
           [[o["number"], o["agency"], o["violation"], o["requirement"], o["issued_on"], o["due_on"], o["fixed_on"],
             o["status"]] for o in data.orders])
    _sheet(workbook, "指标权重", ["指标", "计算方法", "权重"],
           [[label, formula, weight] for label, _key, weight, formula in data.metric_notes()]
           + [["得分", data.score_formula, None]])
    workbook.properties.title = data.title
    workbook.save(out)
    return out
