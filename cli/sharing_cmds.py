"""`govshare apply|decide|dispute|agreement|grant`: the sharing workflows (articles 13, 14, 17, 19).

Every command acts as the console unless `--as USERNAME` (see cli/access_cmds.py); refusals say why in Chinese
and English and are audited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli import access_cmds
from cli.access_cmds import AsUser, acting_as, refusals_audited
from cli.output import parse_day
from cli.output import console, due, reported_errors, shown, table
from cli.usage import bad_value, status_of

apply_app = typer.Typer(help="Applications for conditional resources (按需共享申请, article 14) and for leave to "
                             "publish or pass on data (article 17).", no_args_is_help=True)
dispute_app = typer.Typer(help="Disputes (协调处理) decided by the coordination office.", no_args_is_help=True)
agreement_app = typer.Typer(help="Secrecy review (保密审查) and secrecy agreements (安全保密协议).",
                            no_args_is_help=True)
grant_app = typer.Typer(help="Grants (共享授权): who may read what.", no_args_is_help=True)
sharing_app = typer.Typer(help="The sharing invariant (共享授权核查): every grant rests on a live basis.",
                          no_args_is_help=True)


@sharing_app.command("check")
def sharing_check() -> None:
    """List every grant in force without an approved application or a live subscription on a published entry,
    every grant naming a column its catalogue entry does not list (neither a data item nor the registered key),
    and every sealed row (grant, API token, user, session, designation, resource) changed outside the hub.

    Exits 1 when any is found (a cron job or health check notices); the daily supervision DAG runs it too.

    Example: govshare sharing check
    """
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants, edited_rows, unlisted_grant_columns
    from schemas.presentation import label

    with reported_errors(), session_scope() as session:
        found, edited, unlisted = baseless_grants(session), edited_rows(session), unlisted_grant_columns(session)
        table("无依据的授权 / grants without a basis", ["授权 grant", "资源 resource", "获取方 consumer", "来源 origin",
                                                 "问题 problem"],
              [(g.grant_id, g.resource_code, g.agency_code, label("grant_origins", g.origin),
                f"{g.problem_zh} / {g.problem_en}")
               for g in found])
        if edited:
            table("在平台之外被改动的记录 / rows changed outside the hub", ["表 table", "编号 id", "问题 problem"],
                  [(e.table, e.row_id, "封签不符，已停止使用，请核查并恢复 / its seal does not match: refused until "
                    "restored") for e in edited])
        if unlisted:
            table("授权含目录未列出的列 / grants naming columns the entry does not list",
                  ["授权 grant", "资源 resource", "获取方 consumer", "问题 problem"],
                  [(u.grant_id, u.resource_code, u.agency_code,
                    f"目录条目未列出 {'、'.join(u.columns)}，读取时已不提供；条目再次发布时从授权中移除 / the entry does not "
                    f"list {', '.join(u.columns)}: not served; taken off the grant at the entry's next publication")
                   for u in unlisted])
        if found or edited or unlisted:
            raise typer.Exit(1)
        console.print("每项有效授权均有已批准的申请或有效订阅 / every grant in force has its basis")


@apply_app.command("submit")
def apply_submit(resource: str, agency: Annotated[str, typer.Option(help="consumer agency code or name")],
                 scope: Annotated[str, typer.Option(help="共享范围")],
                 purpose: Annotated[str, typer.Option(help="共享用途")],
                 item: Annotated[list[str], typer.Option("--item", help="data item (column) wanted, repeatable")],
                 row_filter: Annotated[Optional[str], typer.Option("--filter", help='row condition as JSON, e.g. '
                                       '{"column":"district_code","op":"in","values":["310115"]}')] = None,
                 kind: Annotated[str, typer.Option(help="use, or external (publish / pass on, article 17)")] = "use",
                 form: Annotated[Optional[Path], typer.Option(help="also write the PDF form here")] = None,
                 as_user: AsUser = None) -> None:
    """Submit an application; prints its number and the decision deadline.

    Example: govshare apply submit 101001/0002 --agency 上海市人力资源和社会保障局 --scope 本市企业
    --purpose 社保登记核验 --item uscc --item name
    """
    from registry.sharing.applications import apply
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "apply submit"), session_scope() as session:
        try:
            rule = json.loads(row_filter) if row_filter else None
        except json.JSONDecodeError as exc:
            raise bad_value(row_filter, f"不是有效的 JSON / --filter is not JSON: {exc}") from None
        application = apply(session, resource_code=resource, consumer=agency, scope=scope, purpose=purpose,
                            items=item, row_filter=rule, kind=kind, by=acting_as(session, as_user))
        if form:
            from registry.sharing.application_form import render_form

            form.write_bytes(render_form(application))
        console.print(f"application {application.number} submitted; the provider answers by "
                      f"{due(application.due_on)} (10 working days)")


@apply_app.command("list")
def apply_list(status: Annotated[Optional[str], typer.Option(
                   help="submitted, approved, partial, refused, disputed or withdrawn")] = None,
               as_user: AsUser = None) -> None:
    """List applications."""
    from registry.sharing.applications import list_applications
    from registry.db import session_scope
    from schemas.presentation import label

    status_of(status, "application_statuses")
    with reported_errors(), refusals_audited(as_user, "apply list"), session_scope() as session:
        table("共享申请 / applications", ["number", "kind", "resource", "consumer", "status", "due", "approved"],
              [(a.number, label("application_kinds", a.kind), a.resource.code, a.consumer.name,
                label("application_statuses", a.status), due(a.due_on),
                ", ".join(a.approved_items or []) or "-")
               for a in list_applications(session, by=acting_as(session, as_user), status=status)])


@apply_app.command("form")
def apply_form(number: str, out: Annotated[Path, typer.Option(help="PDF file to write")]) -> None:
    """Write the application form (需求申请表) as a PDF for the written submission.

    Example: govshare apply form XQSQ-20260930-0001 --out 需求申请表.pdf
    """
    from registry.sharing.application_form import render_form
    from registry.sharing.applications import get_application
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        out.write_bytes(render_form(get_application(session, number=number)))
        console.print(f"form written to {shown(out)}")


@apply_app.command("receive")
def apply_receive(number: str, on: Annotated[str, typer.Option(help="day the written form arrived")],
                  as_user: AsUser = None) -> None:
    """Record the day the written form arrived; the 10-working-day clock runs from it."""
    from registry.sharing.applications import record_receipt
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "apply receive"), session_scope() as session:
        application = record_receipt(session, number=number, received_on=parse_day(on), by=acting_as(session, as_user))
        console.print(f"{shown(number)}: received {application.received_on}, answer due by {due(application.due_on)}")


@apply_app.command("correct-receipt")
def apply_correct_receipt(number: str, on: Annotated[str, typer.Option(help="the day the written form really arrived")],
                          reason: Annotated[str, typer.Option(help="更正理由")], as_user: AsUser = None) -> None:
    """Correct a recorded arrival day entered wrongly (更正收件日期); the due day is recomputed from it.

    Example: govshare apply correct-receipt XQSQ-20261102-0001 --on 2026-11-03 --reason 签收日登记错误 --as zhang.wei
    """
    from registry.sharing.applications import correct_receipt
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "apply correct-receipt"), session_scope() as session:
        application = correct_receipt(session, number=number, received_on=parse_day(on), reason=reason,
                                      by=acting_as(session, as_user))
        console.print(f"{shown(number)}: received {application.received_on} (corrected), answer due by "
                      f"{due(application.due_on)}")


@apply_app.command("withdraw")
def apply_withdraw(number: str, reason: Annotated[str, typer.Option(help="撤回理由")], as_user: AsUser = None) -> None:
    """Withdraw your agency's application before it is answered (撤回申请); the provider is told.

    Example: govshare apply withdraw XQSQ-20261102-0001 --reason 需求已取消 --as zhang.wei
    """
    from registry.db import session_scope
    from registry.sharing.withdrawal import withdraw_application

    with reported_errors(), refusals_audited(as_user, "apply withdraw"), session_scope() as session:
        withdraw_application(session, number=number, reason=reason, by=acting_as(session, as_user))
    console.print(f"已撤回申请 {shown(number)} / application {shown(number)} withdrawn")


@apply_app.command("deadlines")
def apply_deadlines(today: Annotated[Optional[str], typer.Option(help="as of this day (default today)")] = None,
                    ) -> None:
    """Send reminders before the deadline and flag overdue applications to the coordination office (run daily)."""
    from registry.sharing.applications import check_deadlines
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        done = check_deadlines(session, today=parse_day(today), by=acting_as(session, None))
        table("期限 / deadlines", ["application", "action"], done)


@apply_app.command("inbox")
def apply_inbox(as_user: AsUser = None) -> None:
    """Messages: applications to answer, reminders, decisions, overdue flags, disputes."""
    from registry.sharing.applications import inbox
    from registry.db import session_scope
    from schemas.presentation import label

    with reported_errors(), refusals_audited(as_user, "apply inbox"), session_scope() as session:
        table("消息 / inbox", ["id", "类型", "消息"],
              [(m.id, label("inbox_kinds", m.kind), m.message)
               for m in inbox(session, by=acting_as(session, as_user))])


def decide_command(number: str,
                   outcome: Annotated[str, typer.Option(help="approve, partial or refuse")],
                   reason: Annotated[str, typer.Option(help="意见及理由 (always required)")],
                   item: Annotated[Optional[list[str]], typer.Option("--item", help="approved item")] = None,
                   unmask: Annotated[bool, typer.Option(help="show every personal identifier unmasked")] = False,
                   unmask_column: Annotated[Optional[list[str]], typer.Option(
                       "--unmask-column", help="show this personal identifier unmasked; repeatable")] = None,
                   expires: Annotated[Optional[str], typer.Option(help="grant ends on this day")] = None,
                   as_user: AsUser = None) -> None:
    """The provider's decision on an application: approve all or some data items, or refuse; with reasons.

    Example: govshare decide XQSQ-20260930-0001 --outcome partial --item uscc --reason 注册资本不属于核验所需
    """
    from registry.sharing.applications import decide
    from registry.db import session_scope
    from schemas.presentation import label

    with reported_errors(), refusals_audited(as_user, "decide"), session_scope() as session:
        application = decide(session, number=number, outcome=outcome, reasons=reason, approved_items=item or None,
                             unmask=unmask or list(unmask_column or []), expires_on=parse_day(expires),
                             by=acting_as(session, as_user))
        console.print(f"{shown(number)}: {label('application_statuses', application.status)}; "
                      f"grant {application.grant_id or '-'}")


@dispute_app.command("open")
def dispute_open(number: str, grounds: Annotated[str, typer.Option(help="异议理由")], as_user: AsUser = None) -> None:
    """The consumer disputes a decision; the coordination office is told."""
    from registry.db import session_scope
    from registry.sharing.disputes import open_dispute

    with reported_errors(), refusals_audited(as_user, "dispute open"), session_scope() as session:
        dispute = open_dispute(session, number=number, grounds=grounds, by=acting_as(session, as_user))
        console.print(f"dispute {dispute.id} opened on {shown(number)}")


@dispute_app.command("conclude")
def dispute_conclude(dispute_id: int, outcome: Annotated[str, typer.Option(help="approve, partial or refuse")],
                     conclusion: Annotated[str, typer.Option(help="协调结论")],
                     item: Annotated[Optional[list[str]], typer.Option("--item")] = None,
                     expires: Annotated[Optional[str], typer.Option(
                         help="grant ends on this day; needed when the provider's term has ended")] = None,
                     as_user: AsUser = None) -> None:
    """The coordination office's conclusion, which becomes the decision."""
    from registry.db import session_scope
    from registry.sharing.disputes import conclude_dispute
    from schemas.presentation import label

    with reported_errors(), refusals_audited(as_user, "dispute conclude"), session_scope() as session:
        dispute = conclude_dispute(session, dispute_id=dispute_id, outcome=outcome, conclusion=conclusion,
                                   approved_items=item or None, by=acting_as(session, as_user),
                                   expires_on=parse_day(expires))
        console.print(f"dispute {dispute.id}: {label('application_statuses', dispute.outcome)}; "
                      f"grant {dispute.application.grant_id or '-'}")


