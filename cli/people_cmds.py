"""`govshare person ...`: agencies' people and their dated designations (编目人员, 审核人员, 数据资源管理员)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import parse_day
from cli.output import console, reported_errors, shown, table

person_app = typer.Typer(help="人员与指定 People of agencies and their designations (articles 10, 21).",
                         no_args_is_help=True)
ROLE_HELP = "角色 role: cataloguer 编目人员 / reviewer 审核人员 / administrator 数据资源管理员"


@person_app.command("add")
def add_command(account: Annotated[str, typer.Argument(help="平台账号 account")],
                name: Annotated[str, typer.Argument(help="姓名 name")],
                agency: Annotated[str, typer.Option(help="所属机构 agency code or name")],
                phone: Annotated[str, typer.Option(help="电话")] = "",
                email: Annotated[str, typer.Option(help="电子邮箱")] = "",
                office: Annotated[str, typer.Option(help="处室 department")] = "") -> None:
    """登记人员 Register a staff member of an agency.

    Example: govshare person add zhangsan 张三 --agency 上海市市场监督管理局 --office 信息中心 --phone 021-12345678
    """
    from registry.db import session_scope
    from registry.people.persons import add_person

    with reported_errors(), session_scope() as session:
        person = add_person(session, agency=agency, account=account, name=name, phone=phone, email=email,
                            office=office)
        console.print(f"人员 {shown(person.name)}（{shown(person.account)}）已登记 / registered")


@person_app.command("designate")
def designate_command(account: Annotated[str, typer.Argument(help="账号")],
                      role: Annotated[str, typer.Argument(help=ROLE_HELP)],
                      valid_from: Annotated[str | None, typer.Option("--from", help="起始日 YYYY-MM-DD (default today)")] = None,
                      valid_to: Annotated[str | None, typer.Option("--to", help="终止日 YYYY-MM-DD (inclusive)")] = None,
                      note: Annotated[str, typer.Option(help="备注, e.g. 文件号")] = "") -> None:
    """指定专人 Designate a person for a role from a day on (history is kept).

    Example: govshare person designate lisi reviewer --from 2025-01-01
    """
    from registry.db import session_scope
    from registry.people.models import DESIGNATION_ROLES
    from registry.people.persons import designate

    with reported_errors(), session_scope() as session:
        d = designate(session, account=account, role=role, valid_from=parse_day(valid_from),
                      valid_to=parse_day(valid_to), note=note)
        console.print(f"{shown(d.person.name)} 自 {d.valid_from} 起为{DESIGNATION_ROLES[d.role]} / designated")


@person_app.command("undesignate")
def undesignate_command(account: Annotated[str, typer.Argument(help="账号")],
                        role: Annotated[str, typer.Argument(help=ROLE_HELP)],
                        last_day: Annotated[str | None, typer.Option(help="最后在任日 YYYY-MM-DD (default yesterday)")] = None,
                        ) -> None:
    """终止指定 End a person's designation; the history keeps it.

    Example: govshare person undesignate lisi reviewer --last-day 2025-06-30
    """
    from registry.db import session_scope
    from registry.people.models import DESIGNATION_ROLES
    from registry.people.persons import end_designation

    with reported_errors(), session_scope() as session:
        d = end_designation(session, account=account, role=role, last_day=parse_day(last_day))
        console.print(f"{shown(d.person.name)} 的{DESIGNATION_ROLES[d.role]}指定至 {d.valid_to} 止 / ended")


@person_app.command("list")
def list_command(agency: Annotated[str | None, typer.Option(help="机构")] = None,
                 role: Annotated[str | None, typer.Option(help=ROLE_HELP)] = None,
                 on: Annotated[str | None, typer.Option(help="只列出该日在任 in force on YYYY-MM-DD")] = None) -> None:
    """指定记录 Designations with their dates (all history, or those in force on a day).

    Example: govshare person list --role reviewer --on 2025-10-09
    """
    from registry.db import session_scope
    from registry.people.models import DESIGNATION_ROLES
    from registry.people.persons import designations

    with reported_errors(), session_scope() as session:
        rows = [(d.person.agency.name, DESIGNATION_ROLES[d.role], d.person.name, d.person.account, d.valid_from,
                 d.valid_to or "在任", d.note) for d in designations(session, agency=agency, role=role, on=parse_day(on))]
        table("人员指定 / designations", ["机构", "角色", "姓名", "账号", "起始日", "终止日", "备注"], rows)


@person_app.command("administrators")
def administrators_command(agency: Annotated[str | None, typer.Option(help="机构")] = None,
                           on: Annotated[str | None, typer.Option(help="在任日 YYYY-MM-DD (default today)")] = None,
                           output: Annotated[Path | None, typer.Option(help="写入 .xlsx 或 .csv 备案文件")] = None) -> None:
    """数据资源管理员名单 The administrators to file with the commission (article 21), on screen or as a file.

    Example: govshare person administrators --output 数据资源管理员备案.xlsx
    """
    from registry.db import session_scope
    from registry.people.persons import (
        ADMINISTRATOR_HEADERS,
        administrators_rows,
        write_administrators,
    )

    with reported_errors(), session_scope() as session:
        rows = administrators_rows(session, agency=agency, on=parse_day(on))
        if output is not None:
            write_administrators(rows, output)
            console.print(f"已写入 {shown(output)}：{len(rows)} 名数据资源管理员 / written")
        else:
            table("数据资源管理员 / administrators", ADMINISTRATOR_HEADERS, rows)
