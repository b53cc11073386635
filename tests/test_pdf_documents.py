"""The application form (需求申请表) and the periodic evaluation notice open with their Chinese text anywhere: each
PDF embeds a subset of its TrueType Chinese font, pypdf reads the text back, and poppler draws the first page on
a machine with no Chinese font and no Adobe-GB1 language pack (a fontconfig with no font at all) with the very
glyphs of the title and the names. The same page with reportlab's unembedded STSong-Light draws nothing there."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.clock import pinned
from tests.demo_world import story  # noqa: F401 - fixture
from tests.pdf_checks import fonts, glyph_match, render_without_fonts, require_poppler

# A Friday in Beijing, the day after the National Day holidays: days written without zero padding show.
SUBMITTED = datetime.fromisoformat("2026-10-09T10:00:00+08:00")
FORM_TITLE = "上海市政务数据资源共享需求申请表"


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _chinese_day(value) -> str:  # noqa: ANN001 - date
    return f"{value.year}年{value.month}月{value.day}日"


def _assert_every_font_embedded(pdf: Path) -> None:
    from schemas.pdf_font import font_file

    used = fonts(pdf)
    assert used and all(f.embedded and f.subset for f in used), used
    assert {f.kind for f in used} == {"TrueType"} and font_file().is_file()


@pytest.fixture
def pinned_story():  # noqa: ANN201 - the story and its documents on SUBMITTED
    with pinned(SUBMITTED):
        yield


def test_the_application_form_embeds_its_font_and_names_people_agencies_and_items(
        pinned_story, story: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    require_poppler()
    from registry.sharing.application_form import render_form
    from registry.sharing.applications import get_application
    from registry.db import session_scope
    from schemas.pdf_font import font_file
    from samples.demo_sources import HR, TAX

    with session_scope() as session:
        application = get_application(session, number=story["application"])
        pdf = render_form(application)
        due = application.due_on
    text = _text(pdf)
    for expected in (FORM_TITLE, story["application"], HR.name, HR.code, TAX.name, TAX.code, "张伟（zhang.wei）",
                     "1. 统一社会信用代码", "2. 纳税人名称", "3. 纳税信用等级", "有条件共享（按需共享）", "无（全部记录）",
                     "2026年10月9日", f"最迟{_chinese_day(due)}"):
        assert expected in text, expected
    for code in ("user:", "taxpayer_name", "credit_grade", "conditional", "2026年10月09日"):
        assert code not in text, code

    path = tmp_path / "form.pdf"
    path.write_bytes(pdf)
    _assert_every_font_embedded(path)
    page = render_without_fonts(path, tmp_path / "render")
    assert "language pack" not in page.warnings and "font" not in page.warnings.lower(), page.warnings
    words = [w for w, _ in page.words]
    # a code is never broken across lines: each agency's code is one word of the page, after its label
    assert f"统一社会信用代码：{HR.code}" in words and f"统一社会信用代码：{TAX.code}" in words
    font = font_file()
    for word in (FORM_TITLE, HR.name, "张伟（zhang.wei）"):
        same, other = glyph_match(page, word, font), glyph_match(page, word, font, drawn_as=word[::-1])
        assert same > 0.8 and same > other + 0.3, (word, same, other)


def test_unembedded_chinese_draws_nothing_here(tmp_path: Path) -> None:
    """The control: this machine has no Chinese font and no language pack, so only embedding makes a form
    readable (reportlab's STSong-Light, as the form used before, renders as blank paper)."""
    require_poppler()
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path = tmp_path / "unembedded.pdf"
    page = canvas.Canvas(str(path), initialFontName="STSong-Light")
    page.setFont("STSong-Light", 18)
    page.drawString(72, 760, FORM_TITLE)
    page.save()
    assert not any(f.embedded for f in fonts(path))  # (without the pack pdffonts cannot even list it)
    rendered = render_without_fonts(path, tmp_path / "render")
    assert rendered.ink_pixels() == 0
    assert "Adobe-GB1" in rendered.warnings or "font" in rendered.warnings.lower(), rendered.warnings


def test_the_evaluation_notice_embeds_its_font_and_shows_agencies_with_codes(
        pinned_story, story: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    require_poppler()
    from registry.db import session_scope
    from schemas.pdf_font import font_file
    from registry.supervision.report_writer import write_report
    from samples.demo_sources import MARKET, TAX

    with session_scope() as session:
        path = write_report(session, period="2026Q4", fmt="pdf", out=tmp_path / "notice.pdf")
    text = _text(path.read_bytes())
    title = "政务数据资源共享评估定期通报（2026年第四季度）"
    for expected in (title, MARKET.name, MARKET.code, TAX.name, TAX.code, "评估期：2026年10月1日至2026年12月31日",
                     "统计截至：2026年10月9日", "2026年第三季度"):
        assert expected in text, expected
    assert "catalogue_coverage" not in text and "2026Q3" not in text
    _assert_every_font_embedded(path)
    page = render_without_fonts(path, tmp_path / "render")
    same = glyph_match(page, title, font_file())
    assert same > 0.8 and same > glyph_match(page, title, font_file(), drawn_as=title[::-1]) + 0.3
