"""Usage errors (用法错误) in Chinese, for every command: a bad option value, an unknown option or command, a
missing argument.

The command-line parser (typer, which carries its own copy of click) says these in English, in a box headed
"Error". The root command is a :class:`ChineseUsageGroup`: whatever command the error comes from, it is said
here as one Chinese line with the parser's own detail, then the command's usage and where its help is, on
stderr, with the parser's exit status (2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

# typer 0.29 raises the exceptions of its vendored click, not those of the `click` package.
from typer._click import exceptions as parser_errors
from typer.core import TyperGroup


def _name(param: Any) -> str:
    """An option as its flags (-o / --option), an argument as its name (resource)."""
    if getattr(param, "param_type_name", "") == "option":
        return f"选项 {' / '.join(param.opts)}"
    return f"参数 {getattr(param, 'display_name_raw', None) or param.name}"


def bad_value(value: object, message: str) -> typer.BadParameter:
    """A bad value a command found itself (a day, KEY=VALUE), as the parser's error for the option or argument
    it was given in, so the error names it (选项 --as-of 的值无效). Raise what it returns."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    param = None
    for candidate in ctx.command.params if ctx is not None else ():
        given = ctx.params.get(candidate.name)
        if given is not None and (given == value or (isinstance(given, list | tuple) and value in given)):
            param = candidate
            break
    return typer.BadParameter(message, ctx=ctx, param=param)


def one_of(value: str | None, choices: tuple[str, ...]) -> str | None:
    """A filter value (--status) that must be one of `choices`: a typo refused, naming them, where it gave an
    empty list that read as "nothing there" (`govshare runs --status fail`: no run failed)."""
    if value is not None and value not in choices:
        raise bad_value(value, f"{value!r} 不是可选的值，可选：{', '.join(choices)} / not one of {', '.join(choices)}")
    return value


def status_of(value: str | None, labels_kind: str) -> str | None:
    """A --status filter whose choices are the codes of a label list (schemas/labels.yaml), the list every stored
    status has its label in: one_of those codes."""
    from schemas.presentation import labels

    return one_of(value, tuple(labels(labels_kind)))


def _hint(exc: parser_errors.BadParameter) -> str:
    if exc.param is not None:
        return _name(exc.param)
    if exc.param_hint:
        hints = [exc.param_hint] if isinstance(exc.param_hint, str) else list(exc.param_hint)
        return f"选项 {' / '.join(h.strip(chr(39)) for h in hints)}"
    return ""


def _reason(exc: parser_errors.BadParameter) -> str:
    """The parser's detail: pydantic's (typer converts values with it) in Chinese; the hub's own, as written."""
    from pydantic import ValidationError

    from schemas.validation_text import reason_zh

    cause = exc.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        return reason_zh(cause.errors()[0])
    if match := re.fullmatch(r"(File|Directory|Path) '(.*)' does not exist\.", exc.message):
        return f"{ {'File': '文件', 'Directory': '目录'}.get(match.group(1), '路径')} {match.group(2)} 不存在"
    if match := re.fullmatch(r"(File|Directory|Path) '(.*)' is a (file|directory)\.", exc.message):
        return f"{match.group(2)} 是{'文件' if match.group(3) == 'file' else '目录'}"
    return exc.message


def usage_message(exc: parser_errors.UsageError) -> str:
    """The error as one Chinese line (with the parser's English where it says something of its own)."""
    if isinstance(exc, parser_errors.MissingParameter):
        return f"错误：缺少{_hint(exc) or '参数'}" + (f"：{exc.message}" if exc.message else "")
    if isinstance(exc, parser_errors.BadParameter):
        where = _hint(exc)
        return f"错误：{where + ' 的' if where else ''}值无效：{_reason(exc)}"
    if isinstance(exc, parser_errors.NoSuchOption):
        also = f"（可用的相近选项：{', '.join(sorted(exc.possibilities))}）" if exc.possibilities else ""
        return f"错误：没有选项 {exc.option_name}{also}"
    if isinstance(exc, parser_errors.BadOptionUsage):
        if "does not take a value" in exc.message:
            return f"错误：选项 {exc.option_name} 不接受值"
        if match := re.search(r"requires (\d+) arguments", exc.message):
            return f"错误：选项 {exc.option_name} 需要 {match.group(1)} 个值"
        if "requires an argument" in exc.message:
            return f"错误：选项 {exc.option_name} 需要一个值"
    if match := re.fullmatch(r"No such command '(.*)'\.(?: Did you mean (.*)\?)?", exc.message):
        return f"错误：没有命令 {match.group(1)}" + (f"（是否想用 {match.group(2)}？）" if match.group(2) else "")
    if match := re.fullmatch(r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", exc.message):
        return f"错误：多余的参数：{match.group(1)}"
    if exc.message == "Missing command.":
        return "错误：缺少子命令"
    return f"错误：用法有误：{exc.message}"


def usage_hint(ctx: Any) -> str:
    """The command's usage and where its help is: 用法：govshare evaluate [OPTIONS]；说明：govshare evaluate --help"""
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    text = f"用法：{ctx.command_path} {pieces}".rstrip()
    if ctx.command.get_help_option(ctx) is not None:
        text += f"；查看说明：{ctx.command_path} {ctx.help_option_names[0]}"
    return text


def _context_of(exc: parser_errors.UsageError) -> Any:
    """The context of the command the error is about. The parser raises some errors (an option without its
    value) without one; the deepest frame that was parsing a command's arguments holds it."""
    if exc.ctx is not None:
        return exc.ctx
    from typer._click.core import Context

    found, tb = None, exc.__traceback__
    while tb is not None:
        if isinstance(candidate := tb.tb_frame.f_locals.get("ctx"), Context):
            found = candidate
        tb = tb.tb_next
    return found


@contextmanager
def _in_chinese() -> Iterator[None]:
    try:
        yield
    except parser_errors.NoArgsIsHelpError:
        raise  # a bare group: its help was the answer
    except parser_errors.UsageError as exc:
        from rich.markup import escape

        from cli.output import err_console

        err_console.print(f"[red]{escape(usage_message(exc))}[/red]", soft_wrap=True, highlight=False)
        if (ctx := _context_of(exc)) is not None:
            err_console.print(escape(usage_hint(ctx)), soft_wrap=True, highlight=False)
        raise typer.Exit(exc.exit_code) from exc


class ChineseUsageGroup(TyperGroup):
    """The root command: usage errors of any command under it are said in Chinese (see the module)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _in_chinese():  # the root's own options: govshare --bogus
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _in_chinese():  # every subcommand's parsing, and a bad value a command finds itself
            return super().invoke(ctx)
