"""Correcting the recorded arrival of an application's written form (更正收件日期, article 14): the receipt is
recorded once (a second one would restart the 10-working-day clock at will), so a receipt entered for the
wrong day stayed wrong, and with it the day the answer is due. The provider's staff or the platform operator
now correct it with a reason; the correction is audited with the old and the new day and the due day follows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from typer.testing import CliRunner

from core import clock
from tests.clock import on, pinned
from tests.helpers import running_api
from tests.sharing_world import OFFICE, PASSWORD
from tests.test_sharing_workflows import _apply, _as, desk  # noqa: F401 - desk is a fixture

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]

SUBMITTED = datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)  # Monday 2 November, 10:00 in Shanghai
TODAY = date(2026, 11, 6)


def _with_operator(session) -> None:  # noqa: ANN001 - Session
    from registry.people.auth import console
    from registry.people.users import add_user

    add_user(session, username="ops", agency=OFFICE[0], roles=["operator"], password=PASSWORD, by=console("test"))


def test_a_receipt_entered_for_the_wrong_day_is_corrected_with_a_reason_and_audited(
        desk: dict[str, str]) -> None:  # noqa: F811
    from sqlalchemy import select

    from core.calendar.due_days import DECISION_WORKING_DAYS, due_after
    from core.errors import AccessDenied, ConfigError
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from registry.sharing.applications import correct_receipt, record_receipt

    with pinned(on(TODAY)), session_scope() as session:
        _with_operator(session)
        number = _apply(session, desk["conditional"], when=SUBMITTED).number
        with pytest.raises(ConfigError, match="apply receive"):  # nothing recorded yet: record it, not correct it
            correct_receipt(session, number=number, received_on=date(2026, 11, 3), reason="误录",
                            by=_as(session, "prov"))
        record_receipt(session, number=number, received_on=date(2026, 11, 5), by=_as(session, "prov"))
        with pytest.raises(ConfigError, match="理由"):
            correct_receipt(session, number=number, received_on=date(2026, 11, 3), reason=" ", by=_as(session, "prov"))
        with pytest.raises(ConfigError, match="早于提交"):
            correct_receipt(session, number=number, received_on=date(2026, 11, 1), reason="误录",
                            by=_as(session, "prov"))
        with pytest.raises(ConfigError, match="晚于今天"):
            correct_receipt(session, number=number, received_on=TODAY + timedelta(days=1), reason="误录",
                            by=_as(session, "prov"))
        with pytest.raises(AccessDenied, match="提供方"):  # the consumer cannot move the provider's clock
            correct_receipt(session, number=number, received_on=date(2026, 11, 3), reason="误录",
                            by=_as(session, "cons"))
        corrected = correct_receipt(session, number=number, received_on=date(2026, 11, 3),
                                    reason="纸质件签收日登记错误", by=_as(session, "prov"))
        assert corrected.received_on == date(2026, 11, 3)
        assert corrected.due_on == due_after(date(2026, 11, 3), DECISION_WORKING_DAYS)[0]
        again = correct_receipt(session, number=number, received_on=date(2026, 11, 4), reason="核对签收单后更正",
                                by=_as(session, "ops"))  # the platform operator may correct it too
        assert again.received_on == date(2026, 11, 4)
        events = [(e.actor, e.detail) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "application.receipt_correct").order_by(AuditEvent.id))]
    assert [(actor, d["from"], d["to"], d["reason"]) for actor, d in events] == [
        ("user:prov", "2026-11-05", "2026-11-03", "纸质件签收日登记错误"),
        ("user:ops", "2026-11-03", "2026-11-04", "核对签收单后更正")]


def test_a_receipt_is_corrected_from_the_command_line_and_the_api(desk: dict[str, str]) -> None:  # noqa: F811
    from cli.main import app
    from registry.db import session_scope
    from registry.sharing.applications import get_application, record_receipt

    today = clock.today()
    with session_scope() as session:
        number = _apply(session, desk["conditional"], when=clock.now() - timedelta(days=3)).number
        record_receipt(session, number=number, received_on=today, by=_as(session, "prov"))
    result = CliRunner().invoke(app, ["apply", "correct-receipt", number, "--on", str(today - timedelta(days=1)),
                                      "--reason", "登记错误", "--as", "prov"])
    assert result.exit_code == 0, result.output
    assert str(today - timedelta(days=1)) in result.output
    refused = CliRunner().invoke(app, ["apply", "correct-receipt", number, "--on", str(today), "--as", "prov"])
    assert refused.exit_code != 0  # the reason is required
    with running_api() as api:
        token = requests.post(f"{api.base_url}/api/v1/auth/login", json={"username": "prov", "password": PASSWORD},
                              timeout=30).json()["token"]
        answer = requests.post(f"{api.base_url}/api/v1/applications/{number}/receipt/correction",
                               json={"received_on": str(today - timedelta(days=2)), "reason": "核对后更正"},
                               headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["received_on"] == str(today - timedelta(days=2))
        blank = requests.post(f"{api.base_url}/api/v1/applications/{number}/receipt/correction",
                              json={"received_on": str(today), "reason": ""},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert blank.status_code == 400, blank.text
    with session_scope() as session:
        assert get_application(session, number=number).received_on == today - timedelta(days=2)
