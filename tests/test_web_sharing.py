"""The sharing workflow's web pages (article 14) in a real browser (headless Chromium via Playwright): a
consumer's person searches the catalogue, applies for two data items of a conditional resource, downloads the
需求申请表; the provider's person approves one item with a reason; the consumer sees the decision and browses
exactly the approved column, its personal identifier masked. Refusals show their Chinese reason."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core import clock
from tests.delivery_helpers import ALL_MODES, DENIED_AGENCY, Delivery, delivery_hub
from tests.helpers import PROVIDER, latest, read_version
from tests.test_delivery_web import PASSWORD, _cells, _snap, browser  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

REASON = "企业名称可通过公示系统查询，仅同意共享法定代表人身份证号用于核验"


@pytest.fixture
def site(hub_home: Path, tmp_path: Path) -> Iterator[Delivery]:
    """A published conditional entry whose legal representative's ID is personal, a secrecy agreement with the
    statistics bureau (which holds no grant yet), one person there and one data administrator at the provider."""
    from registry.sharing.agreements import add_agreement, set_sensitivity
    from registry.people.auth import console
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.people.users import add_user
    from tests.catalog_helpers import entry_data, publish, setup_people

    with delivery_hub(tmp_path, rows=60) as made:
        code = made.hub.resource_code
        with session_scope() as session:
            setup_people(session)
            upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", actor="test", data=entry_data(
                sharing_type="conditional", sharing_condition="仅限企业登记核验", sharing_modes=ALL_MODES,
                data_items=[{"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "subject_id": "uscc"},
                            {"name": "企业名称", "column": "name", "data_type": "string"},
                            {"name": "法定代表人身份证号", "column": "legal_rep_id", "data_type": "string",
                             "subject_id": "idcard"}]))
            publish(session, code)
        scan = tmp_path / "agreement.pdf"
        scan.write_bytes(b"%PDF-1.4 signed secrecy agreement")
        with session_scope() as session:
            by = console("test")
            set_sensitivity(session, resource_code=code, by=by, personal_privacy=True, personal_columns=["legal_rep_id"])
            add_agreement(session, resource_code=code, consumer=DENIED_AGENCY[0], parties=["市场监管局", "统计局"],
                          signed_on=clock.today() - timedelta(days=1), valid_until=clock.today() + timedelta(days=365),
                          scan=scan, by=by)
            add_user(session, username="zhou", agency=DENIED_AGENCY[0], roles=["data_admin"], password=PASSWORD, by=by)
            add_user(session, username="qian", agency=DENIED_AGENCY[0], roles=["cataloguer"], password=PASSWORD,
                     by=by)
            add_user(session, username="liu", agency=PROVIDER[0], roles=["data_admin"], password=PASSWORD, by=by)
        yield made


def _sign_in_as(page, site: Delivery, username: str, start: str) -> None:
    """Sign out whoever is signed in (the header's 退出 button), then sign in and land on `start`."""
    page.goto(site.url("/web/catalog"))
    if logout := page.query_selector("header button"):
        logout.click()
        page.wait_for_load_state()
    page.goto(site.url(start))
    assert "/web/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_load_state()
    assert username in page.inner_text("header")


def _audit_actions(code: str) -> list[tuple[str, str, str]]:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        return [(e.action, e.actor, e.result) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.resource_code == code).order_by(AuditEvent.id))]


