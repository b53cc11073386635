"""What agency staff do in the browser, on the demo's own story (what a new user finds after `make demo`), in
headless Chromium: find an entry, read it, browse data with identifiers masked, apply, decide, dispute, read the
evaluation. Each test keeps screenshots (tests/test_delivery_web.py `screenshot_folder`) and checks what a person
would: Chinese labels, names rather than accounts and codes, Beijing time, no English codes, no UTC."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.demo_world import story  # noqa: F401 - fixture
from tests.helpers import ApiServer, latest, read_version
from tests.test_delivery_web import _cells, _snap, browser  # noqa: F401 - browser is a fixture

PASSWORD = "govshare-demo"
# Codes of the label table that must never reach a person's eye on a page (column names such as uscc may: they
# are shown beside the Chinese item names for the interface's callers).
CODES = ("unconditional", "conditional", "not_shared", "database", "string", "decimal", "timestamp", "integer",
         "daily", "monthly", "submitted", "approved", "partial", "refused", "disputed", "pending_agreement", "active",
         "superseded", "agency_admin", "data_admin", "coordination_office", "supervisor", "idcard", "orgcode",
         "concluded", "user:", "console:")
CHINESE_DAY = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")


@pytest.fixture
def site(story: dict[str, str]) -> Iterator[tuple[ApiServer, dict[str, str]]]:  # noqa: F811
    server = ApiServer().start()
    try:
        yield server, story
    finally:
        server.stop()


def _person_sees_chinese(page, *, name: str | None = None, agency: str | None = None) -> str:
    """The checks a person makes on every page: their own name and agency in the header, no UTC, no raw
    timestamps, no English code; the page's visible text for further checks."""
    text = page.inner_text("body")
    assert "UTC" not in text and not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:", text), text
    for code in CODES:
        assert not re.search(rf"(?<![A-Za-z_]){re.escape(code)}(?![A-Za-z_])", text), (code, page.url)
    if name:
        header = page.inner_text("header")
        assert name in header and (agency or "") in header, header
    return text


def _signed_in(chromium, base: str, username: str, start: str = "/"):  # noqa: ANN001, ANN202
    """A fresh browser context for one person, signed in through the login page the start page leads to."""
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(base + start)
    assert "/web/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_load_state()
    return page


def test_find_an_entry_and_read_it(browser, site) -> None:  # noqa: F811
    server, made = site
    page = _signed_in(browser, server.base_url, "zhang.wei")  # `/` leads to the catalogue, through the login
    assert page.url.endswith("/web/catalog")
    _person_sees_chinese(page, name="张伟", agency="上海市人力资源和社会保障局")
    assert "zhang.wei" not in page.inner_text("header")
    hint = page.eval_on_selector("#q", """q => { const pen = document.createElement("canvas").getContext("2d");
        pen.font = getComputedStyle(q).font; return [pen.measureText(q.placeholder).width, q.clientWidth, q.placeholder]; }""")
    assert hint[0] + 12 < hint[1] and hint[2] == "关键词：资源名称、摘要、信息项"  # the box shows its whole hint

    page.fill("#q", "纳税")
    page.click("#do-search")
    page.wait_for_load_state()
    rows = _cells(page, "#results")
    assert [r[0] for r in rows] == [made["credit"]]
    assert rows[0][2] == "国家税务总局上海市税务局" and rows[0][3] == "有条件共享（按需共享）" and rows[0][5] == "每月"
    _snap(page, "tasks-find")

    page.click("text=企业纳税信用等级")
    page.wait_for_load_state()
    text = _person_sees_chinese(page, name="张伟")
    elements = dict(page.eval_on_selector_all("#elements tr", "rows => rows.map(r => [r.cells[0].innerText, "
                                                                "r.cells[1].innerText])"))
    assert elements["信息资源格式"] == "数据库" and elements["更新周期"] == "每月"
    assert elements["共享方式"] == "接口交换、在线浏览" and elements["是否向社会开放"] == "否"
    assert CHINESE_DAY.fullmatch(elements["发布日期"]), elements["发布日期"]
    items = _cells(page, "#data-items")
    assert [r[:2] for r in items] == [["统一社会信用代码", "字符型"], ["纳税人名称", "字符型"], ["纳税信用等级", "字符型"],
                                      ["评价年度", "整数型"], ["更新时间", "日期时间型"]]
    assert items[0][3] == "统一社会信用代码"  # 主体标识 by its name, not `uscc`
    assert re.search(r"发布于 \d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}（北京时间）", text)
    assert page.query_selector("#apply") is not None
    _snap(page, "tasks-read")


