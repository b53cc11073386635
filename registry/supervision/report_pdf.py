"""The periodic notice as PDF: reportlab platypus tables and reportlab graphics charts, in the embedded subset of
a TrueType Chinese font (schemas/pdf_font.py), so the notice reads the same in every viewer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from registry.supervision.periods import parse_period
from registry.supervision.report import (
    PALETTE,
    ReportData,
    fmt_score,
    generated_on,
    overview,
    pct,
    span_text,
)
from schemas.pdf_font import cjk_font


def _styles(font: str) -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=font, fontSize=18, leading=24, alignment=1, spaceAfter=6),
        "meta": ParagraphStyle("meta", fontName=font, fontSize=9, leading=13, alignment=1, textColor=colors.grey),
        "h2": ParagraphStyle("h2", fontName=font, fontSize=13, leading=18, spaceBefore=10, spaceAfter=4,
                             keepWithNext=1),
        "body": ParagraphStyle("body", fontName=font, fontSize=9, leading=13),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=7.5, leading=10, wordWrap="CJK"),
    }


def _table(rows: list[list[object]], widths: list[float] | None = None, *, cell: ParagraphStyle) -> Table:
    cells = [[Paragraph(str(c), cell) for c in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1)
    # FONT: a table otherwise sets Helvetica for its cells, a font the PDF would name without embedding it
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), cell.fontName), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef3fa")),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return table


def _bars(labels: list[str], series: list[list[float]], names: list[str], *, font: str,
          maximum: float | None = None, stacked: bool = False) -> Drawing:
    height = 40 + 22 * max(len(labels), 1)
    drawing = Drawing(240 * mm, height + 30, initialFontName=font)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 60 * mm, 30, 150 * mm, height - 20
    # reportlab draws the first category at the bottom: reverse, so the list reads top-down like the tables
    chart.data = [list(reversed(values)) for values in series] or [[0]]
    chart.categoryAxis.categoryNames = list(reversed(labels)) or [""]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.valueMin = 0
    if maximum is not None:
        chart.valueAxis.valueMax = maximum
    if stacked:
        chart.categoryAxis.style = "stacked"
    else:
        chart.barLabelFormat, chart.barLabels.fontName, chart.barLabels.fontSize = "%.2f", font, 8
        chart.barLabels.boxAnchor, chart.barLabels.dx = "w", 3
    for i in range(len(chart.data)):
        chart.bars[i].fillColor = colors.HexColor(PALETTE[2] if stacked and i == 0 else
                                                  PALETTE[1] if stacked else PALETTE[i % len(PALETTE)])
    drawing.add(chart)
    if len(names) > 1:
        legend = Legend()
        legend.x, legend.y, legend.fontName, legend.fontSize = 60 * mm, 12, font, 8
        legend.alignment, legend.columnMaximum = "right", 1
        legend.colorNamePairs = [(chart.bars[i].fillColor, n) for i, n in enumerate(names)]
        drawing.add(legend)
    return drawing


def _trend(data: ReportData, *, font: str) -> Drawing:
    periods, names = list(data.trend), data.names()
    drawing = Drawing(240 * mm, 72 * mm, initialFontName=font)
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 15 * mm, 10 * mm, 150 * mm, 60 * mm
    # reportlab draws None as a gap
    chart.data = [[data.trend[p].get(code) for p in periods] for code in names] or [[0]]
    chart.categoryAxis.categoryNames = [parse_period(p).label for p in periods]
    chart.categoryAxis.labels.fontName = chart.valueAxis.labels.fontName = font
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 25
    for i in range(len(chart.data)):
        chart.lines[i].strokeColor = colors.HexColor(PALETTE[i % len(PALETTE)])
        chart.lines[i].strokeWidth = 1.5
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y, legend.fontName, legend.fontSize = 172 * mm, 68 * mm, font, 8
    legend.alignment = "right"
    legend.columnMaximum = max(len(names), 1)
    legend.colorNamePairs = [(chart.lines[i].strokeColor, n) for i, n in enumerate(names.values())]
    drawing.add(legend)
    return drawing


def render_pdf(data: ReportData, out: Path) -> Path:
    font = cjk_font()
    styles = _styles(font)
    table = partial(_table, cell=styles["cell"])
    evaluation = data.evaluation
    story: list[object] = [
        Paragraph(data.title, styles["title"]),
        Paragraph(f"{span_text(data)}　生成日期：{generated_on(data)}　依据：《上海市政务数据资源共享管理办法》第二十二条、第二十三条",
                  styles["meta"]),
        Paragraph("一、总体情况", styles["h2"]),
        Paragraph(overview(data), styles["body"]),
        Paragraph("二、评估得分与排名", styles["h2"]),
    ]
    labels = data.metric_labels
    header = ["排名", "行政机构", "得分", *labels.values(), "未整改违规"]
    # the agency's code on a line of its own under its name: a code never breaks across lines
    rows = [[a.rank or "—", f"{a.name}<br/>{a.code}", fmt_score(a.score),
             *[f"{pct(a.metrics[k])}<br/>{a.counts[k][0]}/{a.counts[k][1]}" for k in labels], a.open_violations]
            for a in evaluation.agencies]
    story += [table([header, *rows], [10 * mm, 45 * mm, 16 * mm] + [21 * mm] * len(labels) + [16 * mm]),
              Spacer(1, 4 * mm)]
    scored = [a for a in evaluation.agencies if a.score is not None]
    story += [_bars([a.name for a in scored], [[a.score for a in scored]], ["得分"], font=font, maximum=100),
              Paragraph("图1 各机构评估得分", styles["meta"])]
    periods = list(data.trend)
    story += [Paragraph("三、得分趋势", styles["h2"]),
              table([["行政机构", *[parse_period(p).label for p in periods]], *[[name, *[fmt_score(data.trend[p].get(code)) for p in periods]]
                                              for code, name in data.names().items()]]),
              _trend(data, font=font), Paragraph(f"图2 近{len(periods)}期得分趋势", styles["meta"])]
    clocks = data.clock_labels
    story += [Paragraph("四、时限执行情况", styles["h2"]),
              table([["行政机构", *[f"{v}（按时/超时）" for v in clocks.values()]],
                      *[[a.name, *[f"{a.clocks[k]['kept']} / {a.clocks[k]['missed']}" for k in clocks]]
                        for a in evaluation.agencies]])]
    totals = data.clock_totals()
    story += [_bars(list(clocks.values()), [[totals[k][0] for k in clocks], [totals[k][1] for k in clocks]],
                    ["按时", "超时"], font=font, stacked=True), Paragraph("图3 各类时限按时与超时情况", styles["meta"])]
    story.append(Paragraph("五、违规情形（第二十三条）", styles["h2"]))
    if data.violations:
        story.append(table([["编号", "情形", "类型", "行政机构", "事实", "证据记录", "发现日期", "状态"],
                             *[[v["id"], f"（{'一二三四五六'[v['case'] - 1]}）{v['case_label']}", v["kind"], v["agency"],
                                v["summary"], v["evidence"], v["detected_on"], v["status"]] for v in data.violations]],
                            [12 * mm, 40 * mm, 25 * mm, 35 * mm, 70 * mm, 35 * mm, 22 * mm, 18 * mm]))
    else:
        story.append(Paragraph("本期未发现违规情形。", styles["body"]))
    story.append(Paragraph("六、责令整改情况", styles["h2"]))
    if data.orders:
        story.append(table([["通知编号", "行政机构", "违规编号", "整改要求", "下达日期", "整改期限", "完成日期", "状态"],
                             *[[o["number"], o["agency"], o["violation"], o["requirement"], o["issued_on"], o["due_on"],
                                o["fixed_on"], o["status"]] for o in data.orders]]))
    else:
        story.append(Paragraph("本期无责令整改事项。", styles["body"]))
    story += [Paragraph("附：评估指标、计算方法与权重", styles["h2"]),
              table([["指标", "计算方法", "权重"], *[[label, formula, weight]
                                                  for label, key, weight, formula in data.metric_notes()]],
                    [60 * mm, 180 * mm, 15 * mm]),
              Paragraph(data.score_formula, styles["body"])]
    document = SimpleDocTemplate(str(out), pagesize=landscape(A4), title=data.title, author="govshare", initialFontName=font,
                                 leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm)

    def page_number(canvas, doc) -> None:
        canvas.setFont(font, 8)
        canvas.drawRightString(landscape(A4)[0] - 12 * mm, 6 * mm, f"第 {doc.page} 页")

    document.build(story, onFirstPage=page_number, onLaterPages=page_number)
    return out

