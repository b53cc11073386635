"""`govshare quarantine|ticket|element|consistency|expectations`: the quality layer (articles 11, 12, 23).

Mounted by cli/main.py. Messages are Chinese with English; errors go through cli.output.reported_errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import console, reported_errors, shown, table
from cli.output import note as show_note
from cli.usage import bad_value, status_of
from core.errors import ConfigError

quarantine_app = typer.Typer(help="隔离数据 Quarantined rows: list, export for the provider, replay after the fix.",
                             no_args_is_help=True)
ticket_app = typer.Typer(help="疑义校核工单 Error-correction tickets sent to provider agencies.", no_args_is_help=True)
contract_app = typer.Typer(help="数据契约 Data contracts: columns, key, identifier roles and quality rules as YAML.",
                           no_args_is_help=True)
element_app = typer.Typer(help="数据元 Data elements and their one authoritative source (一数一源).",
                          no_args_is_help=True)


@quarantine_app.command("list")
def quarantine_list(resource: Annotated[str, typer.Argument(help="resource code")],
                    status: Annotated[str | None, typer.Option(help="open, resolved or replayed")] = None) -> None:
    """列出隔离数据 List a resource's quarantined rows by run and rule.

    Example: govshare quarantine list 101001/0001 --status open
    """
    from registry.db import session_scope
    from registry.quality.quarantine import list_quarantine
    from schemas.presentation import label, moment_compact

    status_of(status, "quarantine_statuses")
    with reported_errors(), session_scope() as session:
        sets = list_quarantine(session, resource_code=resource, status=status)
        table(f"{resource} 隔离数据 / quarantined rows", ["run", "隔离时间（北京时间）", "行数 rows", "规则 rules", "状态 status"],
              [(s.run_id[:12], moment_compact(s.created_at), s.rows,
                ", ".join(f"{k}={v}" for k, v in sorted(s.rules.items())), label("quarantine_statuses", s.status))
               for s in sets])
        console.print(f"待处理 open: {sum(s.rows for s in sets if s.status == 'open')} 行 rows")


@quarantine_app.command("export")
def quarantine_export(resource: Annotated[str, typer.Argument(help="resource code")],
                      output: Annotated[Path, typer.Option("--output", "-o", help="file to write (.csv or .xlsx)")],
                      run: Annotated[str | None, typer.Option(help="only this run (id or prefix)")] = None) -> None:
    """导出隔离数据交数据提供部门更正 Export open quarantined rows (rule, reason, source values) for the provider.

    Example: govshare quarantine export 101001/0001 -o fix-101001.xlsx
    """
    from pipeline.quarantine import export_quarantine

    with reported_errors():
        rows = export_quarantine(resource_code=resource, path=output, run_id=run)
        console.print(f"已导出 {rows} 行至 {shown(output)} / exported {rows} rows to {shown(output)}")


@quarantine_app.command("replay")
def quarantine_replay(resource: Annotated[str, typer.Argument(help="resource code")],
                      file: Annotated[Path | None, typer.Option(help="the provider's corrected export")] = None,
                      run: Annotated[str | None, typer.Option(help="only this run (id or prefix)")] = None) -> None:
    """回放更正后的数据 Check fixed rows again and publish them into a new version.

    Without --file the stored rows are re-checked as they are (after a contract was corrected).
    Example: govshare quarantine replay 101001/0001 --file fix-101001.xlsx
    """
    from pipeline.replay import replay_quarantine

    with reported_errors():
        report = replay_quarantine(resource_code=resource, file=file, run_id=run)
        table(f"{resource} v{report.version} (回放 replay)", ["回放 replayed", "发布 published", "仍未通过 still failing"],
              [(report.rows_replayed, report.rows_fixed, report.rows_still_failing)])


@ticket_app.command("list")
def ticket_list(agency: Annotated[str | None, typer.Option(help="agency code or name")] = None,
                status: Annotated[str | None, typer.Option(help="open or closed")] = None,
                resource: Annotated[str | None, typer.Option(
                    help="resource code (a ticket for a rule across the provider's resources is listed under "
                         "each)")] = None) -> None:
    """列出疑义校核工单 List error-correction tickets.

    Example: govshare ticket list --agency 上海市市场监督管理局 --status open
    """
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets
    from schemas.presentation import label, moment_compact

    status_of(status, "ticket_statuses")
    with reported_errors(), session_scope() as session:
        tickets = list_tickets(session, agency=agency, status=status, resource_code=resource)
        table("疑义校核工单 / tickets", ["id", "类型 kind", "机构 agency", "资源 resource", "行数 rows", "状态 status",
                                     "开具 opened 北京时间"],
              [(t.id, label("ticket_kinds", t.kind), t.agency.name, ", ".join(t.resource_codes), t.rows,
                label("ticket_statuses", t.status),
                moment_compact(t.created_at)) for t in tickets])


@ticket_app.command("show")
def ticket_show(ticket_id: Annotated[int, typer.Argument(help="ticket id")],
                limit: Annotated[int, typer.Option(help="rows to show")] = 50) -> None:
    """查看工单及其数据 Show a ticket and the rows it lists.

    Example: govshare ticket show 3
    """
    from pipeline.quarantine import ticket_rows
    from registry.db import session_scope
    from registry.quality.tickets import get_ticket
    from schemas.presentation import label

    with reported_errors(), session_scope() as session:
        ticket = get_ticket(session, ticket_id=ticket_id)
        # shown: rich reads text in brackets as markup (the status, once shown as [open], vanished)
        console.print(f"工单 {ticket.id}（{shown(label('ticket_statuses', ticket.status))}）{shown(ticket.agency.name)}: "
                      f"{shown(ticket.title)}", soft_wrap=True)
        if ticket.note:
            console.print(f"备注 note: {shown(ticket.note, lines=True)}", soft_wrap=True)
        columns, rows = ticket_rows(session, ticket=ticket, limit=limit)
        if columns and columns[0] == "_rule":  # rule and reason, then the source values of the row
            rows = [(r[0], r[1], "; ".join(f"{c}={v}" for c, v in zip(columns[2:], r[2:]) if v is not None))
                    for r in rows]
            columns = ["规则 rule", "原因 reason", "源数据 source values"]
        if columns and "copy_value" in columns:  # one line per mismatch: the two values side by side
            console.print(f"前 {len(rows)} 处 / first {len(rows)} of {ticket.rows} mismatches:")
            for row in rows:
                record = dict(zip(columns, row))
                console.print(f"  {shown(record['key'])} {shown(record['element'])}: 副本 copy {shown(repr(record['copy_value']))} "
                              f"≠ 权威 authority {shown(repr(record['authoritative_value']))}", soft_wrap=True)
        elif columns:
            table(f"前 {len(rows)} 行 / first {len(rows)} of {ticket.rows} rows", columns, rows)


@ticket_app.command("close")
def ticket_close(ticket_id: Annotated[int, typer.Argument(help="ticket id")],
                 note: Annotated[str, typer.Option(help="what was checked or corrected")]) -> None:
    """关闭工单 Close a ticket, saying what was corrected.

    Example: govshare ticket close 3 --note "源系统已更正注册资本"
    """
    from registry.db import session_scope
    from registry.quality.tickets import close_ticket

    with reported_errors(), session_scope() as session:
        ticket = close_ticket(session, ticket_id=ticket_id, note=note)
        console.print(f"工单 {ticket.id} 已关闭 / ticket {ticket.id} closed")


@element_app.command("add")
def element_add(
    code: Annotated[str, typer.Argument(help="数据元编码 element code, e.g. DE0001")],
    name: Annotated[str, typer.Argument(help="数据元名称, e.g. 企业名称")],
    agency: Annotated[str, typer.Option(help="the one authoritative agency (code or name)")],
    resource: Annotated[str, typer.Option(help="the agency's resource holding the authoritative values")],
    column: Annotated[str, typer.Option(help="column of that resource holding the values")],
    key_column: Annotated[str, typer.Option(help="column holding the subject key")] = "uscc",
    subject_key: Annotated[str, typer.Option(help="uscc, idcard or orgcode")] = "uscc",
    description: Annotated[str, typer.Option(help="what the element means")] = "",
) -> None:
    """登记数据元及其权威来源 Register a data element and its authoritative source.

    Example: govshare element add DE0001 企业名称 --agency 上海市市场监督管理局 --resource 101001/0001 --column name
    """
    from registry.db import session_scope
    from registry.catalog.elements import add_element

    with reported_errors(), session_scope() as session:
        element = add_element(session, code=code, name=name, agency=agency, resource_code=resource, column=column,
                              key_column=key_column, subject_key=subject_key, description=description)
        console.print(f"数据元 {shown(element.code)} {shown(element.name)} 已登记, 权威来源 {shown(element.agency.name)} "
                      f"{shown(element.resource.code)}.{shown(element.column)} / registered")


@element_app.command("list")
def element_list() -> None:
    """列出数据元 List data elements with their authoritative agency and resource.

    Example: govshare element list
    """
    from registry.db import session_scope
    from registry.catalog.elements import list_elements

    with reported_errors(), session_scope() as session:
        table("数据元 / data elements", ["code", "名称 name", "主体标识 key", "权威部门 agency", "资源 resource", "字段 column"],
              [(e.code, e.name, f"{e.subject_key} ({e.key_column})", e.agency.name, e.resource.code, e.column)
               for e in list_elements(session)])


def consistency_command(
    resource: Annotated[str, typer.Argument(help="the non-authoritative copy's resource code")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="COLUMN=ELEMENT (default: the contract's `element:`)")] = None,
    key: Annotated[str | None, typer.Option(help="the copy's subject-key column (default: its identifier role)")] = None,
) -> None:
    """一致性比对 Compare a copy's values by key with the authoritative datasets; report mismatches to both agencies.

    Example: govshare consistency 102001/0001 --map taxpayer_name=DE0001 --key uscc
    """
    from pipeline.consistency import check_consistency

    with reported_errors():
        mapping = {}
        for pair in map_ or []:
            column, sep, element = pair.partition("=")
            if not sep:
                raise bad_value(pair, f"{pair!r} 应为 列名=数据元代码 / is not COLUMN=ELEMENT")
            mapping[column.strip()] = element.strip()
        report = check_consistency(resource_code=resource, mapping=mapping or None, key_column=key)
        table(f"{resource} 一致性比对 / consistency", ["数据元 element", "权威来源 authority", "比对 compared",
                                                     "不一致 mismatches", "权威缺失 missing"],
              [(e["element"], f"{e['agency']} {e['resource']}", e["compared"], e["mismatches"], e["missing"])
               for e in report.elements])
        if report.tickets:
            console.print(f"已向双方开具工单 / tickets opened: {', '.join(str(t) for t in report.tickets)}")


def expectations_command(
    resource: Annotated[str, typer.Argument(help="resource code")],
    version: Annotated[int | None, typer.Option(help="version number (default: the latest)")] = None,
) -> None:
    """运行 great-expectations 校验 Validate a published version with the contract's GX suite and store the report.

    Example: govshare expectations 101001/0001
    """
    from pipeline.expectations import validate_version

    with reported_errors():
        result = validate_version(resource_code=resource, version_number=version)
        table(f"{resource} v{result['version']} great-expectations", ["expectation", "column", "unexpected", "ok"],
              [(r["expectation"], r.get("column") or "", r["unexpected_count"], "✓" if r["success"] else "✗")
               for r in result["results"]])
        console.print(f"{result['status']}: {result['failed']} of {result['evaluated']} failed; "
                      f"report: {shown(result['report_html'])}")


@contract_app.command("list")
def contract_list() -> None:
    """列出数据契约 List the contracts found (GOVSHARE_HOME/contracts first, then the shipped ones).

    Example: govshare contract list
    """
    from schemas.contract_store import contract_files, find_contract

    with reported_errors():
        rows = []
        for path in contract_files():
            contract = find_contract(path.stem)
            rows.append((contract.name, contract.title, ",".join(contract.key), len(contract.rules),
                         ", ".join(contract.resources), str(path)))
        table("数据契约 / contracts", ["name", "title", "key", "rules", "resources", "file"], rows)


@contract_app.command("check")
def contract_check(path: Annotated[Path, typer.Argument(help="contract YAML file")]) -> None:
    """校验契约文件 Validate a contract file; every problem is listed at once (exit status 1).

    Example: govshare contract check my-contracts/enterprises.yaml
    """
    from quality.contracts import load_contract

    with reported_errors():
        contract = load_contract(path)
        table(f"{contract.name} 规则 / rules", ["id", "type", "scope", "blocking", "columns"],
              [(r.id, r.type, r.scope, "是 yes" if r.blocking else "否 no (提示)", ", ".join(r.columns_used()))
               for r in contract.rules])
        console.print(f"契约有效 / contract {shown(contract.name)} is valid")


@contract_app.command("draft")
def contract_draft(source: Annotated[str, typer.Option(help="source name")],
                   table_name: Annotated[str, typer.Option("--table", help="table (or stream) to describe")],
                   out: Annotated[Path | None, typer.Option(help="file to write (default: print it)")] = None,
                   name: Annotated[str | None, typer.Option(help="contract name (default: the table's)")] = None) -> None:
    """起草数据契约 Draft a contract from a source table's columns, for you to edit (docs/contracts.md).

    Example: govshare contract draft --source scjg-pg --table enterprises --out ~/govshare/contracts/enterprises.yaml
    """
    from registry.exchange.contracts import draft_contract
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        text = draft_contract(session, source=source, table=table_name, name=name)
    if out is None:
        typer.echo(text)
        return
    with reported_errors():
        if out.exists():
            raise ConfigError(f"{out} exists; give another --out (a draft never overwrites an edited contract)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    console.print(f"契约草稿已写入 / draft written to {shown(out)}; edit it, then `govshare contract check {shown(out)}`",
                  soft_wrap=True)


@contract_app.command("attach")
def contract_attach(resource: Annotated[str, typer.Argument(help="resource code")],
                    name: Annotated[str, typer.Argument(help="contract name (file name without .yaml)")]) -> None:
    """为资源指定数据契约 Apply a contract's rules to a resource from its next run on.

    Example: govshare contract attach 101001/0001 enterprises
    """
    from registry.exchange.contracts import attach_contract
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.streams import verify_stream

    with reported_errors(), session_scope() as session:
        contract = attach_contract(session, resource_code=resource, name=name)
        note = verify_stream(get_resource(session, code=resource))  # the source must have the contract's columns
        show_note(note)
        console.print(f"资源 {shown(resource)} 使用契约 {shown(contract.name)} ({len(contract.rules)} 条规则 rules)")