def test_browse_data_with_identifiers_masked(browser, site) -> None:  # noqa: F811
    server, made = site
    page = _signed_in(browser, server.base_url, "zhang.wei", f"/web/catalog/{made['enterprises']}")
    page.click("#browse")
    page.wait_for_load_state()
    text = _person_sees_chinese(page, name="张伟")
    titles = page.eval_on_selector_all("#data thead th", "ths => ths.map(t => t.title)")
    headings = page.eval_on_selector_all("#data thead th", "ths => ths.map(t => t.innerText)")
    assert "id" not in titles and titles[:4] == ["uscc", "name", "legal_rep", "legal_rep_id"]
    assert headings[:4] == ["统一社会信用代码", "企业名称", "法定代表人", "法定代表人身份证号码（已脱敏）"]
    assert "已脱敏：法定代表人身份证号码" in text
    rows = _cells(page, "#data")
    published = {r["uscc"]: r for r in read_version(latest(made["enterprises"]), sort_by=None).to_pylist()}
    assert len(rows) == 20
    for row in rows:
        source = published[row[0]]
        assert row[1] == source["name"] and "****" in row[3] and row[3] != source["legal_rep_id"]
    updated = rows[0][titles.index("updated_at")]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", updated), updated  # Beijing time, no T, no offset
    widths = page.eval_on_selector_all("#data tbody tr:first-child td", "tds => tds.map(t => t.getClientRects().length)")
    assert set(widths) == {1}  # every cell on one line: no name broken in the middle
    _snap(page, "tasks-browse-masked")

    provider = _signed_in(browser, server.base_url, "li.na", f"/web/data/{made['enterprises']}")
    own = _cells(provider, "#data")
    assert all("****" not in row[3] for row in own)  # the provider reads its own data unmasked
    _person_sees_chinese(provider, name="李娜", agency="上海市市场监督管理局")


def test_apply_decide_and_dispute(browser, site) -> None:  # noqa: F811
    server, made = site
    base = server.base_url
    consumer = _signed_in(browser, base, "zhang.wei", f"/web/data/{made['credit']}")
    text = _person_sees_chinese(consumer, name="张伟")
    assert "无权访问" in text and "申请共享" in consumer.inner_text("#advice")  # what to do, in Chinese

    # the demo's own application, waiting for the tax bureau
    consumer.goto(f"{base}/web/applications/{made['application']}")
    text = _person_sees_chinese(consumer, name="张伟")
    assert consumer.inner_text("#status") == "待答复" and consumer.inner_text("#applicant") == "张伟（zhang.wei）"
    assert consumer.inner_text("#items") == "统一社会信用代码、纳税人名称、纳税信用等级"
    assert CHINESE_DAY.match(consumer.inner_text("#due")) or "待国务院公布节假日安排" in consumer.inner_text("#due")
    with consumer.expect_download() as download:
        consumer.click("#form-pdf")
    form = "".join(p.extract_text() for p in PdfReader(io.BytesIO(Path(download.value.path()).read_bytes())).pages)
    assert "张伟（zhang.wei）" in form and "纳税人名称" in form and "taxpayer_name" not in form

    # apply again, from the entry, for two items
    consumer.goto(f"{base}/web/catalog/{made['credit']}")
    consumer.click("#apply")
    consumer.wait_for_load_state()
    consumer.fill("#scope", "本市新办就业参保登记的用人单位")
    consumer.fill("#purpose", "核验用人单位纳税信用等级")
    consumer.check("input[name=items][value=uscc]")
    consumer.check("input[name=items][value=credit_grade]")
    _snap(consumer, "tasks-apply")
    consumer.click("#submit-application")
    consumer.wait_for_load_state()
    number = consumer.inner_text("#number")
    assert consumer.inner_text("#status") == "待答复" and number != made["application"]

    provider = _signed_in(browser, base, "wang.fang", "/web/applications")
    inbox = _cells(provider, "#inbox")
    assert {r[0] for r in inbox} == {made["application"], number}
    assert all(r[2] == "上海市人力资源和社会保障局" and r[3] == "待答复" for r in inbox)
    _person_sees_chinese(provider, name="王芳", agency="国家税务总局上海市税务局")
    provider.click(f"#inbox >> text={number}")
    provider.wait_for_load_state()
    provider.uncheck("input[name=approved_items][value=credit_grade]")
    provider.fill("#reasons-input", "纳税信用等级涉及企业经营信息，仅同意共享统一社会信用代码")
    provider.click("#submit-decision")
    provider.wait_for_load_state()
    text = _person_sees_chinese(provider, name="王芳")
    assert provider.inner_text("#status") == "部分同意" and provider.inner_text("#approved") == "统一社会信用代码"
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}（北京时间），王芳（wang\.fang）",
                        provider.inner_text("#decided")), provider.inner_text("#decided")
    _snap(provider, "tasks-decide")

    consumer.goto(f"{base}/web/applications/{number}")
    consumer.fill("#grounds-input", "核验用人单位纳税信用等级是就业参保登记的法定环节，请予协调")
    consumer.click("#submit-dispute")
    consumer.wait_for_load_state()
    assert consumer.inner_text("#status") == "协调处理中"
    disputes = _person_sees_chinese(consumer, name="张伟")
    assert "协调中" in consumer.inner_text("#disputes") and "张伟（zhang.wei）" in consumer.inner_text("#disputes")
    assert "（北京时间）" in disputes
    _snap(consumer, "tasks-dispute")

    office = _signed_in(browser, base, "zhao.lei", f"/web/applications/{number}")
    office.fill("#conclusion-input", "核验纳税信用等级属于履职需要，同意共享")
    office.click("#submit-conclusion")
    office.wait_for_load_state()
    assert office.inner_text("#status") == "同意共享"
    assert "已作出结论" in office.inner_text("#disputes") and "赵磊（zhao.lei）" in office.inner_text("#disputes")
    _person_sees_chinese(office, name="赵磊", agency="上海市人民政府办公厅")
    _snap(office, "tasks-conclude")

    consumer.goto(f"{base}/web/applications/{number}")
    assert consumer.inner_text("#grant") == "已生效"
    consumer.click("#browse")
    consumer.wait_for_load_state()
    assert consumer.eval_on_selector_all("#data thead th", "ths => ths.map(t => t.innerText)") == [
        "统一社会信用代码", "纳税信用等级"]
    _person_sees_chinese(consumer, name="张伟")


