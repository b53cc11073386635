"""Working-day calendar (工作日历): real 2025/2026 schedules, statutory clocks, schedule files, CLI."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.calendar import app as calendar_app
from core.errors import ConfigError
from core.settings import reset_settings
from core.calendar.workdays import (
    DayKind,
    InvalidScheduleFile,
    UnknownCalendarYear,
    add_working_days,
    day_status,
    deadline,
    is_working_day,
    known_years,
    load_schedule_file,
    read_schedule_file,
    reload_calendars,
    working_days_between,
)

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

EXAMPLE_2027 = Path(__file__).resolve().parents[1] / "core" / "calendar" / "schedules" / "2027.example.json"

# Weekend days the State Council turned into working days (调休上班日), from the 2025 and 2026 notices.
WEEKEND_WORKING_DAYS_2025 = ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]
WEEKEND_WORKING_DAYS_2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]


@pytest.fixture(autouse=True)
def empty_calendar_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test starts with an empty calendar folder, so an operator's var/calendars cannot leak in."""
    folder = tmp_path / "calendars"
    monkeypatch.setenv("GOVSHARE_CALENDAR_DIR", str(folder))
    reset_settings()
    reload_calendars()
    yield folder
    reset_settings()
    reload_calendars()


def write_schedule(folder: Path, name: str, content: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def days(*iso_days: str) -> list[date]:
    return [date.fromisoformat(day) for day in iso_days]


# ------------------------------------------------------------------------------ library years 2025/2026


@pytest.mark.parametrize("day", days(*WEEKEND_WORKING_DAYS_2025, *WEEKEND_WORKING_DAYS_2026))
def test_weekend_working_days_are_working_days(day: date) -> None:
    assert day.weekday() >= 5
    assert is_working_day(day)
    assert day_status(day).kind is DayKind.ADJUSTED_WORKDAY


@pytest.mark.parametrize("day", [date(2025, 10, 1) + timedelta(days=offset) for offset in range(8)])
def test_national_day_2025_is_off_from_october_1_to_8(day: date) -> None:
    assert not is_working_day(day)
    status = day_status(day)
    assert status.kind is DayKind.HOLIDAY
    assert status.holiday_name in ("国庆节", "中秋")  # 2025-10-06 is Mid-Autumn inside the National Day break


def test_october_8_2026_is_a_working_day_after_national_day() -> None:
    assert not is_working_day(date(2026, 10, 7))
    assert is_working_day(date(2026, 10, 8))


def test_spring_festival_2025_and_2026() -> None:
    assert not any(is_working_day(day) for day in days("2025-01-28", "2025-01-31", "2025-02-04"))
    assert is_working_day(date(2025, 2, 5))
    assert not any(is_working_day(date(2026, 2, 15) + timedelta(days=offset)) for offset in range(9))
    assert is_working_day(date(2026, 2, 24))
    assert day_status(date(2026, 2, 17)).holiday_name == "春节"


def test_ordinary_weekend_and_weekday() -> None:
    assert day_status(date(2025, 10, 12)).kind is DayKind.WEEKEND
    assert day_status(date(2025, 10, 13)).kind is DayKind.WEEKDAY


def test_new_years_holiday_reaching_back_into_december() -> None:
    # The 2024 notice gave 2023-12-30..2024-01-01 off; the 2019 notice made Saturday 2018-12-29 a working day.
    assert day_status(date(2023, 12, 30)).holiday_name == "元旦"
    assert is_working_day(date(2018, 12, 29))


# ------------------------------------------------------------------------------------------ counting


def test_counting_starts_strictly_after_the_start_day() -> None:
    assert add_working_days(date(2025, 10, 4), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 4), 0) == date(2025, 10, 4)
    assert add_working_days(date(2025, 10, 9), 1) == date(2025, 10, 10)


def test_ten_working_day_clock_across_national_day() -> None:
    # Article 14: a decision within 10 working days of receiving the application.
    # 2025: 10-09, 10-10, 10-11 (调休 Saturday), 10-13..10-17, 10-20, 10-21.
    assert deadline(date(2025, 9, 30), 10) == date(2025, 10, 21)
    # 2026: 10-08, 10-09, 10-10 (调休 Saturday), 10-12..10-16, 10-19, 10-20.
    assert deadline(date(2026, 9, 30), 10) == date(2026, 10, 20)
    assert working_days_between(date(2025, 9, 30), date(2025, 10, 21)) == 10


