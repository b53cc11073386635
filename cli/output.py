"""Shared console output: rich tables and one way to report errors."""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.usage import bad_value
from core.errors import (
    AccessDenied,
    FatalError,
    GovshareError,
    RetriableError,
)

console = Console()
err_console = Console(stderr=True)
# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts sequences that clear the screen,
# retitle the window or make a link), DEL, and the bidirectional overrides that show text in another order.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSHOWN_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(value: object, *, lines: bool = False, markup: bool = True) -> str:
    """A value from data, a file or a person, for the console: rich markup escaped ([red], [link=...] are text)
    and control characters written as escapes (\\x1b, \\n), never acted on. A table cell is one value, so a
    newline is escaped too (it made a fake row); ``lines``: a message the hub composed may have several lines;
    ``markup=False``: for a line rich never reads (typer.echo), where a backslash before [ would show."""
    text = "" if value is None else str(value)
    pattern = _UNSHOWN_IN_LINES if lines else _UNSHOWN
    text = pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
    return escape(text) if markup else text


def due(day: date | None) -> str:
    """A statutory due day for the console; unknown while its year's State Council schedule is not installed."""
    from registry.supervision.due_days import due_text

    return day.isoformat() if day is not None else due_text(None)


def parse_day(text: str | None) -> date | None:
    """A day given on the command line (YYYY-MM-DD); None stays None (the command then means today, Beijing)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise bad_value(text, f"{text!r} 不是有效日期，格式应为 YYYY-MM-DD / expected a date like 2025-10-08") from None


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    grid = Table(title=shown(title), title_justify="left")
    for column in columns:
        grid.add_column(shown(column))
    for row in rows:
        grid.add_row(*[shown(v) for v in row])  # values as they are: never markup, never a terminal sequence
    console.print(grid)


def note(text: str | None) -> None:
    """A warning the person should read, on stderr (nothing when there is none)."""
    if text:
        err_console.print(f"[yellow]注意 / note:[/yellow] {shown(text, lines=True)}", soft_wrap=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the hub's errors into one clear line and an exit status (1 usage/config, 2 retriable, 3 fatal)."""
    try:
        yield
    except AccessDenied as exc:
        err_console.print(f"[red]拒绝 / denied:[/red] {shown(exc.user_message(), lines=True)}", soft_wrap=True)
        raise typer.Exit(4) from exc
    except RetriableError as exc:
        err_console.print(f"[yellow]暂时失败，可重试 / retriable:[/yellow] {shown(exc.user_message(), lines=True)}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except FatalError as exc:
        err_console.print(f"[red]运行失败 / fatal:[/red] {shown(exc.user_message(), lines=True)}", soft_wrap=True)
        raise typer.Exit(3) from exc
    except GovshareError as exc:  # ConfigError and the rest
        err_console.print(f"[red]错误 / error:[/red] {shown(exc.user_message(), lines=True)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (TyperException, typer.Exit, typer.Abort):
        raise  # usage errors and exits: the command-line parser says them itself
    except Exception as exc:  # noqa: BLE001 - no command ever shows a traceback
        raise typer.Exit(unexpected(exc)) from exc


def unexpected(exc: BaseException) -> int:
    """One clear line for an error the hub did not foresee, the traceback kept in GOVSHARE_HOME/logs; the exit
    status (2: the registry database could not be reached, retry; 1: a file problem; 70: a bug to report)."""
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:400]
    if isinstance(exc, DBAPIError) and (getattr(exc.orig, "pgcode", None) == "42501"  # insufficient_privilege
                                        or "readonly database" in detail):
        err_console.print(f"[red]登记库拒绝了平台的数据库用户 / the registry database refused the hub's user:[/red] "
                          f"{shown(detail)}; grant the user GOVSHARE_DATABASE_URL names the rights on the registry's "
                          "tables (or make the SQLite file writable), or use the user that owns them", soft_wrap=True)
        return 1
    if isinstance(exc, OperationalError) and "no such table" not in detail:
        err_console.print(f"[yellow]登记库无法访问，可重试 / the registry database cannot be reached:[/yellow] {shown(detail)}; "
                          "check GOVSHARE_DATABASE_URL and that the database is running", soft_wrap=True)
        return 2
    if isinstance(exc, (OperationalError, ProgrammingError)):
        err_console.print(f"[red]登记库结构不是最新 / the registry database is not up to date:[/red] {shown(detail)}; run "
                          "`govshare init`", soft_wrap=True)
        return 1
    if isinstance(exc, OSError) and not isinstance(exc, DBAPIError):
        err_console.print(f"[red]{shown(file_problem(exc))}[/red]", soft_wrap=True)
        return 1
    log = _log_traceback(exc)
    err_console.print(f"[red]内部错误 / internal error ({type(exc).__name__}):[/red] {shown(detail)}. "
                      + (f"The details are in {log}; " if log else "") + "please report it to the platform's operator",
                      soft_wrap=True)
    return 70


def file_problem(exc: OSError) -> str:
    """One line for a file or network error, saying what to do where the cause is the disk."""
    from core.settings import get_settings

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or " ".join(str(exc).split())[:400]
    if exc.errno == errno.ENOSPC:
        settings = get_settings()
        return (f"存储空间已满 / no space left on the device{where}: {reason}. Free space there (`govshare housekeep` "
                f"removes abandoned runs and versions past the retention rule) or move GOVSHARE_STORAGE "
                f"({settings.storage or settings.home / 'storage'}) to a larger disk; a sync stopped by it published "
                "nothing and the last version is intact")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"没有写入权限 / the hub may not write{where}: {reason}; give the user it runs as write access "
                "there, or point GOVSHARE_HOME / GOVSHARE_STORAGE elsewhere")
    return f"文件或网络错误 / file or network error{where}: {reason}"


class OneLineWarnings(logging.Handler):
    """Where the hub's own warnings go when nothing configured logging (the command line): one line each on
    stderr; a traceback that came with one is kept in GOVSHARE_HOME/logs/cli-errors.log, never shown."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().split())
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                kept = _log_traceback(exc)
                text += f" ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}" + (
                    f"; the details are in {kept})" if kept else ")")
            err_console.print(f"[yellow]注意 / note:[/yellow] {shown(text, lines=True)}", soft_wrap=True)
        except Exception:  # noqa: BLE001 - a warning that cannot be shown must not end the command
            self.handleError(record)


def _log_traceback(exc: BaseException) -> str | None:
    import traceback

    from core import clock
    from core.settings import get_settings

    try:
        folder = get_settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "cli-errors.log"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"--- {clock.now().isoformat()}\n")
            handle.write("".join(traceback.format_exception(exc)))
        return str(path)
    except Exception:  # noqa: BLE001 - the message above matters more than the log
        return None
