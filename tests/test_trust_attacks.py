"""The access rules attacked as a hostile consumer, a curious agency clerk and a careless operator would, against
the real API on loopback: each test is a hole that once gave way (ARCHITECTURE.md, "Trust").

- an inspector's audit check named a file on the server, and the server opened it;
- a grant widened by an UPDATE in the registry database was served as if the provider had approved it;
- a signed link outlived the token (or session) that issued it;
- a cross-site form post acted with the signed-in person's session cookie;
- the session cookie went out without Secure over HTTPS;
- a catalogue entry never published (registered only, or withdrawn) was shown to any agency on the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text

from tests.delivery_helpers import DENIED_AGENCY, Delivery, delivery_hub, grant
from tests.helpers import CONSUMER, PROVIDER
from tests.test_delivery_web import PASSWORD, WEB_COLUMNS, _catalogue_and_people

pytestmark = pytest.mark.clock


@pytest.fixture
def site(hub_home: Path, tmp_path: Path) -> Iterator[Delivery]:
    """A published conditional entry with its data, a consumer granted WEB_COLUMNS (some rows), people who sign
    in: wang (consumer's data administrator), zhou (an agency without a grant), sun (supervisor)."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user

    with delivery_hub(tmp_path, rows=120) as made:
        # the entry first: republished, it takes the technical key (no data item) off earlier grants
        _catalogue_and_people(made.hub.resource_code, tmp_path)
        grant(made.hub.resource_code, made.hub.consumer_code, columns=WEB_COLUMNS)
        with session_scope() as session:
            add_user(session, username="sun", agency=DENIED_AGENCY[0], roles=["supervisor"], password=PASSWORD,
                     by=console("test"))
        yield made


def _login(site: Delivery, username: str) -> str:
    signed = requests.post(site.url("/api/v1/auth/login"), json={"username": username, "password": PASSWORD},
                           timeout=30)
    assert signed.status_code == 200, signed.text
    return signed.json()["token"]


def _events(action: str, **where: str) -> list:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return [(e.actor, e.result, e.detail) for e in session.scalars(query.order_by(AuditEvent.id))]


# --- the audit check over HTTP opens no file ----------------------------------------------------------------------

def test_the_audit_check_over_http_never_opens_a_file_the_caller_names(site: Delivery, tmp_path: Path) -> None:
    """`GET /api/v1/audit/verify?anchor=` took a path on the server, as the CLI's `--anchor FILE` does: a
    supervisor's request made the server open any file it named (an answer that depended on the file's content,
    a 500 for one that is not JSON or does not exist). Over HTTP an anchor is the head's hash, or the anchor
    file's content sent in the body; the hash path still answers, and a sealed anchor sent as JSON is checked."""
    token = _login(site, "sun")
    planted = tmp_path / "server-side.json"
    planted.write_text(json.dumps({"last_hash": "ab" * 32}), encoding="utf-8")
    for anchor in (str(planted), "/etc/passwd", str(tmp_path / "nothing-here.json")):
        answer = site.get("/api/v1/audit/verify", token=token, params={"anchor": anchor})
        assert answer.status_code == 400, (anchor, answer.status_code, answer.text[:300])
        body = answer.json()
        assert "anchor" in body["detail"] and body["detail_zh"], body
        assert "truncated" not in answer.text  # nothing was read from the file

    whole = site.get("/api/v1/audit/verify", token=token)
    assert whole.status_code == 200 and whole.json()["ok"], whole.text
    head = whole.json()["last_hash"]
    by_hash = site.get("/api/v1/audit/verify", token=token, params={"anchor": head})
    assert by_hash.status_code == 200 and by_hash.json()["ok"], by_hash.text

    from registry.audit.verify import write_anchor
    from registry.db import session_scope

    with session_scope() as session:
        _, anchor = write_anchor(session, out=tmp_path / "anchor.json")
    sent = requests.post(site.url("/api/v1/audit/verify"), json=anchor, headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert sent.status_code == 200 and sent.json()["ok"], sent.text
    forged = requests.post(site.url("/api/v1/audit/verify"), json={**anchor, "seal": "0" * 64},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert forged.status_code == 200 and not forged.json()["ok"]
    assert [f["kind"] for f in forged.json()["findings"]] == ["forged"]
    # A consumer's system is no inspector, by path or by body.
    assert site.get("/api/v1/audit/verify", token=site.hub.token).status_code == 403
    assert requests.post(site.url("/api/v1/audit/verify"), json=anchor, timeout=30,
                         headers={"Authorization": f"Bearer {site.hub.token}"}).status_code == 403


# --- a grant edited in the database ---------------------------------------------------------------------------

def _registry_sql(statement: str, **params) -> None:
    from registry.db import session_scope

    with session_scope() as session:
        session.execute(text(statement), params)


def test_a_grant_widened_in_the_database_is_refused_and_reported(site: Delivery) -> None:
    """A careless operator (or anyone with write access to the registry) widened the consumer's grant with an
    UPDATE: every column, no row condition, identifiers unmasked. The next download served the whole table as if
    the provider had approved it, and `govshare sharing check` saw nothing (the grant still rested on its basis).
    A grant carries a seal made with the hub's key whenever the hub writes it: an edited one is refused on every
    channel (audited) and reported by the sharing check; the grant made through the services keeps working."""
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants
    from registry.sharing.models import Grant

    code, token = site.hub.resource_code, site.hub.token
    files = f"/api/v1/resources/{code}/files"
    before = site.get(files, token=token, params={"format": "csv"})
    assert before.status_code == 200, before.text
    assert "address" not in before.text.splitlines()[0]
    with session_scope() as session:
        grant_id = session.scalar(select(Grant.id).where(Grant.status == "active"))
        assert not [g for g in baseless_grants(session) if g.problem_en.startswith("the grant record was changed")]

    _registry_sql("UPDATE grants SET columns = NULL, row_filter = NULL, unmask = :yes WHERE id = :id",
                  yes=True, id=grant_id)
    for path, params in ((files, {"format": "csv"}), (f"/api/v1/resources/{code}/records", {"limit": 5}),
                         (f"/api/v1/resources/{code}/lookup", {"column": "uscc", "value": "x"}),
                         (f"/api/v1/resources/{code}/versions", {})):
        answer = site.get(path, token=token, params=params)
        assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
        assert "授权记录" in answer.json()["detail_zh"], answer.json()
        assert "address" not in answer.text
    refused = [d for _, result, d in _events("data.read", agency_code=CONSUMER[0]) if result == "denied"]
    assert refused and "grant record was changed" in refused[-1]["reason"]
    with session_scope() as session:
        found = [g for g in baseless_grants(session) if g.grant_id == grant_id]
        assert found and found[0].problem_en.startswith("the grant record was changed"), found

    # Changed back to what the hub wrote, the seal matches again: nothing but the edit was refused.
    _registry_sql("UPDATE grants SET columns = :columns, row_filter = :row_filter, unmask = :no WHERE id = :id",
                  columns=json.dumps(WEB_COLUMNS), row_filter=json.dumps(
                      {"column": "status", "op": "in", "values": ["存续", "在业"]}, ensure_ascii=False),
                  no=False, id=grant_id)
    again = site.get(files, token=token, params={"format": "csv"})
    assert again.status_code == 200 and again.content == before.content



def test_a_grant_edited_in_a_postgresql_registry_is_refused_too(pg_hub_home: Path) -> None:
    """The same on the PostgreSQL registry (its JSON and timestamp columns come back in other forms than
    SQLite's): a grant the hub wrote verifies, an edited one is refused and reported, the restored one verifies."""
    from datetime import timedelta

    from core import clock
    from core.errors import AccessDenied
    from delivery.access import authorize_read
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants
    from tests.helpers import register_resource

    hub = register_resource(kind=None, subscribe=True)
    with session_scope() as session:
        grant_id = session.execute(text("SELECT id FROM grants WHERE status = 'active'")).scalar_one()
    with session_scope() as session:  # an expiry set through the ORM is sealed again
        from registry.sharing.models import Grant

        session.get(Grant, grant_id).expires_at = clock.now() + timedelta(days=30)
    with session_scope() as session:
        assert authorize_read(session, token=hub.token, resource_code=hub.resource_code,
                              channel="metadata").grant_id == grant_id
        assert baseless_grants(session) == []
    _registry_sql("UPDATE grants SET expires_at = NULL WHERE id = :id", id=grant_id)
    with session_scope() as session, pytest.raises(AccessDenied, match="changed outside the hub"):
        authorize_read(session, token=hub.token, resource_code=hub.resource_code, channel="metadata")
    with session_scope() as session:
        assert [g.grant_id for g in baseless_grants(session)] == [grant_id]


# --- signed links live no longer than the credential that issued them ------------------------------------------

def test_a_signed_link_dies_with_the_credential_that_issued_it(site: Delivery) -> None:
    """A consumer system's token leaked and its agency revoked it: every link issued with it kept downloading the
    data for up to seven days, credential-free, because following a link re-checked only the agency's grant. The
    same after a person signed out. A link now names the credential that issued it, and following it checks that
    credential as a request would (revoked, expired, signed out: refused and audited)."""
    from registry.db import session_scope
    from registry.people.models import ApiToken
    from registry.people.tokens import issue_token as issue
    from registry.people.tokens import revoke_token

    code = site.hub.resource_code
    with session_scope() as session:
        leaked = issue(session, agency=CONSUMER[0], name="leaky-system", days=30, actor="test")
    person = _login(site, "wang")
    links = {}
    for who, token in (("system", leaked), ("person", person)):
        made = requests.post(site.url(f"/api/v1/resources/{code}/links"), json={"format": "csv", "expires_in": 86400},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert made.status_code == 200, made.text
        links[who] = made.json()["url"]
        assert requests.get(links[who], timeout=30).status_code == 200

    with session_scope() as session:
        revoke_token(session, token_id=session.scalar(select(ApiToken.id).where(ApiToken.name == "leaky-system")))
    assert requests.post(site.url("/api/v1/auth/logout"), headers={"Authorization": f"Bearer {person}"},
                         timeout=30).status_code == 204
    for who, url in links.items():
        followed = requests.get(url, timeout=30)
        assert followed.status_code in (401, 403), (who, followed.status_code, followed.text[:200])
        assert followed.json()["detail_zh"] and "uscc" not in followed.text, followed.text
    denied = [d for _, result, d in _events("data.read") if result == "denied" and "signed link" in d["reason"]]
    assert len(denied) == 2, denied

    # A link of a credential still in force keeps working.
    kept = requests.post(site.url(f"/api/v1/resources/{code}/links"), json={"format": "csv"},
                         headers={"Authorization": f"Bearer {site.hub.token}"}, timeout=30)
    assert kept.status_code == 200 and requests.get(kept.json()["url"], timeout=30).status_code == 200


# --- web forms: cross-site posts, the session cookie --------------------------------------------------------------

def _applications() -> int:
    from registry.db import session_scope
    from registry.sharing.models import Application

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Application))


def test_a_cross_site_form_post_is_refused_and_audited(site: Delivery) -> None:
    """The session cookie is SameSite=Strict, but a page of a sibling site (another agency's portal under the same
    registrable domain is "same-site") or an older browser still sent it with a form posted from elsewhere, and the
    hub acted on it: an application submitted in the signed-in person's name. A form post whose Origin (or
    Sec-Fetch-Site) says it came from another site is refused before anything is done, and the refusal audited;
    the hub's own pages post as before, and so do clients that send no Origin (they carry no browser cookie)."""
    cookies = {"govshare_session": _login(site, "wang")}
    form = {"resource": site.hub.resource_code, "scope": "本市", "purpose": "就业登记核验", "items": ["uscc"]}
    before = _applications()
    for headers in ({"Origin": "https://portal.example.gov.cn"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}):
        forged = requests.post(site.url("/web/applications"), data=form, cookies=cookies, headers=headers,
                               allow_redirects=False, timeout=30)
        assert forged.status_code == 403, (headers, forged.status_code, forged.text[:300])
        assert "跨站" in forged.text
    assert _applications() == before
    refused = [d for actor, _, d in _events("request.refused") if actor == "user:wang"]
    assert len(refused) == 4 and all("cross-site" in d["reason"] for d in refused), refused
    login = requests.post(site.url("/web/login"), data={"username": "wang", "password": PASSWORD},
                          headers={"Origin": "https://portal.example.gov.cn"}, allow_redirects=False, timeout=30)
    assert login.status_code == 403 and "govshare_session" not in login.headers.get("set-cookie", "")

    own = requests.post(site.url("/web/applications"), data=form, cookies=cookies,
                        headers={"Origin": site.url(""), "Sec-Fetch-Site": "same-origin"}, allow_redirects=False,
                        timeout=30)
    assert own.status_code == 303, own.text[:300]
    assert _applications() == before + 1


def test_the_session_cookie_is_secure_over_https(site: Delivery) -> None:
    """Behind the HTTPS proxy a deployment puts in front of the hub, the session cookie went out without Secure,
    so a browser would also send it over plain HTTP (a downgraded or mistyped http:// address) where anyone on
    the path reads it. It is Secure whenever the request came over HTTPS; over plain HTTP (the loopback demo) a
    Secure cookie would never come back, so there it stays without."""
    for proto, secure in (("https", True), (None, False)):
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        signed = requests.post(site.url("/web/login"), data={"username": "wang", "password": PASSWORD},
                               headers=headers, allow_redirects=False, timeout=30)
        assert signed.status_code == 303, signed.text[:300]
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ("; secure" in cookie) is secure, (proto, cookie)


# --- pages of entries never published -----------------------------------------------------------------------------

def test_an_entry_not_published_is_the_providers_alone_on_every_page(site: Delivery) -> None:
    """Only a draft was hidden from other agencies: a resource registered with `resource add` and never
    catalogued, or a withdrawn entry (撤销发布), was shown on its page to any signed-in person, while the API
    answers that no such published entry exists; and the application form of any resource listed the published
    version's columns. Another agency's person now gets 未找到 for each; the provider still sees its own."""
    from registry.catalog.resources import add_resource
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope

    with session_scope() as session:
        registered = add_resource(session, name="内部登记资源", agency=PROVIDER[0], classification="101002",
                                  abstract="仅登记未编目的摘要", actor="test").code
    consumer = {"govshare_session": _login(site, "wang")}
    for path in (f"/web/catalog/{registered}", f"/web/applications/new?resource={registered}"):
        page = requests.get(site.url(path), cookies=consumer, timeout=30)
        assert page.status_code == 404, (path, page.status_code)
        assert "内部登记资源" not in page.text and "仅登记未编目的摘要" not in page.text

    code = site.hub.resource_code
    with session_scope() as session:
        withdraw_entry(session, code=code, account="li", reason="数据来源停止采集")
    for path in (f"/web/catalog/{code}", f"/web/applications/new?resource={code}"):
        page = requests.get(site.url(path), cookies=consumer, timeout=30)
        assert page.status_code == 404, (path, page.status_code)
        assert "legal_rep_id" not in page.text and "企业基本信息" not in page.text
    assert site.get(f"/api/v1/catalog/entries/{code}", token=site.hub.token).status_code == 404


# --- the records cursor tells nothing of rows outside the grant ---------------------------------------------------

def _position(cursor: str) -> int | None:
    """The global row position a cursor reveals to whoever holds it, if it reveals one."""
    import base64

    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"])
    except (ValueError, KeyError, TypeError):
        return None


def test_the_records_cursor_tells_nothing_of_rows_outside_the_grant(site: Delivery) -> None:
    """Under a row condition the version's row count is withheld (a fact about rows outside the grant), yet the
    records cursor carried the next row's position among *all* rows in key order, readable base64 JSON: paging
    one row at a time, a consumer counted the hidden rows between each two of its own (with integer keys, which
    ids exist outside its view), and by editing the position it could probe them. The cursor is now sealed and
    opaque (authenticated encryption, bound to the resource and the reader's agency): it pins the version and the
    position as before, but reads as nothing, an edited one is refused, and another agency's is no use."""
    from tests.delivery_helpers import expected_rows
    from tests.helpers import issue_token, latest

    code = site.hub.resource_code
    records = f"/api/v1/resources/{code}/records"
    cursors, seen, cursor = [], [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = site.get(records, token=site.hub.token, params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["records"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
        cursors.append(cursor)
    visible = expected_rows(latest(code), columns=WEB_COLUMNS)
    assert len(seen) == len(visible) < latest(code).row_count  # every row of the view, once, and no other
    assert sorted(r["id"] for r in seen) == sorted(r["id"] for r in visible)
    assert [_position(c) for c in cursors] == [None] * len(cursors), "the cursor shows positions among hidden rows"

    issued = cursors[0]
    flipped = issued[:-3] + ("A" if issued[-3] != "A" else "B") + issued[-2:]
    provider = issue_token(PROVIDER[0])
    own = site.get(records, token=provider, params={"limit": 7}).json()["next_cursor"]
    for cursor, token in ((flipped, site.hub.token), (own, site.hub.token), (issued, provider)):
        refused = site.get(records, token=token, params={"limit": 7, "cursor": cursor})
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail_zh"].startswith("游标（cursor）不是本服务签发的")
    # The browsing page's "next page" link is the same kind of cursor.
    cookies = {"govshare_session": _login(site, "wang")}
    browse = requests.get(site.url(f"/web/data/{code}"), cookies=cookies, timeout=30)
    assert browse.status_code == 200
    import re

    links = re.findall(r"cursor=([A-Za-z0-9_\-%]+)", browse.text)
    assert links and all(_position(requests.utils.unquote(c)) is None for c in links), links
    second = requests.get(site.url(f"/web/data/{code}"), params={"cursor": requests.utils.unquote(links[0]),
                                                                  "page": 2}, cookies=cookies, timeout=30)
    assert second.status_code == 200, second.text[:300]


# --- consistency tickets show the other agency's values only under a grant -------------------------------------

def consistency_checked(tmp_path: Path) -> tuple:
    """The market regulator's enterprise names (authoritative, DE0001) and the tax bureau's copy, three renamed,
    compared: a ticket to each agency. The regulator's Hub and the renamed keys."""
    from pipeline.consistency import check_consistency
    from tests.helpers import register_resource
    from tests.test_elements import TAX_AGENCY, _add_name_element, _market, _sync, renamed_tax_copy

    market = _market(tmp_path)
    tax_db, changed = renamed_tax_copy(tmp_path)
    tax = register_resource(kind="sqlite", config={"path": str(tax_db)}, table="taxpayer_credit", key=("uscc",),
                            name="纳税信用等级", classification="102001", provider=TAX_AGENCY, consumer=PROVIDER,
                            sharing_type="conditional", sharing_condition="仅限税务核查")
    _sync(market.resource_code)
    _sync(tax.resource_code)
    _add_name_element(market.resource_code)
    check_consistency(resource_code=tax.resource_code, mapping={"taxpayer_name": "DE0001"}, key_column="uscc")
    return market, changed


def test_a_consistency_ticket_shows_the_other_agencys_values_only_under_its_grant(hub_home: Path,
                                                                                    tmp_path: Path) -> None:
    """A consistency check (一数一源) compares the tax bureau's copy of enterprise names with the market regulator's
    authoritative names and sends a ticket to both. Over `GET /api/v1/tickets/{id}` each agency then read the
    other's values for every mismatching key (the tax bureau's data of a resource shared on application, read by
    an agency that never applied; the regulator's names, read by one with no grant), outside any access check.
    Each side now sees its own values and the other side's only where its live grant on that resource gives the
    column in the clear; withheld values say so, the read is audited with how many were withheld, and a grant
    obtained later shows them."""
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets
    from registry.sharing.subscriptions import subscribe
    from samples.demo_sources import TAX
    from tests.helpers import bearer, issue_token, running_api

    market, changed = consistency_checked(tmp_path)
    with session_scope() as session:
        tax_ticket = list_tickets(session, agency=TAX.code, status="open")[0].id
        market_ticket = list_tickets(session, agency=PROVIDER[0], status="open")[0].id
    tax_token, market_token = issue_token(TAX.code), issue_token(PROVIDER[0])

    def read(api, ticket: int, token: str) -> list[dict]:
        answer = requests.get(f"{api.base_url}/api/v1/tickets/{ticket}", headers=bearer(token), timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return [dict(zip(body["columns"], row)) for row in body["data"]]

    with running_api() as api:
        as_tax = read(api, tax_ticket, tax_token)
        as_market = read(api, market_ticket, market_token)
        assert sorted(r["key"] for r in as_tax) == sorted(changed) == sorted(r["key"] for r in as_market)
        # its own values in the clear, the other agency's withheld (no grant either way)
        assert all(r["copy_value"].endswith("（旧名）") for r in as_tax)
        assert all(r["authoritative_value"] == "（未获授权，不予显示）" for r in as_tax), as_tax
        assert all(r["copy_value"] == "（未获授权，不予显示）" for r in as_market), as_market
        assert all(r["authoritative_value"] and "旧名" not in r["authoritative_value"] for r in as_market)
        reads = [d for _, _, d in _events("ticket.read") if d.get("ticket") in (tax_ticket, market_ticket)]
        assert [d["withheld"] for d in reads] == [3, 3], reads

        with session_scope() as session:  # the regulator's entry is shared unconditionally: the tax bureau subscribes
            subscribe(session, resource_code=market.resource_code, agency=TAX.code, purpose="纳税人名称核对")
        granted = read(api, tax_ticket, tax_token)
        assert all(r["authoritative_value"] == r["copy_value"].removesuffix("（旧名）") for r in granted), granted


# --- probing columns outside the grant leaves a trace --------------------------------------------------------------

def test_probing_a_column_outside_the_grant_is_audited(site: Delivery) -> None:
    """A lookup by a column outside the grant (or a masked one), a filter on one, or asking for one as a field
    was refused (403) but left nothing in the audit log: the refusal came after the access decision, from the
    interface's own checks, and only the decision's refusals were recorded. A clerk could probe which columns
    exist and which are masked without a trace. Each such refusal is now a denied `data.read` naming the
    reader, the resource and the reason, as every other refusal is."""
    code = site.hub.resource_code
    probes = [("lookup", {"column": "address", "value": "上海"}),
              ("lookup", {"column": "legal_rep_id", "value": "310101199001011234"}),
              ("lookup", {"column": "uscc", "value": "x", "fields": "uscc,address"}),
              ("records", {"where": "address:上海"}),
              ("records", {"fields": "reg_capital"})]
    before = len([1 for _, result, _ in _events("data.read", agency_code=CONSUMER[0]) if result == "denied"])
    for what, params in probes:
        refused = site.get(f"/api/v1/resources/{code}/{what}", token=site.hub.token, params=params)
        assert refused.status_code == 403, (what, params, refused.text[:200])
    denied = [(actor, d) for actor, result, d in _events("data.read", agency_code=CONSUMER[0]) if result == "denied"]
    assert len(denied) == before + len(probes), denied
    assert all(actor.startswith("system:") and d["channel"] == "interface" for actor, d in denied[before:])
    assert "address" in denied[before][1]["reason"] and "legal_rep_id" in denied[before + 1][1]["reason"]


# --- the secrecy agreement is the provider's gate -------------------------------------------------------------------

def test_a_consumer_cannot_open_the_secrecy_gate_with_its_own_agreement(site: Delivery, tmp_path: Path) -> None:
    """The provider marked the resource as involving personal privacy, so a grant waits for a signed secrecy
    agreement before anything is read. The consumer's own data administrator could record one by itself (any
    PDF as the scan, any two names as the parties): its pending grant turned active and the data flowed, though
    the provider never signed or saw it. Recording the agreement that opens a grant is the provider's (its
    agency's administrators); the consumer's attempt is refused and audited, and the grant stays pending until the
    provider records it. Either party may still revoke one."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user
    from registry.sharing.models import Grant

    code = site.hub.resource_code
    grant(code, DENIED_AGENCY[0], columns=WEB_COLUMNS)
    with session_scope() as session:
        add_user(session, username="li.na", agency=PROVIDER[0], roles=["data_admin"], password=PASSWORD,
                 by=console("test"))
        pending = session.scalar(select(Grant).where(Grant.status == "pending_agreement")).id
    zhou_system = site.denied_token
    assert site.get(f"/api/v1/resources/{code}/files", token=zhou_system).status_code == 403
    form = {"resource_code": code, "consumer": DENIED_AGENCY[0], "parties": ["市场监管局", "统计局"],
            "signed_on": "2026-01-05", "valid_until": "2029-01-04"}
    scan = {"scan": ("协议.pdf", b"%PDF-1.4 not signed by anyone", "application/pdf")}
    forged = requests.post(site.url("/api/v1/agreements"), data=form, files=scan, timeout=30,
                           headers={"Authorization": f"Bearer {_login(site, 'zhou')}"})
    assert forged.status_code == 403, forged.text
    assert forged.json()["detail_zh"]
    with session_scope() as session:
        assert session.get(Grant, pending).status == "pending_agreement"
    assert site.get(f"/api/v1/resources/{code}/files", token=zhou_system).status_code == 403
    assert [d for actor, result, d in _events("request.refused") if actor == "user:zhou"]

    recorded = requests.post(site.url("/api/v1/agreements"), data=form, files=scan, timeout=30,
                             headers={"Authorization": f"Bearer {_login(site, 'li.na')}"})
    assert recorded.status_code == 201, recorded.text
    assert site.get(f"/api/v1/resources/{code}/files", token=zhou_system).status_code == 200


# --- the notice feed is read under the role table like any metadata -------------------------------------------

def test_the_notice_feed_is_for_those_who_may_read_the_data(site: Delivery) -> None:
    """The role table gives reading shared data and its metadata to agency and data resource administrators and
    the agency's systems; a cataloguer's session is refused `GET .../versions`. Yet the update notice feed, which
    names each new version with its manifest digest and change counts, answered any signed-in person of the
    agency. It is now refused (and audited) for a person without a data role, as the versions endpoint is."""
    import sqlite3
    from contextlib import closing

    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user

    with closing(sqlite3.connect(site.database)) as connection, connection:
        connection.execute("UPDATE enterprises SET status = '注销', updated_at = '2026-09-01T08:00:00+08:00' "
                           "WHERE id IN (3, 4)")
    sync_resource(resource_code=site.hub.resource_code)
    with session_scope() as session:
        add_user(session, username="cat", agency=CONSUMER[0], roles=["cataloguer"], password=PASSWORD,
                 by=console("test"))
    feed = site.get("/api/v1/notices", token=site.hub.token)
    assert feed.status_code == 200 and feed.json()["notices"], feed.text  # the agency's system reads it

    clerk = _login(site, "cat")
    assert site.get(f"/api/v1/resources/{site.hub.resource_code}/versions", token=clerk).status_code == 403
    refused = site.get("/api/v1/notices", token=clerk)
    assert refused.status_code == 403, refused.text[:300]
    assert refused.json()["detail_zh"] and "manifest_sha256" not in refused.text
    assert [d for actor, _, d in _events("notice.feed_read") if actor == "user:cat"] == []
    assert [d for actor, result, d in _events("request.refused") if actor == "user:cat" and result == "denied"]
    assert site.get("/api/v1/notices", token=_login(site, "wang")).status_code == 200  # a data administrator


# --- a body naming another agency or person is refused, never silently dropped ---------------------------------

def test_a_body_naming_another_agency_or_person_is_refused(site: Delivery) -> None:
    """The catalogue's request models refuse unknown fields, so a body naming an author is a 422; the sharing
    and download requests did not: an application whose body named another agency as the consumer (or a
    decision naming who decided, a link naming the agency it is for) was accepted, the name silently dropped,
    and the act done for the caller's own agency: the caller was told it succeeded at what it asked. Such a
    body is now a 422 naming the field, and nothing is done."""
    code = site.hub.resource_code
    person = {"Authorization": f"Bearer {_login(site, 'wang')}"}
    before = _applications()
    attempts = [
        ("/api/v1/applications", {"resource_code": code, "scope": "本市", "purpose": "核验", "items": ["uscc"],
                                  "consumer": DENIED_AGENCY[0]}, "consumer"),
        ("/api/v1/applications", {"resource_code": code, "scope": "本市", "purpose": "核验", "items": ["uscc"],
                                  "applicant": "user:zhou"}, "applicant"),
        ("/api/v1/subscriptions", {"resource_code": code, "purpose": "核验", "agency": DENIED_AGENCY[0]}, "agency"),
        (f"/api/v1/resources/{code}/links", {"format": "csv", "agency": DENIED_AGENCY[0]}, "agency"),
        ("/api/v1/grants/1/revoke", {"reason": "测试", "by": "user:li"}, "by"),
    ]
    for path, body, field in attempts:
        answer = requests.post(site.url(path), json=body, headers=person, timeout=30)
        assert answer.status_code == 422, (path, answer.status_code, answer.text[:300])
        assert field in answer.text and answer.json()["detail_zh"]
    assert _applications() == before



# --- a row condition never passes a row whose value it cannot judge ----------------------------------------------

def test_a_not_in_condition_passes_no_row_whose_value_is_unknown(site: Delivery, tmp_path: Path) -> None:
    """A provider limits a grant to the licences "not of 浦东新区" (`not_in`). Rows whose district is NULL (not
    known) were delivered under `not_in`, while the same grant written `ne 浦东新区` withheld them, as SQL's NOT IN
    does: an unknown value may well be the excluded one. Every operator now fails closed on an unknown value."""
    import csv
    import io
    import sqlite3
    from contextlib import closing

    from pipeline.sync import sync_resource
    from tests.delivery_helpers import set_modes
    from tests.helpers import register_resource

    database = tmp_path / "licences.db"
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("CREATE TABLE licences (id INTEGER PRIMARY KEY, district TEXT, updated_at TEXT NOT NULL)")
        connection.executemany("INSERT INTO licences VALUES (?, ?, '2026-01-01T08:00:00+08:00')",
                               [(1, "浦东新区"), (2, "黄浦区"), (3, None), (4, "徐汇区"), (5, None)])
    hub = register_resource(kind="sqlite", config={"path": str(database)}, table="licences", name="许可信息",
                            classification="101003", sharing_type="conditional", sharing_condition="仅限核验",
                            columns=("id", "district", "updated_at"))  # a grant names only listed items
    set_modes(hub.resource_code, ["file"])
    sync_resource(resource_code=hub.resource_code)
    answers = {}
    for condition in ({"column": "district", "op": "ne", "value": "浦东新区"},
                      {"column": "district", "op": "not_in", "values": ["浦东新区"]}):
        grant(hub.resource_code, hub.consumer_code, columns=["id", "district"], row_filter=condition)
        download = site.get(f"/api/v1/resources/{hub.resource_code}/files", token=hub.token, params={"format": "csv"})
        assert download.status_code == 200, download.text
        rows = list(csv.DictReader(io.StringIO(download.text.lstrip("\ufeff"))))
        answers[condition["op"]] = sorted(int(r["id"]) for r in rows)
    assert answers == {"ne": [2, 4], "not_in": [2, 4]}, answers


# --- refusals on the supervision pages are evidence too ------------------------------------------------------------

def test_refusals_on_the_supervision_pages_are_audited(site: Delivery) -> None:
    """An agency's person opening another agency's standing page (`/web/supervision/<code>`) or the periodic notice
    meant for the supervisor was refused, but the refusal was not written to the audit log, while the same
    request over the API is (`request.refused`) and the sharing pages log theirs. Both pages now log it."""
    cookies = {"govshare_session": _login(site, "zhou")}
    for path in (f"/web/supervision/{PROVIDER[0]}", "/web/supervision/report.pdf"):
        page = requests.get(site.url(path), cookies=cookies, timeout=60)
        assert page.status_code == 403, (path, page.status_code)
    refused = [d for actor, result, d in _events("request.refused") if actor == "user:zhou" and result == "denied"]
    assert [d["path"] for d in refused] == [f"/web/supervision/{PROVIDER[0]}", "/web/supervision/report.pdf"], refused
    own = requests.get(site.url("/web/supervision"), cookies=cookies, timeout=60)
    assert own.status_code == 200  # its own standing


# --- a revoked credential presented anywhere is named in the log ------------------------------------------------

def test_a_revoked_token_presented_to_any_route_is_named_in_the_log(site: Delivery) -> None:
    """A revoked API token presented to a data route is logged with the token's id and agency (supervision finds
    it as violation case 4). Presented to the notice feed or the tickets it left no record at all, and to a
    workflow route (grants, applications) an anonymous one without saying whose credential it was. Every 401 of a
    route now leaves a denied record, naming a revoked token's id and agency."""
    from registry.db import session_scope
    from registry.people.models import ApiToken
    from registry.people.tokens import issue_token as issue
    from registry.people.tokens import revoke_token

    with session_scope() as session:
        revoked = issue(session, agency=CONSUMER[0], name="old-system", days=30, actor="test")
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "old-system"))
        revoke_token(session, token_id=token_id)
    paths = ("/api/v1/notices", "/api/v1/tickets", "/api/v1/grants", "/api/v1/applications")
    for path in paths:
        assert site.get(path, token=revoked).status_code == 401, path
    named = [d for actor, result, d in _events("request.refused", agency_code=CONSUMER[0])
             if result == "denied" and d.get("token") == token_id]
    assert sorted(d["path"] for d in named) == sorted(paths), named
    assert site.get("/api/v1/notices").status_code == 401  # no credential at all: still a record, anonymous
    assert [d for actor, _, d in _events("request.refused") if d.get("path") == "/api/v1/notices"
            and "token" not in d]

    # Supervision finds the leaked credential (violation case 4) from these records too, not only from data reads.
    from core import clock
    from registry.supervision.violations import find_violations

    with session_scope() as session:
        found = [f for f in find_violations(session, as_of=clock.today()) if f.kind == "revoked_token_use"]
        assert [(f.key, f.facts["attempts"]) for f in found] == [(str(token_id), len(paths))], found
