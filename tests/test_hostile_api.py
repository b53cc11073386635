"""The API and pages attacked as another agency's curious clerk and a careless user would (ARCHITECTURE.md,
"Trust"); each test is a hole that gave way:

- a catalogue entry never published answered another agency differently from a code that does not exist (its
  status, sharing type and legal basis in the refusal), so its existence and state could be probed;
- the draft of an entry registered but never catalogued was a 500;
- signing out of the pages was not audited, and was committed only after the answer left.
"""

from __future__ import annotations

import requests

from tests.delivery_helpers import Delivery
from tests.helpers import PROVIDER, issue_token
from tests.test_trust_attacks import _events, _login, site  # noqa: F401 - the fixture

MISSING = "101002/9999"  # a code no resource has


def _registered_only() -> str:
    from registry.catalog.resources import add_resource
    from registry.db import session_scope

    with session_scope() as session:
        return add_resource(session, name="内部登记资源", agency=PROVIDER[0], classification="101002",
                            abstract="仅登记未编目的摘要", actor="test", sharing_type="not_shared",
                            sharing_condition="依据内部文件不予共享").code


# every route that takes an entry's code, as another agency's reader calls it
ENTRY_PATHS = ["/api/v1/catalog/entries/{c}", "/api/v1/catalog/entries/{c}/draft",
               "/api/v1/catalog/entries/{c}/revisions", "/api/v1/catalog/entries/{c}/diff?old=1&new=2",
               "/api/v1/resources/{c}/versions", "/api/v1/resources/{c}/changes?since=1",
               "/api/v1/resources/{c}/files", "/api/v1/resources/{c}/records",
               "/api/v1/resources/{c}/lookup?column=uscc&value=1", "/api/v1/catalog/{c}/openapi.json"]


def test_an_entry_never_published_answers_another_agency_as_no_entry_at_all(site: Delivery) -> None:  # noqa: F811
    """Another agency asking for a registered (never catalogued) entry was told 尚未发布, 403 where a missing
    code is 404, or "未经保密审查和审核发布（当前：registered）", and the data channels named its sharing type and
    legal basis: a clerk could list which codes exist, in which state, before the provider published anything.
    Now every route answers it exactly as it answers a code that does not exist; the refusal is still audited
    with its real reason, and the provider still sees its own entry."""
    code = _registered_only()
    for username in ("zhou", "wang", "sun"):  # no grant; a grant on another entry; a person without data roles
        caller = {"Authorization": f"Bearer {_login(site, username)}"}
        for path in ENTRY_PATHS:
            hidden = requests.get(site.url(path.format(c=code)), headers=caller, timeout=30)
            missing = requests.get(site.url(path.format(c=MISSING)), headers=caller, timeout=30)
            assert (hidden.status_code, hidden.text.replace(code, MISSING)) == (missing.status_code, missing.text), \
                (username, path, hidden.text[:300], missing.text[:300])
            assert "内部文件" not in hidden.text and "registered" not in hidden.text
    page = {"govshare_session": _login(site, "zhou")}  # the data page too: 未找到, never 未经保密审查
    hidden, missing = (requests.get(site.url(f"/web/data/{c}"), cookies=page, timeout=30) for c in (code, MISSING))
    assert (hidden.status_code, hidden.text.replace(code, MISSING)) == (missing.status_code, missing.text)
    assert hidden.status_code == 404 and "未经保密审查" not in hidden.text
    refused = [d for actor, result, d in _events("data.read", resource_code=code) if actor == "user:zhou"]
    assert refused and all("not passed" in d["reason"] for d in refused), refused
    provider = {"Authorization": f"Bearer {issue_token(PROVIDER[0])}"}
    own = requests.get(site.url(f"/api/v1/catalog/entries/{code}"), headers=provider, timeout=30)
    assert own.status_code == 404 and "尚未发布" in own.json()["detail_zh"], own.text[:300]


def test_the_draft_of_an_entry_never_catalogued_is_a_404_not_a_server_error(site: Delivery) -> None:  # noqa: F811
    """The provider asking for the draft of its resource registered with `resource add` (no catalogue revision
    yet) got a 500 Internal Server Error; it is told the entry has no catalogue content yet and what to do."""
    code = _registered_only()
    draft = requests.get(site.url(f"/api/v1/catalog/entries/{code}/draft"), timeout=30,
                         headers={"Authorization": f"Bearer {issue_token(PROVIDER[0])}"})
    assert draft.status_code == 404, draft.text[:300]
    assert "编目" in draft.json()["detail_zh"] and "PUT" in draft.json()["detail"]