def test_apply_approve_one_item_and_browse_it(browser, site: Delivery) -> None:  # noqa: F811
    code = site.hub.resource_code
    page = browser.new_page()
    _sign_in_as(page, site, "zhou", "/web/catalog")
    page.goto(site.url(f"/web/data/{code}"))
    assert "未获得该资源的共享授权" in page.inner_text("#problem")  # nothing granted yet

    page.goto(site.url("/web/catalog"))
    page.fill("#q", "企业")
    page.select_option("#sharing_type", "conditional")
    page.click("#do-search")
    page.wait_for_load_state()
    assert [r[0] for r in _cells(page, "#results")] == [code]
    page.click("text=企业基本信息")
    page.wait_for_load_state()
    page.click("#apply")
    page.wait_for_load_state()
    labels = page.eval_on_selector_all("#items label", "ls => ls.map(l => l.innerText.trim())")
    assert labels == ["统一社会信用代码（uscc）", "企业名称（name）", "法定代表人身份证号（legal_rep_id）"]
    page.fill("#scope", "本市存续企业")
    page.fill("#purpose", "统计名录库企业核验")
    page.check("input[name=items][value=name]")
    page.check("input[name=items][value=legal_rep_id]")
    _snap(page, "apply")
    page.click("#submit-application")
    page.wait_for_load_state()
    number = page.inner_text("#number")
    assert number.startswith("XQSQ-") and page.inner_text("#status") == "待答复"
    assert page.inner_text("#items") == "企业名称、法定代表人身份证号"
    from core.calendar.due_days import DECISION_WORKING_DAYS, due_after
    from schemas.presentation import day, due_day

    received = clock.today()  # submitted, and so received, today in Beijing
    assert page.inner_text("#received") == day(received)
    assert page.inner_text("#due").startswith(due_day(due_after(received, DECISION_WORKING_DAYS)[0]))
    with page.expect_download() as download:
        page.click("#form-pdf")
    pdf = Path(download.value.path()).read_bytes()
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert number in text and "统计名录库企业核验" in text

    page.goto(site.url("/web/applications"))
    mine = _cells(page, "#my-applications")
    assert mine[0][0] == number and mine[0][3] == "待答复"
    assert page.query_selector("#decision-form") is None

    # A person of the consumer without a data role cannot apply: the Chinese reason is shown and logged.
    _sign_in_as(page, site, "qian", f"/web/applications/new?resource={code}")
    page.fill("#scope", "全部")
    page.fill("#purpose", "试探")
    page.check("input[name=items][value=name]")
    page.click("#submit-application")
    page.wait_for_load_state()
    assert "只能以本机构名义申请" in page.inner_text("#problem")

    _sign_in_as(page, site, "liu", "/web/applications")
    inbox = _cells(page, "#inbox")
    assert inbox[0][0] == number and inbox[0][3] == "待答复"
    page.click(f"#inbox >> text={number}")
    page.wait_for_load_state()
    page.uncheck("input[name=approved_items][value=name]")
    page.click("#submit-decision")  # no reason: the browser's own check holds the form back
    assert page.query_selector("#decision-form") is not None and page.inner_text("#status") == "待答复"
    page.fill("#reasons-input", REASON)
    _snap(page, "decide")
    page.click("#submit-decision")
    page.wait_for_load_state()
    assert page.inner_text("#status") == "部分同意" and page.inner_text("#approved") == "法定代表人身份证号"
    assert page.query_selector("#decision-form") is None  # decided once

    _sign_in_as(page, site, "zhou", "/web/applications")
    assert _cells(page, "#my-applications")[0][3] == "部分同意"
    page.click(f"#my-applications >> text={number}")
    page.wait_for_load_state()
    _snap(page, "decided")
    assert page.inner_text("#reasons") == REASON and page.inner_text("#grant") == "已生效"
    page.click("#browse")
    page.wait_for_load_state()
    assert page.eval_on_selector_all("#data thead th", "ths => ths.map(t => t.title)") == ["legal_rep_id"]
    shown = [r[0] for r in _cells(page, "#data")]
    published = [r["legal_rep_id"] for r in read_version(latest(code)).to_pylist()]
    assert len(shown) == 20 and all("****" in v for v in shown)
    assert not set(shown) & set(published)  # masked: no identifier appears in full
    assert "企业名称" not in page.inner_text("#data")

    actions = _audit_actions(code)
    assert ("application.submit", "user:zhou", "ok") in actions
    assert ("application.decide", "user:liu", "ok") in actions
    assert any(a == "request.refused" and actor == "user:qian" and r == "denied" for a, actor, r in actions)


