"""The application form (需求申请表) as a PDF in Chinese, for the written submission article 14 asks for.

The form embeds a subset of a TrueType Chinese font (schemas/pdf_font.py), so it reads the same in any viewer.
It names the agencies and the applicant (codes and accounts beside the names, each on its own line so a code
never breaks), lists the data items by their catalogue names one per line, writes days as 2026年12月6日 and
carries the application number on every page.
"""

from __future__ import annotations

import io
from html import escape
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import object_session

from core.calendar.due_days import DECISION_WORKING_DAYS
from registry.sharing.models import Application
from registry.sharing.names import actor_name, condition_text, item_names
from schemas.pdf_font import cjk_font
from schemas.presentation import day, due_day, label

TITLES = {"use": "上海市政务数据资源共享需求申请表", "external": "共享数据资源对外提供或发布申请表"}
LEGAL_BASIS = "依据《上海市政务数据资源共享管理办法》第十四条、第十七条。共享数据仅限本机构履行职责使用，不得对外提供或发布。"
MARGIN = 20 * mm
LABEL_WIDTH = 44 * mm
BLANK = "&nbsp;"  # room to write in by hand (a paragraph collapses ordinary spaces)


def _styles(font: str) -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=font, fontSize=17, leading=24, alignment=1, spaceAfter=2 * mm),
        "number": ParagraphStyle("number", fontName=font, fontSize=10, leading=14, alignment=2, spaceAfter=3 * mm),
        "label": ParagraphStyle("label", fontName=font, fontSize=10.5, leading=15),
        "value": ParagraphStyle("value", fontName=font, fontSize=10.5, leading=15, wordWrap="CJK"),
        "note": ParagraphStyle("note", fontName=font, fontSize=8.5, leading=12, textColor=colors.grey),
    }


def _agency(agency: Any) -> str:  # noqa: ANN401 - registry.models.Agency
    return f"{escape(agency.name)}<br/>统一社会信用代码：{escape(agency.code)}"


def _rows(application: Application) -> list[tuple[str, str]]:
    """(label, paragraph markup) of each line of the form."""
    session = object_session(application)
    resource, taker = application.resource, application.consumer
    names = item_names(session, resource)
    items = "<br/>".join(f"{n}. {escape(names.get(column, column))}"
                         for n, column in enumerate(application.items, start=1))
    latest = f"最迟{due_day(application.due_on)}" if application.due_on else due_day(None)
    due = f"收到书面申请之日起{DECISION_WORKING_DAYS}个工作日内（{latest}）"
    return [
        ("申请编号", application.number),
        ("申请类型", label("application_kinds", application.kind)),
        ("资源需求方", _agency(taker)),
        ("资源提供方", _agency(resource.agency)),
        ("信息资源名称", escape(resource.name)),
        ("信息资源代码", escape(resource.code)),
        ("共享类型", label("sharing_types", resource.sharing_type)),
        ("共享条件", escape(resource.sharing_condition or "无")),
        ("共享范围", escape(application.scope)),
        ("共享用途", escape(application.purpose)),
        ("申请数据项", items or "无"),
        ("数据范围条件", escape(condition_text(application.row_filter, names))),
        ("申请人", escape(actor_name(session, application.applicant))),
        ("提交日期", day(application.submitted_at)),
        ("收到书面申请日期", day(application.received_on)),
        ("答复期限", due),
    ]


def _grid(rows: list[list[Any]], font: str, heights: list[float | None] | None = None) -> Table:
    table = Table(rows, colWidths=[LABEL_WIDTH, A4[0] - 2 * MARGIN - LABEL_WIDTH], rowHeights=heights)
    # FONT: a table otherwise sets Helvetica for its cells, a font the PDF would name without embedding it
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), font), ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                               ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f2f2f2")),
                               ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                               ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
    return table


def render_form(application: Application) -> bytes:
    font = cjk_font()
    styles = _styles(font)
    title = TITLES[application.kind]
    cells = [[Paragraph(name, styles["label"]), Paragraph(value, styles["value"])]
             for name, value in _rows(application)]
    signatures = [[Paragraph(name, styles["label"]), Paragraph(text, styles["value"])] for name, text in (
        ("资源需求方（盖章）", f"<br/><br/>日期：{BLANK * 8}年{BLANK * 4}月{BLANK * 4}日"),
        ("资源提供方意见及理由", f"□ 同意共享{BLANK * 4}□ 部分同意共享{BLANK * 4}□ 不予共享<br/>理由："),
        ("资源提供方（盖章）", f"<br/><br/>日期：{BLANK * 8}年{BLANK * 4}月{BLANK * 4}日"))]
    story = [Paragraph(title, styles["title"]), Paragraph(f"编号：{application.number}", styles["number"]),
             _grid(cells, font), Spacer(1, 5 * mm), _grid(signatures, font, [None, 26 * mm, None]), Spacer(1, 4 * mm),
             Paragraph(LEGAL_BASIS, styles["note"])]

    def every_page(canvas: Any, document: Any) -> None:  # noqa: ANN401 - reportlab's canvas and template
        canvas.setFont(font, 8.5)
        canvas.drawRightString(A4[0] - MARGIN, 10 * mm, f"编号：{application.number}　第 {document.page} 页")

    buffer = io.BytesIO()
    # initialFontName: without it reportlab names Helvetica in every page's resources, a font left unembedded
    SimpleDocTemplate(buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=18 * mm,
                      bottomMargin=18 * mm, title=f"{title} {application.number}", author="govshare 政务数据资源共享交换平台",
                      initialFontName=font, pageCompression=1).build(story, onFirstPage=every_page,
                                                                  onLaterPages=every_page)
    return buffer.getvalue()