def test_read_the_evaluation(browser, site) -> None:  # noqa: F811
    server, made = site
    base = server.base_url
    supervisor = _signed_in(browser, base, "sun.min", "/web/supervision")
    text = _person_sees_chinese(supervisor, name="孙敏", agency="上海市经济和信息化委员会")
    assert re.search(r"评估与监督（\d{4}年第[一二三四]季度）", text) and CHINESE_DAY.search(text)
    ranking = {r[1]: r for r in _cells(supervisor, "#ranking")}
    assert set(ranking) == {"上海市市场监督管理局", "国家税务总局上海市税务局"}
    assert all(re.fullmatch(r"[0-9A-Z]{18}", r[2]) and re.fullmatch(r"\d+\.\d{2}", r[3]) for r in ranking.values())
    _snap(supervisor, "tasks-evaluation-ranking")
    with supervisor.expect_download() as download:
        supervisor.click("#notice-pdf")
    notice = "".join(p.extract_text() for p in PdfReader(io.BytesIO(Path(download.value.path()).read_bytes())).pages)
    assert "政务数据资源共享评估定期通报" in notice and "上海市市场监督管理局" in notice

    provider = _signed_in(browser, base, "wang.fang", "/web/supervision")
    text = _person_sees_chinese(provider, name="王芳")
    assert re.search(r"得分：\d+\.\d{2}", provider.inner_text("#score"))
    todo = _cells(provider, "#todo")
    assert todo[0][0] == "共享申请答复" and made["application"] in todo[0][1]
    assert CHINESE_DAY.fullmatch(todo[0][2]) or todo[0][2] == "待国务院公布节假日安排"
    _snap(provider, "tasks-evaluation-own")
    refused = provider.request.get(f"{base}/web/supervision/report.pdf")
    assert refused.status == 403 and "只有监督机构" in refused.text()

    consumer = _signed_in(browser, base, "zhang.wei", "/web/supervision")
    assert _cells(consumer, "#todo") == [["暂无待办事项"]]  # an empty to-do list says so


def test_error_pages_and_login_speak_chinese(browser, site) -> None:  # noqa: F811
    server, _ = site
    page = browser.new_context().new_page()
    page.goto(server.base_url + "/")
    assert "/web/login" in page.url
    page.fill("#username", "zhang.wei")
    page.fill("#password", "not-the-password")
    page.click("#login")
    page.wait_for_load_state()
    assert "还可尝试4次" in page.inner_text("#login-error") and "锁定15分钟" in page.inner_text("#login-error")
    page.fill("#username", "nobody.here")
    page.fill("#password", "not-the-password")
    page.click("#login")
    page.wait_for_load_state()
    assert "还可尝试4次" in page.inner_text("#login-error")  # an unknown name is answered the same way
    _snap(page, "tasks-login-wrong")

    signed = _signed_in(browser, server.base_url, "zhang.wei", "/web/applications/XQSQ-19990101-0001")
    assert signed.inner_text("#problem") == "未找到要查看的资源、申请或页面。"
    signed.goto(server.base_url + "/web/no-such-page")
    text = _person_sees_chinese(signed, name="张伟")
    assert "页面不存在" in text and "返回资源目录" in text and "Not Found" not in text and "detail" not in text
    _snap(signed, "tasks-not-found")
    api = signed.request.get(server.base_url + "/api/v1/no-such-thing")
    assert api.status == 404 and api.json() == {"detail": "Not Found"}  # programs keep the JSON answer