def test_two_working_day_clock_across_a_weekend() -> None:
    # Articles 10 and 16: catalogue update within 2 working days; Friday -> the following Tuesday.
    assert deadline(date(2025, 3, 7), 2) == date(2025, 3, 11)


def test_two_working_day_clock_across_an_adjusted_saturday() -> None:
    assert deadline(date(2025, 10, 10), 2) == date(2025, 10, 13)  # Saturday 10-11 counts, Sunday does not
    assert deadline(date(2025, 9, 26), 2) == date(2025, 9, 29)  # Sunday 09-28 counts
    assert deadline(date(2026, 2, 13), 2) == date(2026, 2, 24)  # Saturday 02-14, then Spring Festival


def test_deadline_takes_the_day_of_receipt_in_beijing_time() -> None:
    assert deadline(datetime(2025, 9, 30, 16, 30), 10) == date(2025, 10, 21)
    # 17:00 UTC on 10-09 is 01:00 on 10-10 in Shanghai: one working day later is the 调休 Saturday 10-11.
    assert deadline(datetime(2025, 10, 9, 17, 0, tzinfo=timezone.utc), 1) == date(2025, 10, 11)


def test_working_days_between_counts_end_not_start() -> None:
    assert working_days_between(date(2025, 10, 9), date(2025, 10, 9)) == 0
    assert working_days_between(date(2025, 10, 8), date(2025, 10, 9)) == 1
    assert working_days_between(date(2025, 10, 3), date(2025, 10, 8)) == 0


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        add_working_days(date(2025, 10, 9), -1)
    with pytest.raises(ValueError):
        working_days_between(date(2025, 10, 9), date(2025, 10, 8))


# ------------------------------------------------------------------------------------ unknown years


def test_a_year_without_schedule_raises_with_instructions(empty_calendar_dir: Path) -> None:
    with pytest.raises(UnknownCalendarYear) as raised:
        is_working_day(date(2027, 3, 1))
    message = str(raised.value)
    assert isinstance(raised.value, ConfigError)
    assert raised.value.year == 2027
    for expected in ("2027", str(empty_calendar_dir.absolute()), "2027.json", '"workdays"', "govshare calendar load"):
        assert expected in message


def test_counting_into_an_unknown_year_raises() -> None:
    with pytest.raises(UnknownCalendarYear):
        add_working_days(date(2026, 12, 28), 10)
    with pytest.raises(UnknownCalendarYear):
        deadline(date(2003, 5, 6), 2)


# ----------------------------------------------------------------------------------- schedule files