@dispute_app.command("list")
def dispute_list(as_user: AsUser = None) -> None:
    from registry.db import session_scope
    from registry.sharing.disputes import list_disputes
    from schemas.presentation import label

    with reported_errors(), refusals_audited(as_user, "dispute list"), session_scope() as session:
        table("协调处理 / disputes", ["id", "application", "status", "outcome", "conclusion"],
              [(d.id, d.application.number, label("dispute_statuses", d.status),
                label("application_statuses", d.outcome) or "-", d.conclusion or "-")
               for d in list_disputes(session, by=acting_as(session, as_user))])


@agreement_app.command("review")
def agreement_review(resource: str,
                     state_secret: Annotated[bool, typer.Option(help="涉及国家秘密")] = False,
                     commercial_secret: Annotated[bool, typer.Option(help="涉及商业秘密")] = False,
                     personal_privacy: Annotated[bool, typer.Option(help="涉及个人隐私")] = False,
                     personal_column: Annotated[Optional[list[str]], typer.Option(help="identifier column")] = None,
                     note: str = "", as_user: AsUser = None) -> None:
    """Record the provider's secrecy review (保密审查) of a resource.

    Example: govshare agreement review 101001/0002 --personal-privacy --personal-column legal_rep_id
    """
    from registry.sharing.agreements import set_sensitivity
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "agreement review"), session_scope() as session:
        marks = set_sensitivity(session, resource_code=resource, state_secret=state_secret,
                                commercial_secret=commercial_secret, personal_privacy=personal_privacy,
                                personal_columns=personal_column or [], note=note, by=acting_as(session, as_user))
        console.print(f"{shown(resource)}: secrecy review recorded; agreement required: {marks.involves_secrets}")


