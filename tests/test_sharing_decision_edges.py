"""Edges of a decision and of its dispute (article 14): a partial approval names its items, a disputed partial
approval stands (and is no baseless grant) until the conclusion, and the conclusion keeps the provider's term."""

from __future__ import annotations

from datetime import date

import pytest

from core import clock
from tests.test_sharing_workflows import _apply, _as, desk  # noqa: F401 - desk is a fixture

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]


def test_a_partial_approval_without_items_is_refused_not_an_approval_of_all(desk: dict[str, str]) -> None:  # noqa: F811
    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.sharing.applications import decide, get_application

    with session_scope() as session:
        number = _apply(session, desk["conditional"], when=clock.now()).number
        for outcome, items in (("partial", None), ("partial", []), ("approve", [])):
            with pytest.raises(ConfigError, match="数据项"):
                decide(session, number=number, outcome=outcome, approved_items=items, reasons="部分同意",
                       by=_as(session, "prov"))
        application = get_application(session, number=number)
        assert application.status == "submitted" and application.grant_id is None


def test_a_providers_term_already_ended_is_refused_not_a_grant_expired_from_the_start(
        desk: dict[str, str]) -> None:  # noqa: F811
    """A provider approving with a term that ended yesterday got an approval whose grant was expired from the
    start: the consumer was told it was granted and every read was refused. The term is refused, saying why,
    as a dispute conclusion's is; today is still a term."""
    from datetime import timedelta

    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.sharing.applications import decide, get_application

    with session_scope() as session:
        number = _apply(session, desk["conditional"], when=clock.now()).number
        with pytest.raises(ConfigError, match="早于今天") as refused:
            decide(session, number=number, outcome="approve", reasons="同意", by=_as(session, "prov"),
                   expires_on=clock.today() - timedelta(days=1))
        assert "already ended" in str(refused.value)
        assert get_application(session, number=number).status == "submitted"
        decide(session, number=number, outcome="approve", reasons="同意", by=_as(session, "prov"),
               expires_on=clock.today())
        assert get_application(session, number=number).status == "approved"


def _disputed_partial(session, code: str) -> str:  # noqa: ANN001 - Session
    from registry.sharing.applications import decide
    from registry.sharing.disputes import open_dispute

    number = _apply(session, code, when=clock.now()).number
    decide(session, number=number, outcome="partial", approved_items=["uscc"], reasons="名称不属于核验所需",
           expires_on=date(2027, 3, 31), unmask=["uscc"], by=_as(session, "prov"))
    open_dispute(session, number=number, grounds="核验需要企业名称", by=_as(session, "cons"))
    return number


def test_a_disputed_partial_approval_is_no_baseless_grant(desk: dict[str, str]) -> None:  # noqa: F811
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants

    with session_scope() as session:
        _disputed_partial(session, desk["conditional"])
        assert baseless_grants(session) == []


def test_a_dispute_conclusion_keeps_the_providers_term_and_unmasking(desk: dict[str, str]) -> None:  # noqa: F811
    from registry.db import session_scope
    from registry.sharing.applications import get_application, grant_for
    from registry.sharing.disputes import conclude_dispute, disputes_of

    with session_scope() as session:
        application = get_application(session, number=_disputed_partial(session, desk["conditional"]))
        conclude_dispute(session, dispute_id=disputes_of(session, application_id=application.id)[0].id,
                         outcome="approve", conclusion="企业名称为核验所必需", by=_as(session, "office"))
        grant = grant_for(session, application=application)
        assert grant.columns == ["uscc", "name", "credit_level"] and grant.origin == "dispute"
        assert clock.beijing_day(grant.expires_at) == date(2027, 3, 31)
        assert grant.unmasked_columns == ["uscc"]


def test_an_application_names_only_the_entrys_data_items(desk: dict[str, str]) -> None:  # noqa: F811
    from core.errors import ConfigError
    from registry.db import session_scope

    with session_scope() as session:
        with pytest.raises(ConfigError, match="没有数据项 tax_owed") as refused:
            _apply(session, desk["conditional"], when=clock.now(), items=["uscc", "tax_owed"])
        assert "credit_level" in str(refused.value)  # it names the items the entry offers


def test_the_written_forms_arrival_is_recorded_once_so_an_overdue_answer_stays_overdue(desk: dict[str, str]) -> None:  # noqa: F811
    """A second receipt would restart the 10-working-day clock again and again, and clear the overdue flag the
    coordination office was sent: the provider would never be late (申请答复及时率)."""
    from datetime import datetime, timezone

    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.applications import check_deadlines, record_receipt

    with session_scope() as session:
        application = _apply(session, desk["conditional"], when=datetime(2026, 5, 6, 2, 0, tzinfo=timezone.utc))
        record_receipt(session, number=application.number, received_on=date(2026, 5, 8), by=_as(session, "prov"))
        due = application.due_on
        assert (application.number, "overdue") in check_deadlines(session, today=clock.today(), by=console("daily"))
        with pytest.raises(ConfigError, match="已登记"):
            record_receipt(session, number=application.number, received_on=clock.today(), by=_as(session, "prov"))
        assert application.due_on == due and application.overdue_flagged_at is not None
