"""`govshare catalog submit|confidentiality|review|overdue|reconfirm`: the review workflow (articles 10, 19) and
the statutory clocks (articles 10, 16); attached to `catalog_app` of cli/catalog_cmds.py."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.catalog_cmds import DayOption, catalog_app
from cli.output import parse_day
from cli.output import console, due, reported_errors, shown, table
from cli.usage import bad_value


@catalog_app.command("submit")
def submit_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                   by: Annotated[str, typer.Option("--as", "--by", help="编目人员账号 cataloguer's account")],
                   on: DayOption = None) -> None:
    """提交审核 Submit the entry's latest revision for review.

    Example: govshare catalog submit 101001/0001 --as zhangsan
    """
    from registry.catalog.review import submit_revision
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        revision = submit_revision(session, code=code, account=by, on=parse_day(on))
        console.print(f"{shown(code)} 第{revision.number}版已提交审核 / submitted for review")


@catalog_app.command("confidentiality")
def confidentiality_command(
    code: Annotated[str, typer.Argument(help="信息资源代码")],
    by: Annotated[str, typer.Option("--as", "--by", help="审查人账号 (审核人员或数据资源管理员)")],
    passed: Annotated[bool, typer.Option("--passed/--failed", help="审查结论")] = True,
    note: Annotated[str, typer.Option(help="审查意见 (required when failed)")] = "",
    on: DayOption = None,
) -> None:
    """保密审查 Record the agency's confidentiality review of the pending revision (article 19).

    Example: govshare catalog confidentiality 101001/0001 --as lisi --passed --note 不涉及国家秘密
    """
    from registry.catalog.review import record_confidentiality_review
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        record_confidentiality_review(session, code=code, account=by, passed=passed, note=note, on=parse_day(on))
        console.print(f"{shown(code)} 保密审查已记录：{'通过' if passed else '未通过'} / confidentiality review recorded")


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise bad_value(value, f"{what} {value!r} 应为 名称=意见 / expected NAME=COMMENT")
        out[key.strip()] = text.strip()
    return out


@catalog_app.command("review")
def review_command(
    code: Annotated[str, typer.Argument(help="信息资源代码")],
    by: Annotated[str, typer.Option("--as", "--by", help="审核人员账号 reviewer's account")],
    approve: Annotated[bool, typer.Option("--approve/--return", help="通过并发布，或退回修改")],
    comment: Annotated[list[str] | None, typer.Option(help="要素意见 ELEMENT=COMMENT, e.g. 共享条件=请写明依据")] = None,
    item_comment: Annotated[list[str] | None, typer.Option(help="信息项意见 ITEM=COMMENT")] = None,
    on: DayOption = None,
) -> None:
    """审核 Approve (publish) or return the submitted revision with comments per element and data item.

    Example: govshare catalog review 101001/0001 --as lisi --return --comment 共享条件=请写明法律依据
    """
    from registry.catalog.review import review_revision
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        revision = review_revision(session, code=code, account=by, approve=approve,
                                   comments=_pairs(comment, "要素意见"), item_comments=_pairs(item_comment, "信息项意见"),
                                   on=parse_day(on))
        verdict = "审核通过，已发布 / published" if approve else "已退回修改 / returned"
        console.print(f"{shown(code)} 第{revision.number}版{verdict}")


@catalog_app.command("withdraw")
def withdraw_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                     by: Annotated[str, typer.Option("--as", "--by", help="审核人员账号 reviewer's account")],
                     reason: Annotated[str, typer.Option(help="撤销理由")],
                     on: DayOption = None) -> None:
    """撤销发布 Withdraw a published entry: it leaves the catalogue and every grant on it ends at once.

    Example: govshare catalog withdraw 101001/0001 --as lisi --reason 数据来源停止采集
    """
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        withdraw_entry(session, code=code, account=by, reason=reason, on=parse_day(on))
        console.print(f"{shown(code)} 已撤销发布，相关共享授权已终止 / withdrawn; its grants ended")


@catalog_app.command("overdue")
def overdue_command(agency: Annotated[str | None, typer.Option(help="只看该机构")] = None,
                    today: Annotated[str | None, typer.Option(help="按该日判断 as of day YYYY-MM-DD")] = None,
                    pending: Annotated[bool, typer.Option("--pending", help="也列出未到期的更新义务")] = False) -> None:
    """逾期清单 Updates not done within 2 working days, and entries not fully maintained last year.

    Exits 1 when anything is overdue, so a cron job or health check notices.

    Example: govshare catalog overdue --pending
    """
    from registry.db import session_scope
    from registry.catalog.obligations import (
        OBLIGATION_KINDS,
        list_obligations,
        overdue_obligations,
        overdue_reconfirmations,
        unscheduled_obligations,
    )

    with reported_errors(), session_scope() as session:
        day = parse_day(today)
        late = overdue_obligations(session, agency=agency, today=day)
        if pending:
            table("待完成的更新 / open update obligations", ["信息资源代码", "信息资源名称", "类型", "原因", "发生日", "应完成日"],
                  [(o.resource.code, o.resource.name, OBLIGATION_KINDS[o.kind], o.reason, o.opened_on, due(o.due_on))
                   for o in list_obligations(session, agency=agency)])
        table("逾期未更新 / updates overdue (2 个工作日)", ["信息资源代码", "信息资源名称", "提供方", "类型", "原因", "发生日", "应完成日"],
              [(o.resource.code, o.resource.name, o.resource.agency.name, OBLIGATION_KINDS[o.kind], o.reason,
                o.opened_on, o.due_on) for o in late])
        unknown = unscheduled_obligations(session, agency=agency)
        if unknown:
            table("到期日未知：缺少国务院节假日安排 / due day unknown: install the year's schedule",
                  ["信息资源代码", "信息资源名称", "原因", "发生日", "问题 problem"],
                  [(o.resource.code, o.resource.name, o.reason, o.opened_on, o.due_problem) for o in unknown])
        missed = overdue_reconfirmations(session, agency=agency, today=day)
        table("逾期未全面维护 / yearly reconfirmation overdue", ["信息资源代码", "信息资源名称", "提供方", "上次维护", "未维护年度"],
              [(m.resource.code, m.resource.name, m.resource.agency.name, m.last_maintained, m.missed_year)
               for m in missed])
        if late or missed or unknown:
            raise typer.Exit(1)  # a health check or cron job notices


@catalog_app.command("reconfirm")
def reconfirm_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                      by: Annotated[str, typer.Option("--as", "--by", help="本机构指定人员账号")],
                      note: Annotated[str, typer.Option(help="维护说明")] = "", on: DayOption = None) -> None:
    """全面维护确认 Record that the published entry was fully reviewed and is still true (yearly duty).

    Example: govshare catalog reconfirm 101001/0001 --as zhangsan --note 年度全面维护
    """
    from registry.catalog.obligations import reconfirm_entry
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        confirmation = reconfirm_entry(session, code=code, account=by, on=parse_day(on), note=note)
        console.print(f"{shown(code)} 已于 {confirmation.confirmed_on} 完成全面维护确认 / reconfirmed")