def test_a_refusal_and_a_stranger(browser, site: Delivery) -> None:  # noqa: F811
    from registry.sharing.applications import apply
    from registry.people.auth import console
    from registry.db import session_scope
    from core.calendar.due_days import DECISION_WORKING_DAYS, due_after
    from registry.supervision.due_days import due_text

    code = site.hub.resource_code
    with session_scope() as session:
        submitted = apply(session, resource_code=code, consumer=DENIED_AGENCY[0], scope="全部", purpose="核验",
                          items=["uscc"], by=console("test"))
        # submitted yesterday, so that its written form can arrive today (an arrival still to come is refused)
        submitted.submitted_at -= timedelta(days=1)
        submitted.received_on -= timedelta(days=1)
        submitted.due_on, submitted.due_problem = due_after(submitted.received_on, DECISION_WORKING_DAYS)
        number, received_on = submitted.number, submitted.received_on
    page = browser.new_page()
    _sign_in_as(page, site, "liu", f"/web/applications/{number}")
    # The written form arrived the next day: the provider records it and the 10 working days run from then.
    due_before = page.inner_text("#due")
    page.evaluate("document.querySelector('#received-on').type = 'text'")  # a browser's date field hides typos
    page.fill("#received-on", "2026-13-01")
    page.click("#submit-receipt")
    page.wait_for_load_state()
    assert "收到日期应为" in page.inner_text("#decision-error")
    arrived = received_on + timedelta(days=1)
    page.fill("#received-on", arrived.isoformat())
    page.click("#submit-receipt")
    page.wait_for_load_state()
    # 10 working days from the arrival (a weekend or holiday arrival moves nothing; a deadline in a year
    # without a schedule reads 待国务院公布节假日安排 before and after)
    assert page.inner_text("#due").startswith(due_text(due_after(arrived, DECISION_WORKING_DAYS)[0]))
    assert due_before.startswith(due_text(due_after(received_on, DECISION_WORKING_DAYS)[0]))
    page.uncheck("input[name=approved_items][value=uscc]")  # "approve" with nothing ticked approves nothing
    page.fill("#reasons-input", "同意")
    page.click("#submit-decision")
    page.wait_for_load_state()
    assert "请至少勾选一个同意共享的数据项" in page.inner_text("#decision-error")
    assert page.inner_text("#status") == "待答复"
    page.check("#outcome-refuse")
    page.fill("#reasons-input", "该数据项涉及商业秘密，不予共享")
    page.click("#submit-decision")
    page.wait_for_load_state()
    assert page.inner_text("#status") == "不予共享" and page.inner_text("#approved") == "无"

    _sign_in_as(page, site, "zhou", f"/web/applications/{number}")
    assert page.inner_text("#reasons") == "该数据项涉及商业秘密，不予共享"
    assert page.query_selector("#browse") is None and page.query_selector("#decision-form") is None

    # The consumer's person cannot decide, even by posting the form directly.
    response = page.request.post(site.url(f"/web/applications/{number}/decision"),
                                 form={"outcome": "approve", "reasons": "自行批准", "approved_items": "uscc"})
    assert response.status == 403 and "只有提供方" in response.text()

    # 协调处理: the consumer disputes the refusal; the coordination office's conclusion becomes the decision.
    page.goto(site.url(f"/web/applications/{number}"))
    page.fill("#grounds-input", "核验企业登记信息为法定职责，请予协调")
    page.click("#submit-dispute")
    page.wait_for_load_state()
    assert page.inner_text("#status") == "协调处理中" and "请予协调" in page.inner_text("#disputes")
    assert page.query_selector("#conclusion-form") is None  # only the coordination office concludes
    response = page.request.post(site.url(f"/web/applications/{number}/conclusion"),
                                 form={"outcome": "approve", "conclusion": "自行结论", "approved_items": "uscc"})
    assert response.status == 403
    with session_scope() as session:
        from registry.people.users import add_user
        from tests.helpers import ensure_agency

        ensure_agency(session, "113100000024240108", "上海市人民政府办公厅")
        add_user(session, username="ban", agency="113100000024240108", roles=["coordination_office"],
                 password=PASSWORD, by=console("test"))
    _sign_in_as(page, site, "ban", f"/web/applications/{number}")
    page.fill("#conclusion-input", "同意共享统一社会信用代码，用于企业登记核验")
    page.click("#submit-conclusion")
    page.wait_for_load_state()
    assert page.inner_text("#status") == "同意共享" and "用于企业登记核验" in page.inner_text("#disputes")
    actions = [a for a, _, _ in _audit_actions(code)]
    assert {"application.receive", "dispute.open", "dispute.conclude"} <= set(actions)
