"""Online browsing in a real browser: headless Chromium (Debian's package) driven by Playwright against the API
process on loopback. Sign in, search and filter the catalogue, open an entry's metadata and data items, page
through the granted data with personal identifiers masked; a person of an agency without a grant is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core import clock
from tests.catalog_helpers import entry_data
from tests.delivery_helpers import (
    ALL_MODES,
    DENIED_AGENCY,
    Delivery,
    delivery_hub,
    grant,
)
from tests.helpers import CONSUMER, OTHER_PROVIDER, PROVIDER, latest, read_version
from tests.services import services_required

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct-horse-battery"
WEB_COLUMNS = ["id", "uscc", "name", "legal_rep", "legal_rep_id", "status"]
SHOWN_COLUMNS = WEB_COLUMNS[1:]  # the technical key is granted (pages are cut by it) but is no data item: not shown


def _browser_or_skip():
    reason = None
    if not CHROMIUM.exists():
        reason = f"Chromium not installed ({CHROMIUM}); `apt-get install chromium`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed; `pip install -e .[test]`"
    if reason:
        if services_required():
            pytest.fail(f"{reason} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(f"{reason}; set GOVSHARE_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture
def browser() -> Iterator:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _catalogue_and_people(code: str, tmp_path: Path) -> None:
    """A published catalogue entry for the resource, its secrecy review (legal representative's name and ID are
    personal), a signed agreement with the consumer, and three people who sign in."""
    from registry.sharing.agreements import add_agreement, set_sensitivity
    from registry.people.auth import console
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.people.users import add_user
    from tests.catalog_helpers import entry_data, publish, setup_people

    with session_scope() as session:
        setup_people(session)
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", actor="test", data=entry_data(
            sharing_type="conditional", sharing_condition="仅限就业登记核验", sharing_modes=ALL_MODES,
            data_items=[{"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "subject_id": "uscc"},
                        {"name": "企业名称", "column": "name", "data_type": "string"},
                        {"name": "法定代表人", "column": "legal_rep", "data_type": "string"},
                        {"name": "法定代表人身份证号", "column": "legal_rep_id", "data_type": "string",
                         "subject_id": "idcard"},
                        {"name": "登记状态", "column": "status", "data_type": "string"}]))
        publish(session, code)
    scan = tmp_path / "agreement.pdf"
    scan.write_bytes(b"%PDF-1.4 signed secrecy agreement")
    with session_scope() as session:
        by = console("test")
        set_sensitivity(session, resource_code=code, by=by, personal_privacy=True,
                        personal_columns=["legal_rep", "legal_rep_id"])
        add_agreement(session, resource_code=code, consumer=CONSUMER[0], parties=["市场监管局", "人社局"],
                      signed_on=clock.today() - timedelta(days=1), valid_until=clock.today() + timedelta(days=365),
                      scan=scan, by=by)
        add_user(session, username="wang", agency=CONSUMER[0], roles=["data_admin"], password=PASSWORD, by=by)
        add_user(session, username="zhou", agency=DENIED_AGENCY[0], roles=["data_admin"], password=PASSWORD, by=by)


@pytest.fixture
def site(hub_home: Path, tmp_path: Path) -> Iterator[Delivery]:
    with delivery_hub(tmp_path, rows=300) as made:
        # the entry first: republished, it takes the technical key (no data item) off earlier grants
        _catalogue_and_people(made.hub.resource_code, tmp_path)
        grant(made.hub.resource_code, made.hub.consumer_code, columns=WEB_COLUMNS)
        yield made


def _sign_in(page, site: Delivery, username: str, start: str) -> None:
    page.goto(site.url(start))
    assert "/web/login" in page.url  # not signed in: sent to the login page first
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_load_state()


def screenshot_folder() -> Path:
    """Where browser tests keep a picture of each page they check, for a person to look at: GOVSHARE_SCREENSHOTS,
    else var/ci-screenshots in the repository (git-ignored; CI keeps it with its log)."""
    return Path(os.environ.get("GOVSHARE_SCREENSHOTS") or Path(__file__).resolve().parents[1] / "var" / "ci-screenshots")


def _snap(page, name: str) -> Path:
    folder = screenshot_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")


def test_search_open_an_entry_and_browse_masked_granted_data(browser, site: Delivery) -> None:
    code = site.hub.resource_code
    page = browser.new_page()
    _sign_in(page, site, "wang", "/web/catalog")
    assert page.url.endswith("/web/catalog")
    assert "wang" in page.inner_text("header")

    page.fill("#q", "企业")
    page.select_option("#sharing_type", "conditional")
    page.select_option("#mode", "browse")
    page.click("#do-search")
    page.wait_for_load_state()
    _snap(page, "catalog")
    results = _cells(page, "#results")
    assert [r[0] for r in results] == [code] and results[0][1].startswith("企业基本信息")
    assert "有条件共享" in results[0][3] and "在线浏览" in results[0][4]

    page.select_option("#agency", OTHER_PROVIDER[0])  # another provider: not its entry
    page.click("#do-search")
    page.wait_for_load_state()
    assert "没有符合条件的资源" in page.inner_text("#results")
    page.select_option("#agency", PROVIDER[0])
    page.click("#do-search")
    page.wait_for_load_state()
    assert [r[0] for r in _cells(page, "#results")] == [code]

    page.fill("#q", "不存在的资源名称")
    page.click("#do-search")
    page.wait_for_load_state()
    assert "没有符合条件的资源" in page.inner_text("#results")

    page.goto(site.url("/web/catalog"))
    page.click("text=企业基本信息")
    page.wait_for_load_state()
    _snap(page, "entry")
    assert page.inner_text("#entry-name") == "企业基本信息"
    elements = dict(page.eval_on_selector_all(
        "#elements tr", "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])"))
    assert elements["信息资源代码"] == code and "有条件共享" in elements["共享类型"]
    assert elements["信息资源提供方"] == PROVIDER[1]
    items = [r[0] for r in _cells(page, "#data-items")]
    assert items == ["统一社会信用代码", "企业名称", "法定代表人", "法定代表人身份证号", "登记状态"]

    page.click("#browse")
    page.wait_for_load_state()
    headers = page.eval_on_selector_all("#data thead th", "ths => ths.map(t => t.title)")
    assert headers == SHOWN_COLUMNS  # exactly the granted data items
    _snap(page, "data")
    first = _cells(page, "#data")
    assert len(first) == 20
    published = {r["uscc"]: r for r in read_version(latest(code)).to_pylist()}
    for row in first:
        source = published[row[0]]
        assert source["status"] in ("存续", "在业")  # only the granted rows
        assert row[1] == source["name"]
        assert "****" in row[3] and row[3] != source["legal_rep_id"]  # personal identifiers masked
        assert row[3][:3] == source["legal_rep_id"][:3]
    page.click("#next")
    page.wait_for_load_state()
    second = _cells(page, "#data")
    assert "第 2 页" in page.inner_text("#page-no")
    assert published[second[0][0]]["id"] > published[first[-1][0]]["id"]


def test_a_person_without_a_grant_sees_a_refusal(browser, site: Delivery) -> None:
    page = browser.new_page()
    _sign_in(page, site, "zhou", f"/web/data/{site.hub.resource_code}")
    assert page.url.endswith(f"/web/data/{site.hub.resource_code}")
    _snap(page, "refused")
    assert "未获得该资源的共享授权" in page.inner_text("#problem")
    assert page.query_selector("#data") is None

    page.goto(site.url("/web/login"))
    page.fill("#username", "wang")
    page.fill("#password", "wrong-password-123")
    page.click("#login")
    page.wait_for_load_state()
    assert "用户名或密码错误" in page.inner_text("#login-error")


def test_pages_need_a_signed_in_person(site: Delivery) -> None:
    import requests

    for path in ("/web/catalog", f"/web/data/{site.hub.resource_code}"):
        response = requests.get(site.url(path), allow_redirects=False, timeout=30)
        assert response.status_code == 303 and response.headers["location"].startswith("/web/login")
    # A forged session cookie is no way in either.
    forged = requests.get(site.url("/web/catalog"), cookies={"govshare_session": "gsu_forged"},
                          allow_redirects=False, timeout=30)
    assert forged.status_code == 303 and forged.headers["location"].startswith("/web/login")


def _session_cookie(site: Delivery, username: str) -> dict[str, str]:
    import requests

    signed = requests.post(site.url("/api/v1/auth/login"), json={"username": username, "password": PASSWORD},
                           timeout=30)
    assert signed.status_code == 200, signed.text
    return {"govshare_session": signed.json()["token"]}


def test_pages_tell_no_count_or_digest_beyond_the_grant(site: Delivery) -> None:
    """The browsing page counts the rows the grant gives (not the version's, which include rows outside the row
    condition), and the entry page shows the whole version's count to its provider only, as the versions endpoint
    withholds it; the manifest digest, which every download carries, to readers with a live grant only."""
    import requests

    from tests.delivery_helpers import expected_rows

    version = latest(site.hub.resource_code)
    granted = len(expected_rows(version))
    assert 0 < granted < version.row_count
    cookies = _session_cookie(site, "wang")
    page = requests.get(site.url(f"/web/data/{site.hub.resource_code}"), cookies=cookies, timeout=30)
    assert page.status_code == 200, page.text
    assert f"共 {granted} 条" in page.text and f"共 {version.row_count} 条" not in page.text

    for username, granted in (("wang", True), ("zhou", False)):
        entry = requests.get(site.url(f"/web/catalog/{site.hub.resource_code}"),
                             cookies=_session_cookie(site, username), timeout=30)
        assert entry.status_code == 200, entry.text
        assert "最新版本：第 1 版" in entry.text
        assert f"{version.row_count} 条记录" not in entry.text
        assert (version.manifest_sha256 in entry.text) is granted


def test_an_unpublished_entry_is_the_providers_alone_on_the_pages_too(site: Delivery) -> None:
    """A catalogue entry never published (a draft) was shown in full on its page to any signed-in person of any
    agency, while the catalogue API answers that it is not published. It is answered as one that does not exist."""
    import requests

    from registry.catalog.entries import upsert_entry
    from registry.catalog.models import Resource
    from registry.db import session_scope

    with session_scope() as session:
        draft = upsert_entry(session, agency=PROVIDER[0], author="zhang", actor="test", data=entry_data(
            classification="101009", name="内部草稿资源", abstract="尚未发布的草稿摘要"))
        code = session.get(Resource, draft.resource_id).code
    page = requests.get(site.url(f"/web/catalog/{code}"), cookies=_session_cookie(site, "wang"), timeout=30)
    assert page.status_code == 404 and "未找到要查看的资源" in page.text  # as an entry that does not exist
    assert "内部草稿资源" not in page.text and "尚未发布的草稿摘要" not in page.text
