"""Sharing workflows (articles 13, 14, 17, 19): the 10-working-day clock across National Day, reminders and
overdue flags, decisions with reasons, disputes concluded by the coordination office, secrecy agreements gating
grants, not-shared refusals citing their legal basis, article-17 applications, revocation on the next request,
the PDF form, people's logins with a rate limit."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pypdf
import pytest
import requests
from sqlalchemy import select

from core import clock
from samples.loaders import load_sqlite
from tests.helpers import (
    CONSUMER,
    OTHER_PROVIDER,
    PROVIDER,
    bearer,
    ensure_agency,
    publish_entry,
    running_api,
)
from tests.sharing_world import APPROVED_ITEMS, OFFICE, PASSWORD, World, build_world

pytestmark = [pytest.mark.clock,  # re-run on several pinned days by `make test-days`
              pytest.mark.usefixtures("cheap_hashing")]


@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    database = tmp_path / "market.db"
    load_sqlite(database, rows=120, seed=71)
    return build_world(database, tmp_path)


@pytest.fixture
def desk(hub_home: Path) -> Iterator[dict[str, str]]:
    """Agencies, a conditional and a not-shared resource (no data needed for paperwork), and people."""
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.catalog.resources import add_resource
    from registry.people.users import add_user

    admin = console("test")
    with session_scope() as session:
        for code, name in (PROVIDER, CONSUMER, OTHER_PROVIDER, OFFICE):
            ensure_agency(session, code, name)
        conditional = add_resource(session, name="企业纳税信用信息", agency=PROVIDER[0], classification="101001",
                                   sharing_type="conditional", sharing_condition="限于行政审批核验", actor="test")
        closed = add_resource(session, name="涉密企业名录", agency=PROVIDER[0], classification="101002",
                              sharing_type="not_shared", sharing_condition="《中华人民共和国保守国家秘密法》第九条",
                              actor="test")
        for username, agency, roles in (("prov", PROVIDER[0], ["data_admin"]), ("cons", CONSUMER[0], ["data_admin"]),
                                        ("cat", CONSUMER[0], ["cataloguer"]), ("office", OFFICE[0],
                                                                              ["coordination_office"])):
            add_user(session, username=username, agency=agency, roles=roles, password=PASSWORD, by=admin)
        codes = {"conditional": conditional.code, "closed": closed.code}
        publish_entry(session, conditional.code, columns=("uscc", "name", "credit_level", "address"))
        publish_entry(session, closed.code)
    yield codes


def _as(session, username: str):  # noqa: ANN001, ANN202
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    return user_principal(get_user(session, username=username))


def _apply(session, code: str, *, when: datetime, items: list[str] | None = None):  # noqa: ANN001, ANN202
    from registry.sharing.applications import apply

    return apply(session, resource_code=code, consumer=CONSUMER[0], scope="本市企业", purpose="行政审批核验",
                 items=items or ["uscc", "name", "credit_level"], by=_as(session, "cons"), submitted_at=when)


def test_ten_working_days_run_across_national_day_with_reminder_and_overdue_flag(desk: dict[str, str]) -> None:
    from registry.sharing.applications import check_deadlines, inbox
    from registry.people.auth import console
    from registry.db import session_scope

    with session_scope() as session:
        # 10:00 in Shanghai on 30 September 2026; 1-7 October are holidays, Saturday 10 October is a working day.
        application = _apply(session, desk["conditional"], when=datetime(2026, 9, 30, 2, 0, tzinfo=timezone.utc))
        late_night = _apply(session, desk["conditional"], when=datetime(2026, 9, 30, 17, 0, tzinfo=timezone.utc))
        number = application.number
        assert application.received_on == date(2026, 9, 30) and application.due_on == date(2026, 10, 20)
        assert number.startswith("XQSQ-20260930-")
        # 01:00 on 1 October in Shanghai: received on a holiday, the clock starts the same way.
        assert late_night.received_on == date(2026, 10, 1) and late_night.due_on == date(2026, 10, 20)
    office = console("scheduler")
    with session_scope() as session:
        assert check_deadlines(session, today=date(2026, 10, 15), by=office) == []  # 3 working days left
        assert (number, "reminder") in check_deadlines(session, today=date(2026, 10, 16), by=office)
        assert check_deadlines(session, today=date(2026, 10, 20), by=office) == []  # reminded once only
        assert (number, "overdue") in check_deadlines(session, today=date(2026, 10, 21), by=office)
        assert check_deadlines(session, today=date(2026, 10, 22), by=office) == []
        office_inbox = [m.message for m in inbox(session, by=_as(session, "office"))]
        provider_inbox = [m.message for m in inbox(session, by=_as(session, "prov"))]
        consumer_inbox = [m.message for m in inbox(session, by=_as(session, "cons"))]
    assert any(number in m and "超过" in m and "2026年10月20日" in m for m in office_inbox)
    assert any(number in m and "2026年10月20日前答复" in m for m in provider_inbox)
    assert not any("超过" in m for m in consumer_inbox)


def test_the_2025_clock_and_a_recorded_receipt_restart_the_deadline(desk: dict[str, str]) -> None:
    from core.errors import AccessDenied
    from registry.sharing.applications import record_receipt
    from registry.db import session_scope

    with session_scope() as session:
        # Sunday 28 September 2025 was a working day; National Day ran 1-8 October, Saturday 11 October worked.
        application = _apply(session, desk["conditional"], when=datetime(2025, 9, 28, 1, 0, tzinfo=timezone.utc))
        assert application.due_on == date(2025, 10, 17)
        with pytest.raises(AccessDenied):
            record_receipt(session, number=application.number, received_on=date(2025, 9, 30), by=_as(session, "cons"))
        record_receipt(session, number=application.number, received_on=date(2025, 9, 30), by=_as(session, "prov"))
        assert application.due_on == date(2025, 10, 21)


def test_a_receipt_cannot_be_recorded_for_a_day_still_to_come(desk: dict[str, str]) -> None:
    """Recording the written form as arriving next month would push the 10-working-day clock out at will."""
    from core import clock
    from core.errors import ConfigError
    from registry.sharing.applications import record_receipt
    from registry.db import session_scope

    with session_scope() as session:
        application = _apply(session, desk["conditional"], when=clock.now())
        due = application.due_on
        with pytest.raises(ConfigError, match="晚于今天"):
            record_receipt(session, number=application.number, received_on=clock.today() + timedelta(days=30),
                           by=_as(session, "prov"))
        assert application.due_on == due and application.received_on == clock.today()
        record_receipt(session, number=application.number, received_on=clock.today(), by=_as(session, "prov"))


def test_decisions_need_reasons_and_the_provider(desk: dict[str, str]) -> None:
    from core.errors import AccessDenied, ConfigError
    from registry.sharing.applications import decide
    from registry.db import session_scope

    with session_scope() as session:
        number = _apply(session, desk["conditional"], when=clock.now()).number
        with pytest.raises(ConfigError, match="reasons"):
            decide(session, number=number, outcome="refuse", reasons=" ", by=_as(session, "prov"))
        for outsider in ("cons", "cat", "office"):
            with pytest.raises(AccessDenied) as refused:
                decide(session, number=number, outcome="approve", reasons="同意", by=_as(session, outsider))
            assert "提供方" in refused.value.zh and "provider" in refused.value.en
        with pytest.raises(ConfigError, match="not applied for"):
            decide(session, number=number, outcome="partial", approved_items=["address"], reasons="x",
                   by=_as(session, "prov"))
        decided = decide(session, number=number, outcome="refuse", reasons="该数据项涉及纳税秘密，不予共享",
                         by=_as(session, "prov"))
        assert decided.status == "refused" and decided.grant_id is None
        with pytest.raises(ConfigError, match="dispute"):
            decide(session, number=number, outcome="approve", reasons="改为同意", by=_as(session, "prov"))


def test_a_dispute_conclusion_becomes_the_decision(desk: dict[str, str]) -> None:
    from core.errors import AccessDenied, ConfigError
    from registry.sharing.applications import decide, get_application
    from registry.db import session_scope
    from registry.sharing.disputes import conclude_dispute, open_dispute
    from registry.sharing.grants import get_grant
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        number = _apply(session, desk["conditional"], when=clock.now()).number
        decision = decide(session, number=number, outcome="approve", approved_items=["uscc", "name"],
                          reasons="信用等级属于内部评价", by=_as(session, "prov"))
        assert decision.status == "partial"
        first_grant = decision.grant_id
        assert get_grant(session, grant_id=first_grant).columns == ["uscc", "name"]
        with pytest.raises(AccessDenied):
            open_dispute(session, number=number, grounds="需要信用等级", by=_as(session, "prov"))
        dispute = open_dispute(session, number=number, grounds="审批核验需要信用等级", by=_as(session, "cons"))
        assert get_application(session, number=number).status == "disputed"
        for not_office in ("prov", "cons"):
            with pytest.raises(AccessDenied) as refused:
                conclude_dispute(session, dispute_id=dispute.id, outcome="approve", conclusion="同意",
                                 by=_as(session, not_office))
            assert "领导小组办公室" in refused.value.zh
        concluded = conclude_dispute(session, dispute_id=dispute.id, outcome="approve",
                                     conclusion="信用等级为审批核验所必需，应予共享", by=_as(session, "office"))
        application = get_application(session, number=number)
        assert concluded.outcome == "approved" and application.status == "approved"
        assert application.approved_items == ["uscc", "name", "credit_level"]
        assert "协调结论" in application.reasons and application.decided_by == "user:office"
        new_grant = get_grant(session, grant_id=application.grant_id)
        assert new_grant.origin == "dispute" and new_grant.columns == ["uscc", "name", "credit_level"]
        assert get_grant(session, grant_id=first_grant).status == "superseded"
        with pytest.raises(ConfigError, match="already concluded"):
            conclude_dispute(session, dispute_id=dispute.id, outcome="refuse", conclusion="x",
                             by=_as(session, "office"))
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.resource_code == desk["conditional"])
                                  .order_by(AuditEvent.id)).all()
    assert actions[-5:] == ["dispute.open", "grant.create", "grant.activate", "application.decide", "dispute.conclude"]


def test_not_shared_is_never_granted_and_says_why(desk: dict[str, str]) -> None:
    from core.errors import AccessDenied
    from registry.sharing.applications import apply
    from registry.db import session_scope
    from registry.sharing.grants import create_grant
    from registry.audit.models import AuditEvent
    from registry.catalog.models import Resource
    from registry.sharing.subscriptions import subscribe

    basis = "保守国家秘密法》第九条"
    with session_scope() as session:
        with pytest.raises(AccessDenied) as asked:
            subscribe(session, resource_code=desk["closed"], agency=CONSUMER[0], purpose="核验",
                      by=_as(session, "cons"))
        assert basis in asked.value.zh and basis in asked.value.en and "not shared" in asked.value.en
    with session_scope() as session:
        with pytest.raises(AccessDenied) as applied:
            apply(session, resource_code=desk["closed"], consumer=CONSUMER[0], scope="全部", purpose="核验",
                  items=["name"], by=_as(session, "cons"))
        assert basis in applied.value.zh and "不予共享" in applied.value.zh and basis in applied.value.en
    with session_scope() as session:
        resource = session.scalar(select(Resource).where(Resource.code == desk["closed"]))
        from registry.people.agencies import get_agency
        from registry.people.auth import console

        with pytest.raises(AccessDenied, match="never be granted"):
            create_grant(session, resource=resource, agency=get_agency(session, ref=CONSUMER[0]),
                         origin="application", purpose="核验", by=console("test"))
    with session_scope() as session:
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.resource_code == desk["closed"],
                                                            AuditEvent.result == "denied")).all()
        assert [e.action for e in refusals] == ["subscription.add", "application.submit"]
        assert all(basis in e.detail["reason"] and e.agency_code == CONSUMER[0] for e in refusals)


def test_secrecy_agreement_gates_the_grant(world: World, tmp_path: Path) -> None:
    from core.errors import AccessDenied
    from delivery.access import authorize_read
    from registry.sharing.agreements import add_agreement, revoke_agreement, set_sensitivity
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.sharing.grants import live_grant
    from registry.catalog.resources import get_resource
    from registry.sharing.subscriptions import subscribe
    from registry.people.users import add_user

    code, admin, token = world.resources["unconditional"], console("test"), world.tokens["system:other"]
    with session_scope() as session:
        set_sensitivity(session, resource_code=code, commercial_secret=True, by=admin)
        add_user(session, username="other-admin", agency=OTHER_PROVIDER[0], roles=["agency_admin"],
                 password=PASSWORD, by=admin)
        subscribe(session, resource_code=code, agency=OTHER_PROVIDER[0], purpose="市场监管协同",
                  by=_as(session, "other-admin"))
        grant = live_grant(session, resource=get_resource(session, code=code),
                           agency_id=_as(session, "other-admin").agency_id)
        assert grant.status == "pending_agreement"
    with session_scope() as session, pytest.raises(AccessDenied) as refused:
        authorize_read(session, token=token, resource_code=code, channel="file")
    assert "保密协议" in refused.value.zh and "secrecy agreement" in refused.value.en

    scan = tmp_path / "协议扫描件.pdf"
    scan.write_bytes(b"%PDF-1.4 signed " * 100)
    with session_scope() as session:
        expired = add_agreement(session, resource_code=code, consumer=OTHER_PROVIDER[0], parties=["甲", "乙"],
                                signed_on=date(2024, 1, 1), valid_until=date(2024, 12, 31), scan=scan, by=admin)
        assert expired.scan_sha256 == hashlib.sha256(scan.read_bytes()).hexdigest()
    with session_scope() as session, pytest.raises(AccessDenied):
        authorize_read(session, token=token, resource_code=code, channel="file")  # a lapsed term activates nothing
    from core import clock
    from core.errors import ConfigError

    with session_scope() as session:  # an agreement is recorded once signed: a day still to come is refused
        with pytest.raises(ConfigError, match="晚于今天"):
            add_agreement(session, resource_code=code, consumer=OTHER_PROVIDER[0], parties=["甲", "乙"],
                          signed_on=clock.today() + timedelta(days=30), valid_until=date(2030, 1, 4), scan=scan,
                          by=admin)
        with pytest.raises(ConfigError, match="早于签订日期"):  # said in Chinese too
            add_agreement(session, resource_code=code, consumer=OTHER_PROVIDER[0], parties=["甲", "乙"],
                          signed_on=date(2026, 1, 5), valid_until=date(2025, 1, 4), scan=scan, by=admin)
    with session_scope() as session, pytest.raises(AccessDenied, match="提供方"):
        # the consumer cannot open its own grant with an agreement of its own: the provider's side records it
        add_agreement(session, resource_code=code, consumer=OTHER_PROVIDER[0],
                      parties=[PROVIDER[1], OTHER_PROVIDER[1]], signed_on=date(2026, 1, 5),
                      valid_until=date(2030, 1, 4), scan=scan, by=_as(session, "other-admin"))
    with session_scope() as session:
        agreement = add_agreement(session, resource_code=code, consumer=OTHER_PROVIDER[0],
                                  parties=[PROVIDER[1], OTHER_PROVIDER[1]], signed_on=date(2026, 1, 5),
                                  valid_until=date(2030, 1, 4), scan=scan, by=_as(session, "provider-data_admin"))
        number = agreement.number
    with session_scope() as session:
        decision = authorize_read(session, token=token, resource_code=code, channel="file")
        assert decision.grant_id and decision.purpose == "市场监管协同"
    from core.storage import get_storage

    assert get_storage().pull(agreement.scan_path).read_bytes() == scan.read_bytes()
    with session_scope() as session:
        revoke_agreement(session, number=number, reason="协议终止", by=admin)
    with session_scope() as session, pytest.raises(AccessDenied) as ended:
        authorize_read(session, token=token, resource_code=code, channel="interface")
    assert "secrecy agreement has ended" in ended.value.en


def test_article_17_external_use_is_its_own_application(world: World) -> None:
    from core.errors import AccessDenied
    from registry.sharing.applications import apply, decide
    from registry.db import session_scope
    from registry.sharing.grants import get_grant

    code = world.resources["conditional"]
    with session_scope() as session:
        consumer = _as(session, "consumer-data_admin")
        external = apply(session, resource_code=code, consumer=CONSUMER[0], scope="向社会公开统计结果",
                         purpose="发布企业存续情况统计", items=["status"], kind="external", by=consumer)
        assert external.number.startswith("DWFB-")
        with pytest.raises(Exception, match="not in your grant"):
            apply(session, resource_code=code, consumer=CONSUMER[0], scope="x", purpose="y", items=["reg_capital"],
                  kind="external", by=consumer)
        decided = decide(session, number=external.number, outcome="approve", reasons="同意发布统计结果",
                         by=_as(session, "provider-data_admin"))
        grant = get_grant(session, grant_id=decided.grant_id)
        assert grant.external_use and grant.columns == APPROVED_ITEMS and "发布企业存续情况统计" in grant.purpose
    with session_scope() as session, pytest.raises(AccessDenied, match="no active grant"):
        apply(session, resource_code=world.resources["pending"], consumer=CONSUMER[0], scope="x", purpose="y",
              items=["id"], kind="external", by=_as(session, "consumer-data_admin"))


def test_revoking_a_grant_refuses_the_very_next_request(world: World) -> None:
    code = world.resources["conditional"]
    with running_api() as api:
        def download() -> requests.Response:
            return requests.get(f"{api.base_url}/api/v1/resources/{code}/files", timeout=30,
                                headers=bearer(world.tokens["system:consumer"]))

        assert download().status_code == 200
        grants = requests.get(f"{api.base_url}/api/v1/grants", timeout=30,
                              headers=bearer(world.tokens["provider:data_admin"])).json()
        grant = next(g for g in grants if g["resource_code"] == code and g["status"] == "active")
        assert grant["columns"] == APPROVED_ITEMS
        refused = requests.post(f"{api.base_url}/api/v1/grants/{grant['id']}/revoke", json={"reason": "x"},
                                headers=bearer(world.tokens["provider:cataloguer"]), timeout=30)
        assert refused.status_code == 403 and refused.json()["detail_zh"]
        from registry.db import session_scope
        from registry.audit.models import AuditEvent

        with session_scope() as session:  # the refused attempt is on the record, with who and what
            attempt = session.scalars(select(AuditEvent).where(AuditEvent.action == "request.refused")).one()
            assert attempt.actor == "user:provider-cataloguer" and attempt.result == "denied"
            assert attempt.detail["path"] == f"/api/v1/grants/{grant['id']}/revoke"
            assert "only the provider" in attempt.detail["reason"]
        revoked = requests.post(f"{api.base_url}/api/v1/grants/{grant['id']}/revoke",
                                json={"reason": "超出共享用途使用"}, timeout=30,
                                headers=bearer(world.tokens["provider:data_admin"]))
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        after = download()
        assert after.status_code == 403 and "was revoked on" in after.json()["detail"]
        # A system token revoked through the API is refused on its next request too (401).
        tokens = requests.post(f"{api.base_url}/api/v1/tokens", json={"agency": CONSUMER[0], "name": "batch"},
                               headers=bearer(world.tokens["consumer:agency_admin"]), timeout=30)
        assert tokens.status_code == 201
        fresh = tokens.json()["token"]
        assert requests.get(f"{api.base_url}/api/v1/me", headers=bearer(fresh), timeout=30).status_code == 200
        from registry.db import session_scope
        from registry.people.tokens import list_tokens

        with session_scope() as session:
            token_id = next(t.id for t in list_tokens(session) if t.name == "batch")
        assert requests.delete(f"{api.base_url}/api/v1/tokens/{token_id}", timeout=30,
                               headers=bearer(world.tokens["consumer:agency_admin"])).status_code == 204
        gone = requests.get(f"{api.base_url}/api/v1/me", headers=bearer(fresh), timeout=30)
        assert gone.status_code == 401 and "revoked" in gone.json()["detail"]


def test_the_application_form_is_a_chinese_pdf_with_its_number(world: World) -> None:
    from registry.sharing.application_form import render_form
    from registry.sharing.applications import get_application
    from registry.db import session_scope
    from registry.supervision.due_days import due_text

    with session_scope() as session:
        application = get_application(session, number=world.application)
        pdf = render_form(application)
        due = due_text(application.due_on)
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("上海市政务数据资源共享需求申请表", world.application, "上海市人力资源和社会保障局",
                     "上海市市场监督管理局", "社保登记核验", "本市存续企业", "legal_rep_id", "reg_capital", due,
                     "10个工作日"):
        assert expected in text, expected
    with running_api() as api:
        response = requests.get(f"{api.base_url}/api/v1/applications/{world.application}/form.pdf", timeout=30,
                                headers=bearer(world.tokens["consumer:data_admin"]))
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        assert world.application in pypdf.PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
        stranger = requests.get(f"{api.base_url}/api/v1/applications/{world.application}/form.pdf", timeout=30,
                                headers=bearer(world.tokens["other:data_admin"]))
        assert stranger.status_code == 403


def test_failed_logins_are_rate_limited_and_audited(desk: dict[str, str]) -> None:
    from core.errors import AuthenticationFailed
    from registry.db import session_scope
    from registry.audit.models import AuditEvent
    from registry.people.models import User
    from registry.people.users import MAX_FAILURES, login

    with running_api() as api:
        url = f"{api.base_url}/api/v1/auth/login"
        answers = []
        for _ in range(MAX_FAILURES):
            wrong = requests.post(url, json={"username": "cons", "password": "not-the-password"}, timeout=30)
            assert wrong.status_code == 401 and "wrong username or password" in wrong.json()["detail"]
            answers.append(wrong.json())
        assert [a["detail_zh"].split("。")[1][:6] for a in answers[:-1]] == ["还可尝试4次", "还可尝试3次", "还可尝试2次",
                                                                           "还可尝试1次"]
        assert "账户锁定15分钟" in answers[-1]["detail_zh"]  # the fifth says the account is now locked
        locked = requests.post(url, json={"username": "cons", "password": PASSWORD}, timeout=30)
        assert locked.status_code == 401 and "too many failed logins" in locked.json()["detail"]
        assert "分钟后再试" in locked.json()["detail_zh"]
        # no hint which usernames exist: an unknown name gets the same answers, try by try
        unknown = [requests.post(url, json={"username": "nobody", "password": PASSWORD}, timeout=30).json()
                   for _ in range(MAX_FAILURES + 1)]
        assert [u["detail"] for u in unknown[:MAX_FAILURES]] == [a["detail"] for a in answers]
        assert unknown[-1]["detail"] == locked.json()["detail"]
        with session_scope() as session:
            user = session.scalar(select(User).where(User.username == "cons"))
            assert user.password_hash.startswith("scrypt$") and PASSWORD not in user.password_hash
            user.locked_until = clock.now() - timedelta(seconds=1)  # the lock has run out
        ok = requests.post(url, json={"username": "cons", "password": PASSWORD}, timeout=30)
        assert ok.status_code == 200
        me = requests.get(f"{api.base_url}/api/v1/me", headers=bearer(ok.json()["token"]), timeout=30).json()
        assert me == {"kind": "user", "name": "cons", "agency_code": CONSUMER[0], "roles": ["data_admin"]}
    with session_scope() as session:
        results = session.scalars(select(AuditEvent.result).where(AuditEvent.action == "user.login")
                                  .order_by(AuditEvent.id)).all()
        assert results == ["denied"] * (2 * MAX_FAILURES + 2) + ["ok"]
        with pytest.raises(AuthenticationFailed):
            login(session, username="cons", password="short")


def test_an_expired_grant_is_refused_and_unmasking_is_the_providers_choice(world: World) -> None:
    from core.errors import AccessDenied
    from delivery.access import authorize_read
    from registry.sharing.applications import decide
    from registry.db import session_scope

    from datetime import timedelta

    from core import clock
    from tests.clock import pinned

    with session_scope() as session:  # a term that has ended is refused when set: this one ends today
        decide(session, number=world.pending_application, outcome="approve", reasons="同意执法检查使用",
               expires_on=clock.today(), by=_as(session, "provider-agency_admin"))
    with pinned(clock.now() + timedelta(days=2)), session_scope() as session, \
            pytest.raises(AccessDenied) as refused:
        authorize_read(session, token=world.tokens["system:consumer"], resource_code=world.resources["pending"],
                       channel="interface")
    assert "grant" in refused.value.en and "expired" in refused.value.en and "到期" in refused.value.zh

    from registry.sharing.applications import apply

    with session_scope() as session:
        again = apply(session, resource_code=world.resources["conditional"], consumer=CONSUMER[0], scope="本市存续企业",
                      purpose="社保登记核验（含法定代表人比对）", items=["id", "legal_rep_id"],
                      by=_as(session, "consumer-data_admin"))
        decide(session, number=again.number, outcome="approve", reasons="比对需要身份证号码", unmask=True,
               by=_as(session, "provider-data_admin"))
    with session_scope() as session:
        browse = authorize_read(session, token=world.tokens["system:consumer"],
                                resource_code=world.resources["conditional"], channel="browse")
        assert browse.mask_columns == [] and browse.columns == ["id", "legal_rep_id"] and browse.row_filter is None


def test_citizen_ids_named_by_the_data_contract_are_masked_on_every_channel(world: World) -> None:
    from delivery.access import CHANNELS, authorize_read, restrict
    from delivery.files import iter_batches
    from registry.db import session_scope
    from registry.exchange.contracts import attach_contract

    code = world.resources["unconditional"]
    with session_scope() as session:
        attach_contract(session, resource_code=code, name="enterprises", actor="test")
    with session_scope() as session:
        seen = {channel: authorize_read(session, token=world.tokens["system:consumer"], resource_code=code,
                                        channel=channel) for channel in CHANNELS}
        owner = authorize_read(session, token=world.tokens["system:provider"], resource_code=code, channel="file")
        assert all(d.mask_columns == ["legal_rep_id"] for d in seen.values()) and owner.mask_columns == []
        shown = next(restrict(seen["file"], iter_batches(seen["file"].version))).column("legal_rep_id").to_pylist()
        plain = next(restrict(owner, iter_batches(owner.version))).column("legal_rep_id").to_pylist()
    assert all(s == p[:3] + "****" + p[-2:] for s, p in zip(shown, plain, strict=True))
    assert not set(shown) & set(plain)


def test_the_workflow_through_the_api(world: World, tmp_path: Path) -> None:
    from core.calendar.due_days import DECISION_WORKING_DAYS, due_after

    code = world.resources["pending"]
    consumer, provider = world.tokens["consumer:data_admin"], world.tokens["provider:data_admin"]
    with running_api() as api:
        def call(method: str, path: str, token: str, **kwargs: object) -> requests.Response:
            return requests.request(method, f"{api.base_url}/api/v1{path}", headers=bearer(token), timeout=30,
                                    **kwargs)

        submitted = call("POST", "/applications", consumer, json={
            "resource_code": code, "scope": "本市企业", "purpose": "执法检查", "items": ["id", "name", "address"],
            "row_filter": {"column": "industry", "op": "ne", "value": "农业"}})
        assert submitted.status_code == 201, submitted.text
        number = submitted.json()["number"]
        received, due = date.fromisoformat(submitted.json()["received_on"]), submitted.json()["due_on"]
        expected = due_after(received, DECISION_WORKING_DAYS)[0]  # None while that year has no schedule
        assert due == (expected.isoformat() if expected else None) and (due is None or due > received.isoformat())
        bad = call("POST", "/applications", consumer, json={"resource_code": code, "scope": "x", "purpose": "y",
                                                             "items": ["no_such_column"]})
        assert bad.status_code == 400 and "no_such_column" in bad.json()["detail"]
        assert call("POST", f"/applications/{number}/decision", world.tokens["provider:cataloguer"],
                    json={"outcome": "approve", "reasons": "同意"}).status_code == 403
        decided = call("POST", f"/applications/{number}/decision", provider,
                       json={"outcome": "partial", "approved_items": ["id", "name"], "reasons": "住所不予提供"})
        assert decided.json()["status"] == "partial" and decided.json()["grant_id"]
        provider_inbox = call("GET", "/inbox", provider).json()
        assert any(number in m["message"] for m in provider_inbox)
        dispute = call("POST", f"/applications/{number}/disputes", consumer, json={"grounds": "执法需要住所"})
        assert dispute.status_code == 201
        office = requests.post(f"{api.base_url}/api/v1/auth/login", timeout=30,
                               json={"username": "office", "password": PASSWORD}).json()["token"]
        concluded = call("POST", f"/disputes/{dispute.json()['id']}/conclusion", office,
                         json={"outcome": "approve", "conclusion": "住所为执法检查所必需"})
        assert concluded.status_code == 200 and concluded.json()["approved_items"] == ["id", "name", "address"]

        review = call("PUT", f"/resources/{code}/secrecy-review", provider,
                      json={"personal_privacy": True, "personal_columns": ["name"]})
        assert review.status_code == 200 and review.json()["involves_secrets"] is True
        # Marked as involving personal privacy after the grant: reads stop until an agreement is recorded.
        download = call("GET", f"/resources/{code}/files", world.tokens["system:consumer"])
        assert download.status_code == 403 and "secrecy agreement" in download.json()["detail"]

        scan = tmp_path / "协议.pdf"
        scan.write_bytes(b"%PDF-1.4 signed agreement")
        agreement = requests.post(f"{api.base_url}/api/v1/agreements", headers=bearer(provider), timeout=30,
                                  data={"resource_code": code, "consumer": CONSUMER[0], "parties": ["甲方", "乙方"],
                                        "signed_on": "2026-01-05", "valid_until": "2029-01-04"},
                                  files={"scan": ("协议.pdf", scan.read_bytes(), "application/pdf")})
        assert agreement.status_code == 201, agreement.text
        assert agreement.json()["scan_sha256"] == hashlib.sha256(scan.read_bytes()).hexdigest()
        download = call("GET", f"/resources/{code}/files", world.tokens["system:consumer"], params={"format": "csv"})
        assert download.status_code == 200
        assert download.text.lstrip("\ufeff").splitlines()[0].replace('"', "") == "id,name,address"
        revoked = call("POST", f"/grants/{concluded.json()['grant_id']}/revoke", world.tokens["consumer:agency_admin"],
                       json={"reason": "执法检查结束"})
        assert revoked.status_code == 200
        assert call("GET", f"/resources/{code}/files", world.tokens["system:consumer"]).status_code == 403

        assert call("GET", "/audit/verify", consumer).status_code == 403
        commission = requests.post(f"{api.base_url}/api/v1/auth/login", timeout=30,
                                   json={"username": "commission", "password": PASSWORD}).json()["token"]
        verified = call("GET", "/audit/verify", commission).json()
        assert verified["ok"] is True and verified["count"] > 50
        from core.clock import today as beijing_today

        today = beijing_today().isoformat()
        exported = call("GET", "/audit/export", commission, params={"from": today, "to": today})
        assert exported.status_code == 200
        lines = exported.text.splitlines()
        assert int(exported.headers["X-Govshare-Count"]) == len(lines)
        assert exported.headers["X-Govshare-Last-Hash"] == verified["last_hash"]
        actions = {__import__("json").loads(line)["action"] for line in lines}
        assert {"application.submit", "application.decide", "dispute.open", "dispute.conclude", "grant.revoke",
                "agreement.add", "resource.secrecy_review", "data.read", "user.login"} <= actions