@agreement_app.command("add")
def agreement_add(resource: str, consumer: Annotated[str, typer.Option(help="consumer agency code or name")],
                  party: Annotated[list[str], typer.Option("--party", help="a signing party, repeatable")],
                  signed_on: Annotated[str, typer.Option(help="signing date")],
                  valid_until: Annotated[str, typer.Option(help="last day of the term")],
                  scan: Annotated[Path, typer.Option(help="the signed agreement, scanned (PDF or image)")],
                  as_user: AsUser = None) -> None:
    """Record a signed secrecy agreement (the provider's side, or `--as` one of its administrators); pending
    grants on the resource become active.

    Example: govshare agreement add 101001/0002 --consumer 上海市人力资源和社会保障局 --party 上海市市场监督管理局
    --party 上海市人力资源和社会保障局 --signed-on 2026-10-08 --valid-until 2027-10-07 --scan 协议.pdf
    """
    from registry.sharing.agreements import add_agreement
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "agreement add"), session_scope() as session:
        agreement = add_agreement(session, resource_code=resource, consumer=consumer, parties=party,
                                  signed_on=parse_day(signed_on), valid_until=parse_day(valid_until), scan=scan,
                                  by=acting_as(session, as_user))
        console.print(f"agreement {shown(agreement.number)} recorded (scan SHA-256 {agreement.scan_sha256[:16]}…)")


