"""The application form (需求申请表) as a PDF in Chinese, for the written submission article 14 asks for.

reportlab's built-in CID font STSong-Light (Adobe-GB1) needs no font file on the server; a PDF reader supplies
the glyphs. The form carries the application number on every page.
"""

from __future__ import annotations

import io
from textwrap import wrap

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from registry.applications import KINDS
from registry.due_days import due_text
from registry.resources import SHARING_TYPES
from registry.sharing_models import Application

FONT = "STSong-Light"
TITLES = {"use": "上海市政务数据资源共享需求申请表", "external": "共享数据资源对外提供或发布申请表"}
MARGIN, LINE = 56, 20
WIDTH, HEIGHT = A4


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _rows(application: Application) -> list[tuple[str, str]]:
    resource, taker = application.resource, application.consumer
    filter_text = "无" if not application.row_filter else str(application.row_filter)
    return [
        ("申请编号", application.number),
        ("申请类型", KINDS.get(application.kind, application.kind)),
        ("资源需求方", f"{taker.name}（{taker.code}）"),
        ("资源提供方", f"{resource.agency.name}（{resource.agency.code}）"),
        ("信息资源名称", resource.name),
        ("信息资源代码", resource.code),
        ("共享类型", SHARING_TYPES.get(resource.sharing_type, resource.sharing_type)),
        ("共享条件", resource.sharing_condition or "无"),
        ("共享范围", application.scope),
        ("共享用途", application.purpose),
        ("申请数据项", "、".join(application.items)),
        ("数据范围条件", filter_text),
        ("申请人", application.applicant),
        ("提交日期", f"{application.received_on:%Y年%m月%d日}"),
        ("答复期限", f"收到书面申请后10个工作日内（{due_text(application.due_on)}"
                     f"{'前' if application.due_on else ''}）"),
    ]


def render_form(application: Application) -> bytes:
    font = _font()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    pdf.setTitle(f"{TITLES[application.kind]} {application.number}")
    pdf.setAuthor("govshare 政务数据资源共享交换平台")
    y = HEIGHT - MARGIN

    def new_page() -> float:
        pdf.showPage()
        pdf.setFont(font, 9)
        pdf.drawRightString(WIDTH - MARGIN, HEIGHT - 30, f"编号：{application.number}")
        return HEIGHT - MARGIN - 10

    pdf.setFont(font, 18)
    pdf.drawCentredString(WIDTH / 2, y, TITLES[application.kind])
    y -= 28
    pdf.setFont(font, 10)
    pdf.drawRightString(WIDTH - MARGIN, y, f"编号：{application.number}")
    y -= 24
    for label, value in _rows(application):
        lines = wrap(str(value), 30) or [""]
        if y - LINE * len(lines) < MARGIN + 160:
            y = new_page()
        pdf.setFont(font, 11)
        pdf.drawString(MARGIN, y, f"{label}：")
        for line in lines:
            pdf.drawString(MARGIN + 110, y, line)
            y -= LINE
    y -= 10
    pdf.setFont(font, 11)
    pdf.drawString(MARGIN, y, "资源需求方（盖章）：                          日期：")
    y -= LINE * 2
    pdf.drawString(MARGIN, y, "资源提供方意见及理由：")
    y -= LINE * 3
    pdf.drawString(MARGIN, y, "资源提供方（盖章）：                          日期：")
    y -= LINE * 2
    pdf.setFont(font, 8)
    pdf.drawString(MARGIN, max(y, MARGIN - 20),
                   "依据《上海市政务数据资源共享管理办法》第十四条、第十七条。共享数据仅限内部使用。")
    pdf.save()
    return buffer.getvalue()