def test_signing_out_of_the_pages_is_audited_and_done_before_the_answer(site: Delivery) -> None:  # noqa: F811
    """Signing out over the API is recorded (user.logout); signing out of the pages revoked the session without a
    trace, and committed it only after the redirect had left, so the next page could still open as signed in.
    Now the page's sign-out is the same service, recorded, and committed before the answer."""
    cookies = {"govshare_session": _login(site, "wang")}
    out = requests.post(site.url("/web/logout"), cookies=cookies, allow_redirects=False, timeout=30,
                        headers={"Origin": site.url(""), "Sec-Fetch-Site": "same-origin"})
    assert out.status_code == 303 and out.headers["location"] == "/web/login"
    assert [(actor, d) for actor, _, d in _events("user.logout")] == [("user:wang", {"source": "web"})]
    after = requests.get(site.url("/web/catalog"), cookies=cookies, allow_redirects=False, timeout=30)
    assert after.status_code == 303 and after.headers["location"].startswith("/web/login")
    again = requests.post(site.url("/web/logout"), cookies=cookies, allow_redirects=False, timeout=30)
    assert again.status_code == 303 and len(_events("user.logout")) == 1  # signed out already: nothing more


def test_user_and_token_bodies_naming_more_than_they_may_are_refused(site: Delivery) -> None:  # noqa: F811
    """The sharing and catalogue requests refuse fields they do not know; a new user's or token's did not: a body
    saying who issues the token (`by`), or that the new account starts inactive, was accepted with the field
    silently dropped, and a token of 0 or fewer days was issued already expired. Each is now a 422 (or a 400
    saying what to do) naming the field, and nothing is created."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user
    from tests.test_delivery_web import PASSWORD

    with session_scope() as session:
        add_user(session, username="qian", agency=site.hub.consumer_code, roles=["agency_admin"], password=PASSWORD,
                 by=console("test"))
    admin = {"Authorization": f"Bearer {_login(site, 'qian')}"}
    issued = len(_events("token.issue"))
    for body, field in (({"agency": site.hub.consumer_code, "name": "系统甲", "by": "user:li"}, "by"),
                        ({"agency": site.hub.consumer_code, "name": "系统乙", "days": 0}, "days"),
                        ({"agency": site.hub.consumer_code, "name": "系统丙", "days": -30}, "days")):
        answer = requests.post(site.url("/api/v1/tokens"), json=body, headers=admin, timeout=30)
        assert answer.status_code in (400, 422), (body, answer.status_code, answer.text[:300])
        assert field in answer.text and answer.json()["detail_zh"], answer.text[:300]
    assert len(_events("token.issue")) == issued
    answer = requests.post(site.url("/api/v1/users"), headers=admin, timeout=30,
                           json={"username": "eve", "agency": site.hub.consumer_code, "roles": ["data_admin"],
                                 "password": PASSWORD, "active": False})
    assert answer.status_code == 422 and "active" in answer.text, answer.text[:300]
    names = [u["username"] for u in requests.get(site.url("/api/v1/users"), headers=admin, timeout=30).json()]
    assert "eve" not in names


def test_applying_for_an_entry_never_published_tells_no_more_than_for_no_entry(site: Delivery) -> None:  # noqa: F811
    """Applying for (or subscribing to) another agency's entry not yet published answered "未经保密审查和审核发布
    （当前：registered）", where a code that does not exist is "not found": the workflow routes were a probe of
    which codes exist and their state. They now answer as for a missing code; the refusal is still audited."""
    code = _registered_only()
    wang = {"Authorization": f"Bearer {_login(site, 'wang')}"}
    for path, body in (("/api/v1/applications", {"scope": "本市", "purpose": "就业登记核验", "items": ["uscc"]}),
                       ("/api/v1/subscriptions", {"purpose": "就业登记核验"})):
        hidden = requests.post(site.url(path), json={**body, "resource_code": code}, headers=wang, timeout=30)
        missing = requests.post(site.url(path), json={**body, "resource_code": MISSING}, headers=wang, timeout=30)
        assert (hidden.status_code, hidden.text.replace(code, MISSING)) == (missing.status_code, missing.text), \
            (path, hidden.text[:300], missing.text[:300])
    for action in ("application.submit", "subscription.add"):
        assert [actor for actor, result, _ in _events(action, resource_code=code)] == ["user:wang"], action


def test_the_openapi_document_offers_no_lookup_key_the_grant_refuses(site: Delivery) -> None:  # noqa: F811
    """The interface service's OpenAPI document, cut to the reader's grant, still offered the masked columns
    (the legal representative's name and ID number) as lookup keys: a consumer system generated from it called
    lookups that are always refused (a match on a masked column would reveal its value). The key column's
    choices are now the granted, unmasked columns, and each one it offers is answered."""
    code = site.hub.resource_code
    wang = {"Authorization": f"Bearer {_login(site, 'wang')}"}
    document = requests.get(site.url(f"/api/v1/catalog/{code}/openapi.json"), headers=wang, timeout=30).json()
    lookup = document["paths"][f"/api/v1/resources/{code}/lookup"]["get"]
    keys = next(p for p in lookup["parameters"] if p["name"] == "column")["schema"]["enum"]
    assert keys and not {"legal_rep", "legal_rep_id"} & set(keys), keys
    for key in keys:
        answer = requests.get(site.url(f"/api/v1/resources/{code}/lookup"), params={"column": key, "value": "x"},
                              headers=wang, timeout=30)
        assert answer.status_code == 200, (key, answer.text[:300])
