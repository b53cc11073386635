"""Supervision commands (articles 22 and 23): evaluation and its periodic notice, violations,
rectification orders, and the daily run the Airflow DAG makes."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from cli.output import console, due, reported_errors, shown, table
from cli.usage import bad_value, one_of

report_app = typer.Typer(help="Reports (报告): the periodic evaluation notice (定期通报).", no_args_is_help=True)
violation_app = typer.Typer(help="Violations of article 23 (违规情形) with their evidence.", no_args_is_help=True)
rectification_app = typer.Typer(help="Rectification orders (责令限期改正).", no_args_is_help=True)
supervision_app = typer.Typer(help="Supervision's daily run (clocks, detection, evaluation).", no_args_is_help=True)

Period = Annotated[str, typer.Option("--period", help="2026 (year), 2026Q4 (quarter) or 2026-11 (month)")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="count clocks as of this day, today or earlier (YYYY-MM-DD; default today)")]
Config = Annotated[Path | None, typer.Option("--config", help="weights file (default GOVSHARE_HOME/evaluation.yaml "
                                                                 "or the shipped schemas/supervision/evaluation.yaml)")]
AsUser = Annotated[str | None, typer.Option("--as", help="act as this user (their roles are checked)")]
VIOLATION_STATUSES = ("open", "resolved", "closed", "dismissed")
ORDER_STATUSES = ("open", "fixed", "overdue")


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    from core import clock

    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise bad_value(value, f"{value!r} 不是有效日期，格式应为 YYYY-MM-DD / not a date: use YYYY-MM-DD") from None
    if day > (today := clock.today()):
        # A day still to come would count every deadline before it as missed (and record violations) already.
        raise bad_value(value, f"统计截至日 {day} 晚于今天 {today}：尚未到期的时限不能算作逾期 / "
                                 f"{day} is after today: a deadline still to come is not missed yet")
    return day


def _case(value: int | None) -> int | None:
    """--case refused at once when article 23 has no such case, naming the cases there are."""
    from registry.supervision.violations import case_refusal

    if value is not None and (refusal := case_refusal(value)):
        raise bad_value(value, refusal)
    return value


def _by(session, as_user: str | None):
    from registry.people.auth import console as console_principal
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    return user_principal(get_user(session, username=as_user)) if as_user else console_principal(getpass.getuser())


def _config(path: Path | None):
    from schemas.evaluation_config import load_config

    return load_config(path)


@report_app.command("evaluation")
def report_evaluation(period: Period, out: Annotated[Path, typer.Option("--out", help="file to write")],
                      fmt: Annotated[str, typer.Option("--format", help="html, pdf or xlsx")] = "html",
                      as_of: AsOf = None, config: Config = None) -> None:
    """Write the periodic notice (定期通报) of a period: scores, ranking, trend, clocks, violations, orders.

    Example: govshare report evaluation --period 2026Q4 --format pdf --out notice-2026Q4.pdf
    """
    from registry.db import session_scope
    from registry.supervision.report_writer import write_report

    with reported_errors(), session_scope() as session:
        path = write_report(session, period=period, fmt=fmt, out=out, as_of=_day(as_of), config=_config(config))
    console.print(f"已生成评估通报 / notice written: {shown(path)}")


def evaluate_command(period: Period, as_of: AsOf = None, config: Config = None,
                     save: Annotated[bool, typer.Option("--save", help="keep the result as an evaluation run")] = False
                     ) -> None:
    """Score and rank every agency for a period (评估考核, article 22).

    Example: govshare evaluate --period 2026Q4 --save
    """
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate, run_evaluation
    from schemas.evaluation_config import METRICS
    from schemas.presentation import NO_DATA, score, share

    with reported_errors(), session_scope() as session:
        weights = _config(config)
        result = evaluate(session, period=period, as_of=_day(as_of), config=weights)
        if save:
            run_evaluation(session, period=period, as_of=_day(as_of), config=weights, actor=f"console:{getpass.getuser()}")
        # The ranking, then one narrow table per agency: nine metric columns side by side did not fit a terminal,
        # and rich cut every figure to "100…" or "10…".
        table(f"{result.period} 评估（截至 {result.as_of}）", ["排名", "机构", "得分"],
              [(a.rank or "—", a.name, score(a.score)) for a in result.agencies])
        for a in result.agencies:
            table(f"{a.name} · 得分 {score(a.score)}", ["指标", "值", "达标 / 应计", "权重"],
                  [(label, share(a.metrics[m]), f"{a.counts[m][0]} / {a.counts[m][1]}", f"{weights.weights[m]:g}")
                   for m, label in METRICS.items()])
        if result.agencies:
            console.print(f"{NO_DATA}：本期没有可统计的事项，不计入得分 / no data: nothing to measure, left out of the score")


@violation_app.command("detect")
def violation_detect(as_of: AsOf = None) -> None:
    """Find violations in the records (idempotent); resolve those the records no longer show.

    Example: govshare violation detect
    """
    from registry.supervision.daily import run_detection

    with reported_errors():
        result = run_detection(today=_day(as_of), actor=f"console:{getpass.getuser()}")
    console.print(f"发现 {result['found']} 项（新增 {len(result['new'])}，消除 {len(result['resolved'])}，"
                  f"终结 {len(result['closed'])}） / found {result['found']}, new {len(result['new'])}, "
                  f"resolved {len(result['resolved'])}, closed {len(result['closed'])}")


@violation_app.command("list")
def violation_list(agency: Annotated[str | None, typer.Option(help="agency code or name")] = None,
                   status: Annotated[str | None, typer.Option(help="open, resolved, closed or dismissed")] = None,
                   case: Annotated[int | None, typer.Option(help="article 23 case, 1-6")] = None,
                   as_user: AsUser = None) -> None:
    """List violations with their evidence records.

    Example: govshare violation list --status open --case 4
    """
    from registry.db import session_scope
    from registry.supervision.violations import list_violations
    from schemas import presentation

    one_of(status, VIOLATION_STATUSES)
    _case(case)
    with reported_errors(), session_scope() as session:
        rows = [(v.id, v.case, presentation.label("violation_kinds", v.kind), v.agency.name,
                 presentation.days_in(v.summary), presentation.evidence(v.evidence.get("records", [])),
                 presentation.label("violation_statuses", v.status), presentation.day(v.detected_on))
                for v in list_violations(session, by=_by(session, as_user), agency=agency, status=status, case=case)]
        table("违规情形 / violations", ["id", "情形", "类型", "机构", "事实", "证据", "状态", "发现"], rows)


@violation_app.command("record")
def violation_record(case: Annotated[int, typer.Option(help="article 23 case, 1-6")],
                     agency: Annotated[str, typer.Option(help="agency code or name")],
                     summary: Annotated[str, typer.Option(help="the facts found (事实)")],
                     resource: Annotated[str | None, typer.Option(help="resource code")] = None,
                     record: Annotated[list[str] | None, typer.Option(
                         help="evidence record TABLE:ID, repeatable (e.g. audit_events:42)")] = None,
                     as_user: AsUser = None) -> None:
    """Record the commission's own inspection finding (监督检查).

    Example: govshare violation record --case 5 --agency 1131... --summary "将共享数据提供给第三方" --record grants:7
    """
    from registry.db import session_scope
    from registry.supervision.violations import record_finding

    _case(case)
    refs = []
    for item in record or []:
        table_name, _, ident = item.partition(":")
        if not table_name or not ident.isdigit():
            raise bad_value(item, f"{item!r} 应为 表名:编号，如 audit_events:42 / use TABLE:ID, e.g. audit_events:42")
        refs.append({"table": table_name, "id": int(ident)})
    with reported_errors(), session_scope() as session:
        violation = record_finding(session, case=case, agency=agency, summary=summary, resource_code=resource,
                                   records=refs, by=_by(session, as_user))
        console.print(f"已登记违规 {violation.id} / recorded violation {violation.id}")


@violation_app.command("dismiss")
def violation_dismiss(violation_id: int, reason: Annotated[str, typer.Option(help="why it is not a violation")],
                      as_user: AsUser = None) -> None:
    """Dismiss a violation after review (不予认定), with the reason."""
    from registry.db import session_scope
    from registry.supervision.violations import dismiss_violation

    with reported_errors(), session_scope() as session:
        dismiss_violation(session, violation_id=violation_id, reason=reason, by=_by(session, as_user))
    console.print(f"违规 {violation_id} 不予认定 / dismissed")


@rectification_app.command("issue")
def rectification_issue(violation_id: int, requirement: Annotated[str, typer.Option(help="what to put right")],
                        days: Annotated[int | None, typer.Option(help="deadline in working days")] = None,
                        on: Annotated[str | None, typer.Option(help="issue day (default today)")] = None,
                        as_user: AsUser = None) -> None:
    """Order the agency to put a violation right within a number of working days.

    Example: govshare rectification issue 12 --requirement "补充发布数据" --days 10
    """
    from registry.db import session_scope
    from registry.supervision.rectification import issue_order

    with reported_errors(), session_scope() as session:
        order = issue_order(session, violation_id=violation_id, requirement=requirement, working_days=days,
                            issued_on=_day(on), by=_by(session, as_user))
        console.print(f"整改通知 {order.number}，整改期限 / order {order.number} due: {due(order.due_on)}")


@rectification_app.command("fixed")
def rectification_fixed(number: str, note: Annotated[str, typer.Option(help="what was put right")],
                        on: Annotated[str | None, typer.Option(help="day fixed (default today)")] = None,
                        as_user: AsUser = None) -> None:
    """Report an order fixed (整改完成)."""
    from registry.db import session_scope
    from registry.supervision.rectification import report_fixed

    with reported_errors(), session_scope() as session:
        order = report_fixed(session, number=number, note=note, fixed_on=_day(on), by=_by(session, as_user))
        late = "（逾期，已认定为拒不整改）" if order.refusal_violation_id else ""
        console.print(f"整改通知 {shown(number)} 已完成{late} / reported fixed")


@rectification_app.command("check")
def rectification_check(today: AsOf = None) -> None:
    """Flag orders past their deadline as refusing rectification (case 6)."""
    from registry.db import session_scope
    from registry.supervision.rectification import check_orders

    with reported_errors(), session_scope() as session:
        flagged = check_orders(session, today=_day(today), actor=f"console:{getpass.getuser()}")
        console.print(f"逾期未整改 {len(flagged)} 份 / overdue: {', '.join(o.number for o in flagged) or 'none'}")


@rectification_app.command("list")
def rectification_list(status: Annotated[str | None, typer.Option(help="open, fixed or overdue")] = None,
                       as_user: AsUser = None) -> None:
    from registry.db import session_scope
    from registry.supervision.rectification import list_orders
    from schemas.presentation import label

    one_of(status, ORDER_STATUSES)
    with reported_errors(), session_scope() as session:
        table("整改通知 / rectification orders", ["编号", "机构", "违规", "下达", "期限", "完成", "状态"],
              [(o.number, o.agency.name, o.violation_id, o.issued_on, due(o.due_on), o.fixed_on,
                label("order_statuses", o.status))
               for o in list_orders(session, by=_by(session, as_user), status=status)])


@supervision_app.command("daily")
def supervision_daily(today: AsOf = None) -> None:
    """What the supervision DAG runs each day: clocks, violation detection, the current quarter's evaluation."""
    from registry.supervision.daily import run_daily

    with reported_errors():
        result = run_daily(today=_day(today), actor=f"console:{getpass.getuser()}")
    for line in daily_summary(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def daily_summary(result: dict) -> list[str]:
    """What the daily run did, a line a step, Chinese first (it printed the raw dict of registry's run_daily)."""
    clocks, found, sharing, run = result["clocks"], result["violations"], result["sharing"], result["evaluation"]
    lines = [f"监督日常运行 {clocks['day']} / supervision daily run",
             f"时限：补记到期日 {len(clocks['scheduled'])} 项，申请提醒与逾期 {len(clocks['applications'])} 件，"
             f"授权到期通知 {len(clocks['expired_grants'])} 项，目录更新逾期 {len(clocks['overdue_obligations'])} 项，"
             f"待排期 {len(clocks['unscheduled_obligations'])} 项，逾期未整改 {len(clocks['rectification_overdue'])} 份"
             f" / clocks: {len(clocks['scheduled'])} due days filled, {len(clocks['applications'])} application "
             f"reminders or overdue, {len(clocks['expired_grants'])} expired grants told, "
             f"{len(clocks['overdue_obligations'])} catalogue updates overdue, "
             f"{len(clocks['unscheduled_obligations'])} unscheduled, "
             f"{len(clocks['rectification_overdue'])} rectification orders overdue"]
    if clocks.get("schedule_warning"):
        lines.append(clocks["schedule_warning"])  # its Chinese, then its English
    lines.append(f"违规情形：发现 {found['found']} 项（新增 {len(found['new'])}，消除 {len(found['resolved'])}，"
                 f"终结 {len(found['closed'])}） / violations: found {found['found']}, new {len(found['new'])}, "
                 f"resolved {len(found['resolved'])}, closed {len(found['closed'])}")
    grants, rows = sharing["baseless_grants"], sharing["edited_rows"]
    also = "；请运行 govshare sharing check 查看" if grants or rows else ""
    lines.append(f"共享核查：无依据的授权 {len(grants)} 项，平台外改动的记录 {len(rows)} 条{also} / sharing check: "
                 f"{len(grants)} grants without a basis, {len(rows)} rows edited outside the hub"
                 + ("; see `govshare sharing check`" if also else ""))
    closed = (f"，并对已结束的 {run['closed_period']} 作最终评估" if run["closed_period"] else "",
              f"; the closed {run['closed_period']} evaluated for good" if run["closed_period"] else "")
    lines.append(f"评估：{run['period']} 已评估 {run['agencies']} 个机构（评估运行 {run['run']}）{closed[0]} / "
                 f"evaluation: {run['period']}, {run['agencies']} agencies scored (run {run['run']}){closed[1]}")
    return lines


def install(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.add_typer(violation_app, name="violation")
    app.add_typer(rectification_app, name="rectification")
    app.add_typer(supervision_app, name="supervision")
    app.command("evaluate")(evaluate_command)
