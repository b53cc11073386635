"""`govshare calendar ...`: the working-day calendar (工作日历) behind the statutory clocks.

Mounted by the main CLI as ``app.add_typer(calendar.app, name="calendar")``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.access_cmds import AsUser
from cli.output import parse_day, shown
from core.errors import ConfigError

if TYPE_CHECKING:  # the calendar brings the settings (pydantic-settings): imported by the commands that count
    from core.calendar.workdays import DayStatus

app = typer.Typer(
    help=(
        "工作日历 Working-day calendar for the statutory clocks (2 / 10 个工作日): check a day, count working "
        "days, install the State Council holiday schedule (国务院节假日安排) for a new year.\n\n"
        "Example: govshare calendar check 2025-10-08"
    ),
    no_args_is_help=True,
)

CalendarDirOption = Annotated[
    Path | None,
    typer.Option(
        "--calendar-dir",
        help="日历目录 calendar folder; default GOVSHARE_CALENDAR_DIR (var/calendars)",
        file_okay=False,
    ),
]

_WEEKDAYS = (
    ("星期一", "Monday"),
    ("星期二", "Tuesday"),
    ("星期三", "Wednesday"),
    ("星期四", "Thursday"),
    ("星期五", "Friday"),
    ("星期六", "Saturday"),
    ("星期日", "Sunday"),
)


def _weekday(day: date) -> str:
    chinese, english = _WEEKDAYS[day.weekday()]
    return f"{chinese} {english}"


def _plain(value: object) -> str:
    # A schedule file's text (its notice, a holiday's name) or a path: plain echo acts on no markup, but the
    # terminal would act on a control character.
    return shown(value, markup=False)


def _fail(exc: ConfigError) -> typer.Exit:
    # Plain echo, not rich: rich would wrap long paths and commands in the middle.
    typer.echo(f"错误 / error: {shown(exc, lines=True, markup=False)}", err=True)
    return typer.Exit(code=1)


def _reason(status: DayStatus) -> str:
    from core.calendar.workdays import DayKind

    if status.kind is DayKind.HOLIDAY:
        return f"{status.holiday_name} 放假 / public holiday"
    if status.kind is DayKind.ADJUSTED_WORKDAY:
        made_up_for = f"; 补{status.holiday_name}假 / makes up for {status.holiday_name}" if status.holiday_name else ""
        return f"调休上班日 / weekend working day{made_up_for}"
    if status.kind is DayKind.WEEKEND:
        return "周末 / weekend"
    return "平日 / ordinary weekday"


@app.command("load")
def load_command(
    file: Annotated[Path, typer.Argument(help="国务院节假日安排文件 schedule file (.json or .yaml)")],
    calendar_dir: CalendarDirOption = None,
    as_user: AsUser = None,
) -> None:
    """校验并安装国务院节假日安排 Validate a State Council holiday schedule and install it as <year>.json.

    The file replaces the library's data for that year if the library has it (an operator correction). A file
    with a mistake is refused with the line that is wrong. Installed in the hub's calendar folder, it fills in
    every due day that was waiting for it (applications, catalogue updates, rectification orders; audited).

    Example: govshare calendar load 2027.json
    """
    from core.calendar.workdays import load_schedule_file, read_schedule_file
    from core.settings import get_settings

    try:
        schedule = read_schedule_file(file)
        installed = load_schedule_file(file, calendar_dir=calendar_dir)
    except ConfigError as exc:
        raise _fail(exc) from None
    off_days = len({day for period in schedule.holidays for day in period.days()})
    typer.echo(
        f"已安装 / installed: {schedule.year} schedule ({_plain(schedule.source)}) -> {_plain(installed)}: "
        f"{len(schedule.holidays)} holidays, {off_days} off days, {len(schedule.workdays)} 调休 working days"
    )
    if schedule.note:
        typer.echo(f"note: {_plain(schedule.note)}")
    if installed.parent.resolve() == get_settings().calendar_dir.resolve():
        _schedule_pending(as_user)


def _schedule_pending(as_user: str | None) -> None:
    """Fill in the due days that waited for this schedule, in the hub's registry when it has one."""
    from cli.access_cmds import acting_as
    from cli.output import reported_errors
    from registry.db import session_scope
    from registry.supervision.due_days import fill_pending
    from registry.migrate import current_revision
    from core.settings import get_settings

    url = get_settings().database_url
    if (url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file()) or not current_revision():
        typer.echo("登记库尚未初始化，无待计算期限 / the registry is not initialised (govshare init): no due day waits")
        return
    with reported_errors(), session_scope() as session:
        filled = fill_pending(session, actor=acting_as(session, as_user).actor)
    for item in filled:
        typer.echo(f"期限已确定 / due day set: {item.kind} {_plain(item.reference)} -> {item.due_on.isoformat()}")
    typer.echo(f"{len(filled)} 个待定期限已计算 / due day(s) filled in")


