"""The figures the supervising office and agency staff read (评估与监督): every statutory clock due in a period is
counted in that period, also when it falls on the period's last day; a metric with nothing to measure says
无数据 on every surface; the figures are the same on the CLI, the API, the web page and the notice. Small
worlds on the real 2026 calendar, numbers worked out by hand in each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    entry_data,
    new_entry,
    publish,
    setup_people,
)
from tests.helpers import PROVIDER

SEEN_ON = date(2026, 11, 25)  # an ordinary Wednesday, after the third quarter


@pytest.fixture
def seen_later() -> Iterator[None]:
    from tests.clock import on, pinned

    with pinned(on(SEEN_ON)):
        yield


def _registered(session, *, classification: str, name: str, on: date) -> str:
    """An entry of the provider registered on `on` (Beijing)."""
    from sqlalchemy import select

    from registry.catalog.models import Resource
    from tests.clock import on as at

    code = new_entry(session, classification=classification, name=name)
    session.scalar(select(Resource).where(Resource.code == code)).created_at = at(on)
    return code


@pytest.mark.usefixtures("seen_later")
def test_an_update_due_on_the_last_day_of_a_period_counts_in_it(catalog_home: Path) -> None:
    """2026Q3 ends on Wednesday 30 September. An update that fell due that day and was never made, or made after
    the quarter, was counted in no period at all: 更新及时率 of the closed quarter said 100 % (1 / 1)."""
    from registry.catalog.obligations import open_update_obligation
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate

    with session_scope() as session:
        setup_people(session)
        kept = _registered(session, classification="101001", name="企业基本信息", on=date(2026, 9, 1))
        never = _registered(session, classification="101002", name="企业年报信息", on=date(2026, 9, 1))
        late = _registered(session, classification="101003", name="企业变更记录", on=date(2026, 9, 1))
        for code in (kept, never, late):
            publish(session, code, on=date(2026, 9, 2))
        # Friday 09-25: Saturday off, Sunday 09-27 off, due Tuesday 09-29; published that day: kept
        first = open_update_obligation(session, resource_code=kept, reason="信息项调整", actor="test",
                                       opened_on=date(2026, 9, 25))
        # Monday 09-28: due Wednesday 09-30, the quarter's last day; one never published, one published 10-09
        second = open_update_obligation(session, resource_code=never, reason="数据源结构变更", actor="test",
                                        opened_on=date(2026, 9, 28))
        third = open_update_obligation(session, resource_code=late, reason="数据源结构变更", actor="test",
                                       opened_on=date(2026, 9, 28))
        assert (first.due_on, second.due_on, third.due_on) == (date(2026, 9, 29), date(2026, 9, 30), date(2026, 9, 30))
        session.flush()
        from registry.catalog.entries import upsert_entry

        for code, day in ((kept, date(2026, 9, 29)), (late, date(2026, 10, 9))):
            upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", data=entry_data(
                classification=code[:6], name="更新后", abstract="调整后的摘要"))
            publish(session, code, on=day)
    with session_scope() as session:
        quarter = evaluate(session, period="2026Q3").standing(PROVIDER[0])
        month = evaluate(session, period="2026-09").standing(PROVIDER[0])
        october = evaluate(session, period="2026-10").standing(PROVIDER[0])
    # by hand: due 09-29 kept; due 09-30 never done and due 09-30 done 10-09 both missed
    assert quarter.counts["update_timeliness"] == [1, 3]
    assert quarter.clocks["update"] == {"kept": 1, "missed": 2}
    assert month.counts["update_timeliness"] == [1, 3]
    assert october.counts["update_timeliness"] == [0, 0]  # counted in the period it fell due in, once
    assert october.metrics["update_timeliness"] is None
