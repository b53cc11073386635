"""The catalogue's statutory clocks (articles 10, 16): update obligations due 2 working days after the change,
on the real 2025/2026 calendars and a 2027 day with and without an operator's schedule; overdue listings; the
yearly full maintenance."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from core.errors import ConfigError
from tests.catalog_helpers import (
    audit_actions,
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    entry_data,
    new_entry,
    publish,
    setup_people,
    without_schedules,
)
from tests.helpers import PROVIDER

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

EXAMPLE_2027 = Path(__file__).resolve().parents[1] / "core" / "calendar" / "schedules" / "2027.example.json"

# (day the change happened, due day): counted strictly after the day, holidays skipped, 调休 Saturdays worked.
REAL_DUE_DATES = [
    ("2025-01-27", "2025-02-06"),  # eve of Spring Festival 2025 (01-28..02-04 off)
    ("2025-01-25", "2025-01-27"),  # Saturday before: Sunday 01-26 is a 调休 working day
    ("2025-09-30", "2025-10-10"),  # before National Day 2025 (10-01..10-08 off)
    ("2025-10-04", "2025-10-10"),  # during the holiday
    ("2025-10-09", "2025-10-11"),  # Saturday 10-11 is a 调休 working day
    ("2026-02-13", "2026-02-24"),  # Saturday 02-14 worked, then Spring Festival 2026 (02-15..02-23 off)
    ("2026-09-30", "2026-10-09"),  # National Day 2026: 10-08 is a working day
]


@pytest.mark.parametrize(("opened", "due"), REAL_DUE_DATES)
def test_update_obligation_due_two_working_days_later(catalog_home: Path, opened: str, due: str) -> None:
    from registry.db import session_scope
    from registry.catalog.obligations import open_update_obligation

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        obligation = open_update_obligation(session, resource_code=code, reason="数据源结构变更", actor="sync",
                                            opened_on=date.fromisoformat(opened))
        assert obligation.due_on == date.fromisoformat(due)
        assert "catalog.obligation.open" in audit_actions(session, code)


def test_a_2027_deadline_needs_the_state_council_schedule(catalog_home: Path) -> None:
    """The duty is recorded at once, its due day is never guessed: `catalog overdue` says which schedule is
    missing (exit 1) until an operator installs it, and then the day is filled in from that schedule."""
    from typer.testing import CliRunner

    from cli.main import app
    from core.settings import get_settings
    from registry.db import session_scope
    from registry.catalog.obligations import list_obligations, open_update_obligation, unscheduled_obligations
    from core.calendar.workdays import load_schedule_file

    without_schedules()
    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
    # 2026-12-30 + 2 working days reaches into 2027, which the library does not know: recorded, no guess.
    with session_scope() as session:
        obligation = open_update_obligation(session, resource_code=code, reason="变更", actor="sync",
                                            opened_on=date(2026, 12, 30))
        assert obligation.due_on is None and "govshare calendar load" in obligation.due_problem
    report = CliRunner().invoke(app, ["catalog", "overdue", "--today", "2026-12-30"])
    assert report.exit_code == 1 and "到期日未知" in report.output and code in report.output
    load_schedule_file(EXAMPLE_2027, calendar_dir=get_settings().calendar_dir)
    with session_scope() as session:
        assert unscheduled_obligations(session) == []
        # 2027-01-01..03 off in the loaded schedule: 12-31 is the first working day, 01-04 the second
        [scheduled] = list_obligations(session)
        assert scheduled.due_on == date(2027, 1, 4) and scheduled.due_problem is None
    assert CliRunner().invoke(app, ["catalog", "overdue", "--today", "2026-12-30"]).exit_code == 0


def test_a_2027_day_inside_the_loaded_spring_festival(catalog_home: Path) -> None:
    from core.settings import get_settings
    from registry.db import session_scope
    from registry.catalog.obligations import open_update_obligation

    without_schedules()
    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        assert open_update_obligation(session, resource_code=code, reason="变更", actor="sync",
                                      opened_on=date(2027, 2, 4)).due_on is None
    folder = get_settings().calendar_dir
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE_2027, folder / "2027.json")  # an operator drops the file in
    with session_scope() as session:
        # 2027-02-05..02-13 off: Monday 02-15 and Tuesday 02-16 are the two working days
        assert open_update_obligation(session, resource_code=code, reason="变更", actor="sync",
                                      opened_on=date(2027, 2, 4)).due_on == date(2027, 2, 16)


def test_overdue_updates_are_listed_until_the_update_is_published(catalog_home: Path) -> None:
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.catalog.obligations import (
        list_obligations,
        open_update_obligation,
        overdue_obligations,
    )

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        # editing a never-published draft is not an update of the catalogue: no obligation
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", data=entry_data(update_cycle="weekly"))
        assert list_obligations(session) == []
        publish(session, code, on=date(2025, 9, 1))
        first = open_update_obligation(session, resource_code=code, reason="数据源结构变更：新增列 industry",
                                       actor="sync", opened_on=date(2025, 9, 30))
        again = open_update_obligation(session, resource_code=code, reason="又一次变更", actor="sync",
                                       opened_on=date(2025, 10, 9))
        assert again.id == first.id and again.due_on == date(2025, 10, 10)  # the earlier, stricter due date holds
        assert overdue_obligations(session, today=date(2025, 10, 10)) == []  # the due day itself is in time
        assert [o.resource.code for o in overdue_obligations(session, today=date(2025, 10, 11))] == [code]
        assert overdue_obligations(session, today=date(2025, 10, 11), agency="上海市民政局") == []
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang",
                     data=entry_data(update_cycle="weekly", data_items=[
                         {"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "subject_id": "uscc"},
                         {"name": "行业", "column": "industry", "data_type": "string"}]))
        publish(session, code, on=date(2025, 10, 13))
        assert overdue_obligations(session, today=date(2025, 10, 14)) == []
        closed = list_obligations(session, open_only=False)
        assert [(o.closed_on, o.due_on) for o in closed] == [(date(2025, 10, 13), date(2025, 10, 10))]


def test_editing_a_published_entry_opens_an_obligation(catalog_home: Path) -> None:
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.catalog.obligations import list_obligations

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        publish(session, code)
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", data=entry_data(abstract="新的摘要"))
        [obligation] = list_obligations(session)
        assert obligation.kind == "elements" and obligation.resource.code == code
        publish(session, code)
        assert list_obligations(session) == []


@pytest.mark.usefixtures("ordinary_day")  # it records acts up to March 2026, so it runs after them
def test_every_entry_is_reconfirmed_once_a_calendar_year(catalog_home: Path) -> None:
    from registry.db import session_scope
    from registry.catalog.obligations import (
        open_update_obligation,
        overdue_reconfirmations,
        reconfirm_entry,
    )

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        with pytest.raises(ConfigError, match="尚未发布"):
            reconfirm_entry(session, code=code, account="zhang", on=date(2024, 3, 1))
        publish(session, code, on=date(2024, 5, 6))  # publication after full review counts for 2024
        assert overdue_reconfirmations(session, today=date(2025, 12, 31)) == []
        [late] = overdue_reconfirmations(session, today=date(2026, 1, 1))  # nothing in 2025
        assert (late.resource.code, late.missed_year, late.due_on) == (code, 2025, date(2025, 12, 31))
        with pytest.raises(Exception, match="不属于"):
            reconfirm_entry(session, code=code, account="zhao", on=date(2025, 6, 2))  # another agency's reviewer
        reconfirm_entry(session, code=code, account="zhang", on=date(2025, 6, 2), note="年度全面维护")
        assert overdue_reconfirmations(session, today=date(2026, 1, 1)) == []
        open_update_obligation(session, resource_code=code, reason="变更", actor="sync", opened_on=date(2026, 3, 2))
        with pytest.raises(ConfigError, match="未完成的更新"):
            reconfirm_entry(session, code=code, account="zhang", on=date(2026, 3, 3))
        assert "catalog.reconfirm" in audit_actions(session, code)


def test_acts_cannot_be_dated_before_what_they_answer(catalog_home: Path) -> None:
    """An update published "on" a day before the change that opened its obligation would close the obligation
    before it existed, in time; a reconfirmation dated before the revision's publication would fake a year's
    full maintenance. Both are refused with the day they may not precede; the real days are accepted."""
    from registry.catalog.entries import upsert_entry
    from registry.catalog.obligations import list_obligations, open_update_obligation, reconfirm_entry
    from registry.catalog.review import review_revision
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        publish(session, code, on=date(2025, 9, 1))
        with pytest.raises(ConfigError, match="早于目录条目.*的发布日 2025-09-01"):
            reconfirm_entry(session, code=code, account="zhang", on=date(2025, 8, 29))
        open_update_obligation(session, resource_code=code, reason="数据源结构变更", actor="sync",
                               opened_on=date(2025, 9, 30))
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang", data=entry_data(abstract="新增列后的摘要"))
        with pytest.raises(ConfigError, match="早于待完成更新的发生日 2025-09-30"):
            publish(session, code, on=date(2025, 9, 29))
        [still_open] = list_obligations(session)
        assert still_open.closed_on is None
        review_revision(session, code=code, account="li", approve=True, on=date(2025, 10, 13))  # still submitted
        [closed] = list_obligations(session, open_only=False)
        assert (closed.opened_on, closed.closed_on) == (date(2025, 9, 30), date(2025, 10, 13))


def test_a_withdrawn_entry_counts_as_published_only_before_its_withdrawal(catalog_home: Path) -> None:
    """撤销发布 takes an entry out of the catalogue: the evaluation of a period after the withdrawal counts it as
    registered but not published (it counted as published and shared for good); a period that ended before
    the withdrawal still counts it as it stood then."""
    from datetime import timedelta

    from sqlalchemy import select

    from core import clock
    from registry.catalog.models import CatalogRevision, Resource
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate

    with session_scope() as session:
        setup_people(session)
        kept = new_entry(session)
        gone = new_entry(session, classification="101002", name="企业年报信息")
        publish(session, kept)
        publish(session, gone)
    with session_scope() as session:
        withdraw_entry(session, code=gone, account="li", reason="已并入企业基本信息")
    with session_scope() as session:
        now = evaluate(session, period=str(clock.today().year)).standing(PROVIDER[0])
    assert now.counts["catalogue_coverage"] == [1, 2]
    assert now.counts["sharing_openness"] == [1, 1]

    # The same records, as if both entries had been registered and published some 400 days ago: the period
    # then (a year that ended before today's withdrawal) counts both as published.
    earlier = clock.now() - timedelta(days=400)
    with session_scope() as session:
        for resource in session.scalars(select(Resource)):
            resource.created_at = earlier - timedelta(days=1)
        for revision in session.scalars(select(CatalogRevision).where(CatalogRevision.published_at.is_not(None))):
            revision.published_at = earlier
    with session_scope() as session:
        then = evaluate(session, period=str(clock.beijing_day(earlier).year)).standing(PROVIDER[0])
    assert then.counts["catalogue_coverage"] == [2, 2] and then.counts["sharing_openness"] == [2, 2]


def test_a_withdrawal_ends_the_entrys_open_update_obligation(catalog_home: Path) -> None:
    """撤销发布 removes the entry from the catalogue, which is the update the change called for: its open
    obligation was left open, so `catalog overdue` and the supervising office's violations reported the
    withdrawn entry as 至今未更新 for ever. It is now closed on the withdrawal day (late if after the due day)."""
    from registry.catalog.obligations import list_obligations, open_update_obligation, overdue_obligations
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope
    from registry.supervision.violations_provider import find_late_or_inaccurate
    from schemas.evaluation_config import load_config

    with session_scope() as session:
        setup_people(session)
        in_time, late = new_entry(session), new_entry(session, classification="101002", name="企业年报信息")
        publish(session, in_time, on=date(2025, 9, 1))
        publish(session, late, on=date(2025, 9, 1))
        for code in (in_time, late):
            open_update_obligation(session, resource_code=code, reason="数据源停止采集", actor="sync",
                                   opened_on=date(2025, 9, 30))  # due 2025-10-10
        withdraw_entry(session, code=in_time, account="li", reason="数据源停用", on=date(2025, 10, 9))
        withdraw_entry(session, code=late, account="li", reason="数据源停用", on=date(2025, 10, 13))
        assert list_obligations(session) == []
        assert overdue_obligations(session, today=date(2025, 11, 3)) == []
        closed = {o.resource.code: o.closed_on for o in list_obligations(session, open_only=False)}
        assert closed == {in_time: date(2025, 10, 9), late: date(2025, 10, 13)}
        findings = list(find_late_or_inaccurate(session, date(2025, 11, 3), load_config()))
        assert [(f.kind, f.summary.endswith("2025-10-13 才完成更新")) for f in findings] == [("late_update", True)]
        assert audit_actions(session, late)[-2:] == ["catalog.withdraw", "catalog.obligation.close"]
