"""An application withdrawn after its due day passed unanswered (撤回共享申请): 申请答复及时率 counts it late
(registry/supervision/evaluation.py), and its 不提供共享 violation (``application_unanswered``) tells the same story:
it stays a violation, closed as 已终结（违规成立） on the withdrawal day, never 已消除 as if the provider had answered.
Small world on the real 2026 calendar, days worked out by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    received_applications,
)
from tests.helpers import PROVIDER

RECEIVED = date(2026, 11, 2)  # Monday; + 10 working days (two weekends skipped) = due Monday 11-16


def _unanswered(session) -> dict[str, tuple[str, date | None, str]]:  # number -> (status, resolved_on, note)
    from sqlalchemy import select

    from registry.supervision.models import Violation

    return {v.evidence["facts"]["number"]: (v.status, v.resolved_on, v.note)
            for v in session.scalars(select(Violation).where(Violation.kind == "application_unanswered"))}


def _violation_id(session, number: str) -> int:
    from sqlalchemy import select

    from registry.supervision.models import Violation

    return next(v.id for v in session.scalars(select(Violation).where(Violation.kind == "application_unanswered"))
                if v.evidence["facts"]["number"] == number)


def test_an_unanswered_application_withdrawn_after_its_due_day_stays_a_violation(catalog_home: Path) -> None:
    """The next detection after the withdrawal marked the violation 已消除 (the records no longer show it) while the
    metric counted the application late; one withdrawn before any detection saw it was never recorded at all."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.withdrawal import withdraw_application
    from registry.supervision.evaluation import evaluate
    from registry.supervision.rectification import check_orders, get_order, issue_order
    from registry.supervision.report import build_report
    from registry.supervision.violations import detect_violations
    from tests.clock import on, pinned

    seen, unseen, early = received_applications(RECEIVED, 3)

    def withdraw(number: str, day: date) -> None:
        with pinned(on(day)), session_scope() as session:
            withdraw_application(session, number=number, reason="久未答复，改用其他渠道", by=console("test"))

    def detect(day: date):  # noqa: ANN202 - DetectionReport
        with pinned(on(day)), session_scope() as session:
            report = detect_violations(session, as_of=day)
            return [v.kind for v in report.resolved], _unanswered(session)

    withdraw(early, date(2026, 11, 10))  # by its due day: nothing left to answer, never a violation
    withdraw(unseen, date(2026, 11, 17))  # the day after its due day, before that day's detection
    resolved, violations = detect(date(2026, 11, 17))
    assert violations[seen][0] == "open" and early not in violations
    assert violations[unseen][:2] == ("closed", date(2026, 11, 17)) and "撤回" in violations[unseen][2]

    with session_scope() as session:  # the supervisor orders an answer by Friday 11-20
        order = issue_order(session, violation_id=_violation_id(session, seen), requirement="答复共享申请",
                            by=console("test"), working_days=3, issued_on=date(2026, 11, 17)).number
    withdraw(seen, date(2026, 11, 18))
    resolved, violations = detect(date(2026, 11, 19))
    assert "application_unanswered" not in resolved
    assert violations[seen][:2] == ("closed", date(2026, 11, 18)), violations
    assert "2026-11-18" in violations[seen][2] or "2026年11月18日" in violations[seen][2]
    _, again = detect(date(2026, 11, 20))
    assert again == violations  # closed for good: neither reopened nor resolved later
    with pinned(on(date(2026, 11, 23))), session_scope() as session:  # nothing is left to answer: no refusal
        check_orders(session)
        assert (get_order(session, number=order).status, get_order(session, number=order).refusal_violation_id) \
            == ("fixed", None)

    with pinned(on(date(2026, 11, 25))), session_scope() as session:
        standing = evaluate(session, period="2026Q4").standing(PROVIDER[0])
        listed = [v for v in build_report(session, period="2026Q4").violations
                  if seen in v["summary"] or unseen in v["summary"]]
    assert standing.clocks["application"] == {"kept": 0, "missed": 2}  # the metric: both late, the early one left out
    assert len(listed) == 2 and {v["status"] for v in listed} == {"已终结（违规成立）"}, listed
