"""Shared console output: rich tables and one way to report errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

import typer
from rich.console import Console
from rich.table import Table

from core.errors import (
    AccessDenied,
    ConfigError,
    FatalError,
    GovshareError,
    RetriableError,
)

console = Console()
err_console = Console(stderr=True)


def due(day: date | None) -> str:
    """A statutory due day for the console; unknown while its year's State Council schedule is not installed."""
    from registry.due_days import due_text

    return day.isoformat() if day is not None else due_text(None)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*["" if v is None else str(v) for v in row])
    console.print(grid)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the hub's errors into one clear line and an exit status (1 usage/config, 2 retriable, 3 fatal)."""
    try:
        yield
    except AccessDenied as exc:
        err_console.print(f"[red]拒绝 / denied:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(4) from exc
    except RetriableError as exc:
        err_console.print(f"[yellow]暂时失败，可重试 / retriable:[/yellow] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except FatalError as exc:
        err_console.print(f"[red]运行失败 / fatal:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(3) from exc
    except (ConfigError, GovshareError) as exc:
        err_console.print(f"[red]错误 / error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