@app.command("check")
def check_command(
    day: Annotated[str, typer.Argument(metavar="DATE", help="日期 date, YYYY-MM-DD")],
    calendar_dir: CalendarDirOption = None,
) -> None:
    """判断是否工作日 Say whether DATE is a working day and why (weekend, holiday, 调休 working day).

    Example: govshare calendar check 2025-10-11
    """
    from core.calendar.workdays import day_status

    parsed = parse_day(day)
    try:
        status = day_status(parsed, calendar_dir=calendar_dir)
    except ConfigError as exc:
        raise _fail(exc) from None
    verdict = "工作日 / working day" if status.is_working_day else "非工作日 / not a working day"
    typer.echo(f"{parsed.isoformat()} ({_weekday(parsed)}): {verdict} — {_plain(_reason(status))} [{status.origin}]")


@app.command("add")
def add_command(
    day: Annotated[str, typer.Argument(metavar="DATE", help="起算日 start date, YYYY-MM-DD (not counted)")],
    n: Annotated[int, typer.Argument(metavar="N", min=0, help="工作日数 number of working days")],
    calendar_dir: CalendarDirOption = None,
) -> None:
    """计算期限 Print the date N working days after DATE (DATE itself is not counted).

    Example: govshare calendar add 2025-09-30 10   (-> 2025-10-21, across National Day)
    """
    from core.calendar.workdays import add_working_days

    parsed = parse_day(day)
    try:
        result = add_working_days(parsed, n, calendar_dir=calendar_dir)
    except ConfigError as exc:
        raise _fail(exc) from None
    typer.echo(f"{parsed.isoformat()} + {n} 个工作日 working days = {result.isoformat()} ({_weekday(result)})")


@app.command("years")
def years_command(calendar_dir: CalendarDirOption = None) -> None:
    """列出已知年份 List the years with a calendar and where each comes from (library or file).

    Example: govshare calendar years
    """
    from core.calendar.workdays import known_years

    sources = known_years(calendar_dir=calendar_dir)
    library = [source for source in sources if source.origin == "library"]
    files = [source for source in sources if source.origin == "file"]
    if library:
        except_files = " (except the files below)" if any(source.overrides_library for source in files) else ""
        typer.echo(f"{library[0].year}-{library[-1].year}  library  {_plain(library[0].location)}{except_files}")
    for source in files:
        if source.error:
            typer.echo(f"{source.year}  file  {_plain(source.location)}  无效 / INVALID: {_plain(source.error)}")
            continue
        overrides = " (overrides the library / 覆盖库数据)" if source.overrides_library else ""
        typer.echo(f"{source.year}  file  {_plain(source.location)}{overrides}  source: {_plain(source.notice)}")
    from core.calendar.due_days import schedule_warning

    if calendar_dir is None and (warning := schedule_warning()):
        typer.echo(f"警告 / warning: {_plain(warning)}")
    if any(source.error for source in files):
        # Non-zero so a health check notices an unusable schedule before a deadline needs it.
        raise typer.Exit(code=1)