@agreement_app.command("list")
def agreement_list(as_user: AsUser = None) -> None:
    from registry.sharing.agreements import list_agreements, verify_scan
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "agreement list"), session_scope() as session:
        table("保密协议 / agreements", ["number", "resource", "parties", "signed", "until", "scan intact", "revoked"],
              [(a.number, a.resource_id, " / ".join(a.parties), a.signed_on, a.valid_until, verify_scan(a),
                a.revoked_at or "-") for a in list_agreements(session, by=acting_as(session, as_user))])


@agreement_app.command("revoke")
def agreement_revoke(number: str, reason: Annotated[str, typer.Option(help="撤销理由")],
                     as_user: AsUser = None) -> None:
    """End a secrecy agreement now; reads that need it are refused from the next request on.

    Example: govshare agreement revoke BMXY-20260105-0001 --reason 需求方超范围使用
    """
    from registry.sharing.agreements import revoke_agreement
    from registry.db import session_scope

    with reported_errors(), refusals_audited(as_user, "agreement revoke"), session_scope() as session:
        revoke_agreement(session, number=number, reason=reason, by=acting_as(session, as_user))
        console.print(f"agreement {shown(number)} revoked")


@grant_app.command("list")
def grant_list(resource: Annotated[Optional[str], typer.Option()] = None,
               agency: Annotated[Optional[str], typer.Option()] = None, as_user: AsUser = None) -> None:
    """List grants with their data items, row condition, purpose and status."""
    from registry.people.agencies import get_agency
    from registry.db import session_scope
    from registry.sharing.grants import list_grants
    from registry.catalog.resources import get_resource
    from schemas.presentation import label

    with reported_errors(), refusals_audited(as_user, "grant list"), session_scope() as session:
        rows = list_grants(session, by=acting_as(session, as_user),
                           resource=get_resource(session, code=resource) if resource else None,
                           agency=get_agency(session, ref=agency) if agency else None)
        table("共享授权 / grants", ["id", "resource", "consumer", "status", "items", "rows", "purpose", "expires"],
              [(g.id, g.resource.code, g.agency.name, label("grant_statuses", g.status),
                ", ".join(g.columns) if g.columns else "all",
                json.dumps(g.row_filter, ensure_ascii=False) if g.row_filter else "all", g.purpose,
                g.expires_at or "-") for g in rows])


@grant_app.command("revoke")
def grant_revoke(grant_id: int, reason: Annotated[str, typer.Option(help="撤销理由")], as_user: AsUser = None) -> None:
    """Revoke a grant; the next request on any channel is refused.

    Example: govshare grant revoke 7 --reason 超出共享用途使用
    """
    from registry.db import session_scope
    from registry.sharing.grants import revoke_grant

    with reported_errors(), refusals_audited(as_user, "grant revoke"), session_scope() as session:
        revoke_grant(session, grant_id=grant_id, reason=reason, by=acting_as(session, as_user))
        console.print(f"grant {grant_id} revoked")


def install(app: typer.Typer, token_app: typer.Typer) -> None:
    """Add this module's commands to the `govshare` command (one line in cli/main.py)."""
    app.add_typer(access_cmds.user_app, name="user")
    app.add_typer(apply_app, name="apply")
    app.add_typer(dispute_app, name="dispute")
    app.add_typer(agreement_app, name="agreement")
    app.add_typer(grant_app, name="grant")
    app.add_typer(sharing_app, name="sharing")
    app.add_typer(access_cmds.audit_app, name="audit")
    app.command("decide")(decide_command)
    token_app.command("list")(access_cmds.token_list)
    token_app.command("revoke")(access_cmds.token_revoke)