def test_loading_the_2027_example_answers_from_the_file(empty_calendar_dir: Path) -> None:
    with pytest.raises(UnknownCalendarYear):
        is_working_day(date(2027, 10, 4))
    installed = load_schedule_file(EXAMPLE_2027)
    assert installed == empty_calendar_dir / "2027.json"
    status = day_status(date(2027, 10, 4))
    assert status.kind is DayKind.HOLIDAY and status.holiday_name == "国庆节"
    assert status.origin == str(installed)
    assert is_working_day(date(2027, 10, 9))  # example 调休 Saturday
    assert not is_working_day(date(2027, 2, 8))  # example Spring Festival
    assert deadline(date(2027, 9, 30), 2) == date(2027, 10, 9)
    # A count from 2026 into 2027 now works too.
    assert add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_explicit_calendar_dir_wins_over_settings(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    assert load_schedule_file(EXAMPLE_2027, calendar_dir=other) == other / "2027.json"
    assert not is_working_day(date(2027, 10, 4), calendar_dir=other)
    with pytest.raises(UnknownCalendarYear):
        is_working_day(date(2027, 10, 4))


def test_a_file_dropped_into_the_folder_is_picked_up(empty_calendar_dir: Path) -> None:
    with pytest.raises(UnknownCalendarYear):
        is_working_day(date(2027, 10, 4))
    empty_calendar_dir.mkdir(parents=True)
    shutil.copyfile(EXAMPLE_2027, empty_calendar_dir / "2027.json")
    reload_calendars()
    assert not is_working_day(date(2027, 10, 4))


def test_yaml_schedule(empty_calendar_dir: Path, tmp_path: Path) -> None:
    source = write_schedule(
        tmp_path,
        "guoban-2028.yaml",
        "year: 2028\nsource: test notice\nholidays:\n  - name: 元旦\n    start: 2028-01-03\n    end: 2028-01-03\n"
        "  - name: 国庆节\n    start: 2028-10-01\n    end: 2028-10-07\nworkdays:\n  - 2028-10-08\n",
    )
    assert load_schedule_file(source) == empty_calendar_dir / "2028.yaml"
    assert day_status(date(2028, 1, 3)).holiday_name == "元旦"
    assert is_working_day(date(2028, 10, 8))  # a Sunday made a working day


def test_a_holiday_without_its_name_is_refused_at_its_line(tmp_path: Path) -> None:
    source = write_schedule(tmp_path, "2028.yaml", "year: 2028\nsource: test notice\nholidays:\n"
                            "  - name: 国庆节\n    start: 2028-10-01\n    end: 2028-10-07\n  - 2028-01-03\n")
    with pytest.raises(InvalidScheduleFile) as raised:
        load_schedule_file(source)
    assert "line 7: holidays[1]: 2028-01-03: write each holiday with its name" in str(raised.value)
    assert '"name": "春节"' in str(raised.value) and '"name": "春节"' in str(raised.value)


def test_a_schedule_may_reach_back_into_december(empty_calendar_dir: Path) -> None:
    write_schedule(
        empty_calendar_dir,
        "2027.json",
        {"year": 2027, "source": "test", "holidays": [{"name": "元旦", "start": "2026-12-31", "end": "2027-01-01"}]},
    )
    assert day_status(date(2026, 12, 31)).holiday_name == "元旦"  # library 2026 says weekday; the 2027 notice wins
    assert is_working_day(date(2026, 12, 30))


def test_a_file_overrides_a_library_year(empty_calendar_dir: Path) -> None:
    assert is_working_day(date(2025, 10, 9))
    correction = {
        "year": 2025,
        "source": "operator correction",
        "holidays": [{"name": "国庆节", "start": "2025-10-01", "end": "2025-10-09"}],
        "workdays": ["2025-10-11"],
    }
    load_schedule_file(write_schedule(empty_calendar_dir.parent, "fix.json", correction))
    assert not is_working_day(date(2025, 10, 9))
    # The file replaces the library's whole year: Spring Festival is gone because the file omits it.
    assert is_working_day(date(2025, 1, 31))
    # Other years still come from the library.
    assert not is_working_day(date(2026, 10, 1))
    source_2025 = next(source for source in known_years() if source.year == 2025)
    assert source_2025.origin == "file" and source_2025.overrides_library


def test_known_years_lists_library_and_files(empty_calendar_dir: Path) -> None:
    load_schedule_file(EXAMPLE_2027)
    sources = {source.year: source for source in known_years()}
    assert sources[2004].origin == "library" and sources[2026].origin == "library"
    assert sources[2027].origin == "file" and sources[2027].notice.startswith("EXAMPLE")
    assert 2028 not in sources and 2003 not in sources


BAD_SCHEDULES = [
    ("2027.json", "{ not json", "not valid JSON"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": []}, "holidays"),
    ("2027.json", {"year": 2027, "holidays": [{"name": "春节", "start": "2027-02-05", "end": "2027-02-13"}]}, "source"),
    (
        "2027.json",
        {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027-02-13", "end": "2027-02-05"}]},
        "before start",
    ),
    (
        "2027.json",
        {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027-02-05", "end": "2027-02-05"}], "workdays": ["2027-02-10"]},
        "Wednesday",
    ),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027/02/05", "end": "2027-02-05"}]},
     "YYYY-MM-DD"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": ["2027-02-05"]}, "write each holiday with its name"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [{"name": " ", "start": "2027-02-05", "end": "2027-02-05"}]},
     "name the holiday"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [
        {"name": "春节", "start": "2027-02-05", "end": "2027-02-13"},
        {"name": "元宵", "start": "2027-02-13", "end": "2027-02-13"}]}, "2027-02-13 is already in holidays[0] 春节"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027-02-05", "end": "2027-02-13"}],
                   "workdays": ["2027-02-20", "2027-02-20"]}, "listed twice"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2028-02-05", "end": "2028-02-05"}]}, "outside 2027"),
    ("2027.json", {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027-02-05", "end": "2027-02-05"}], "workday": []}, "unknown field"),
    (
        "2027.json",
        {"year": 2027, "source": "x", "holidays": [{"name": "春节", "start": "2027-02-06", "end": "2027-02-06"}],
         "workdays": ["2027-02-06"]},
        "also an off day",
    ),
]


@pytest.mark.parametrize(("name", "content", "problem"), BAD_SCHEDULES)
def test_bad_schedule_files_are_refused_clearly(tmp_path: Path, name: str, content: dict | str, problem: str) -> None:
    path = write_schedule(tmp_path / "incoming", name, content)
    with pytest.raises(InvalidScheduleFile) as raised:
        load_schedule_file(path)
    assert str(path) in str(raised.value)
    assert problem in str(raised.value)
    assert isinstance(raised.value, ConfigError)


def test_a_bad_file_in_the_folder_fails_lookups_for_its_year_only(empty_calendar_dir: Path) -> None:
    write_schedule(empty_calendar_dir, "2027.json", {"year": 2027, "source": "x", "holidays": ["2027-02-31"]})
    with pytest.raises(InvalidScheduleFile, match="2027.json"):
        is_working_day(date(2027, 3, 1))
    assert is_working_day(date(2025, 10, 9))
    assert next(source for source in known_years() if source.year == 2027).error


def test_file_name_must_match_its_year(empty_calendar_dir: Path) -> None:
    write_schedule(empty_calendar_dir, "2027.json",
                   {"year": 2028, "source": "x", "holidays": [{"name": "元旦", "start": "2028-01-03", "end": "2028-01-03"}]})
    with pytest.raises(InvalidScheduleFile, match="name it 2028.json"):
        is_working_day(date(2027, 3, 1))


def test_the_example_file_validates() -> None:
    schedule = read_schedule_file(EXAMPLE_2027)
    assert schedule.year == 2027
    assert "EXAMPLE" in (schedule.note or "")


# ---------------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_check_explains_the_day() -> None:
    adjusted = runner.invoke(calendar_app, ["check", "2025-10-11"])
    assert adjusted.exit_code == 0 and "调休" in adjusted.output and "working day" in adjusted.output
    holiday = runner.invoke(calendar_app, ["check", "2025-10-04"])
    assert holiday.exit_code == 0 and "国庆节" in holiday.output and "not a working day" in holiday.output
    weekend = runner.invoke(calendar_app, ["check", "2025-10-12"])
    assert "weekend" in weekend.output


def test_cli_add() -> None:
    result = runner.invoke(calendar_app, ["add", "2025-09-30", "10"])
    assert result.exit_code == 0 and "2025-10-21" in result.output


def test_cli_unknown_year_fails_with_instructions() -> None:
    result = runner.invoke(calendar_app, ["check", "2027-03-01"])
    assert result.exit_code == 1
    assert "govshare calendar load 2027.json" in result.output


def test_cli_bad_date_is_a_usage_error() -> None:
    result = runner.invoke(calendar_app, ["check", "next tuesday"])
    assert result.exit_code == 2


def test_cli_load_then_years(tmp_path: Path) -> None:
    folder = tmp_path / "cli-calendars"
    loaded = runner.invoke(calendar_app, ["load", str(EXAMPLE_2027), "--calendar-dir", str(folder)])
    assert loaded.exit_code == 0, loaded.output
    assert (folder / "2027.json").is_file()
    checked = runner.invoke(calendar_app, ["check", "2027-10-04", "--calendar-dir", str(folder)])
    assert checked.exit_code == 0 and "国庆节" in checked.output
    years = runner.invoke(calendar_app, ["years", "--calendar-dir", str(folder)])
    assert years.exit_code == 0
    assert "2004-2026" in years.output and "library" in years.output
    assert "2027" in years.output and str(folder / "2027.json") in years.output


def test_cli_load_refuses_a_bad_file(tmp_path: Path) -> None:
    weekday_as_workday = {"year": 2027, "source": "x", "workdays": ["2027-02-20", "2027-02-10"],
                          "holidays": [{"name": "春节", "start": "2027-02-05", "end": "2027-02-13"}]}
    bad = write_schedule(tmp_path, "2027.json", weekday_as_workday)
    result = runner.invoke(calendar_app, ["load", str(bad)])
    assert result.exit_code == 1
    # the line of "2027-02-10" in the indented JSON file: the operator goes straight to it
    line = bad.read_text(encoding="utf-8").splitlines().index('    "2027-02-10"') + 1
    assert str(bad) in result.output and f"line {line}: workdays[1] 2027-02-10 is a Wednesday" in result.output


@pytest.mark.parametrize("command", ["load", "check", "add", "years"])
def test_cli_help_has_an_example(command: str) -> None:
    result = runner.invoke(calendar_app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output
