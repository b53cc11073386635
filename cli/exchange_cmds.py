"""`govshare changes|verify|schema-changes|housekeep|notices`: the exchange engine's versions, changes and notices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import console, err_console, reported_errors, shown, table
from cli.usage import status_of

notices_app = typer.Typer(help="Update notices to subscribers (更新通知, article 16).", no_args_is_help=True)


def changes_command(
    resource: Annotated[str, typer.Argument(help="resource code")],
    since: Annotated[int, typer.Option(help="the version you hold: changes of every later version")],
    out: Annotated[Path | None, typer.Option(help="also write the change rows to this Parquet file")] = None,
) -> None:
    """Changes (inserted, updated, deleted keys) of every version after --since, oldest first.

    Example: govshare changes 101001/0001 --since 3 --out changes.parquet
    """
    from pipeline.changes_feed import changes_schema, changes_since, iter_changes
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import require_latest_version

    with reported_errors(), session_scope() as session:
        found = get_resource(session, code=resource)
        span = changes_since(session, resource=found, since=since)
        table(f"{resource}: changes since v{since} (to v{span.latest})", ["version", "inserted", "updated", "deleted",
                                                                           "deletes detected"],
              [(f"v{v.number}", v.manifest["changes"]["inserted"], v.manifest["changes"]["updated"],
                v.manifest["changes"]["deleted"], "yes" if v.manifest["changes"]["deletes_detected"] else "no")
               for v in span.versions])
        if out is not None:
            import pyarrow.parquet as pq

            schema = changes_schema(require_latest_version(session, resource=found))
            rows = 0
            with pq.ParquetWriter(out, schema) as writer:
                for batch in iter_changes(span, schema=schema):
                    writer.write_batch(batch)
                    rows += batch.num_rows
            record_event(session, actor="cli", action="changes.export", agency_code=found.agency.code,
                         resource_code=found.code, detail={"since": since, "to": span.latest, "rows": rows,
                                                           "file": str(out)})
            console.print(f"{rows} change rows written to {shown(out)}")


def export_command(
    resource: Annotated[str, typer.Argument(help="resource code")],
    out: Annotated[Path, typer.Option(help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv (UTF-8 with BOM)")] = "parquet",
    version: Annotated[int | None, typer.Option(help="version number (default: the latest)")] = None,
) -> None:
    """Write a published version to a file (Parquet or CSV), as the console: no API needed. Audited.

    Example: govshare export 101001/0001 --version 3 --format csv --out 企业基本信息_v3.csv
    """
    from delivery.files import export_version

    with reported_errors():
        done = export_version(resource_code=resource, fmt=fmt, out=out, version=version)
    console.print(f"{shown(resource)} v{done['version']}: {done['rows']} 行写入 / rows written to {shown(out)} ({done['bytes']:,} "
                  f"bytes, SHA-256 {done['sha256'][:16]}…; `govshare verify {shown(resource)} {shown(out)} --version "
                  f"{done['version']}` checks it)", soft_wrap=True)


def verify_command(
    resource: Annotated[str, typer.Argument(help="resource code")],
    file: Annotated[Path, typer.Argument(help="a downloaded Parquet or CSV copy")],
    version: Annotated[int | None, typer.Option(help="version to compare with (default: from the file name, "
                                                     "else the latest)")] = None,
    agency: Annotated[str | None, typer.Option(help="the consumer agency (code or name) whose copy it is: compare "
                                                    "with what its grant delivers (rows, items, masking)")] = None,
) -> None:
    """Check a downloaded copy against a version's manifest and files: prints match or the first difference.

    A consumer's copy holds what its grant lets through (personal identifiers masked, only its rows and data
    items): name the consumer with --agency.

    Example: govshare verify 101001/0001 101001_0001_v3.parquet --agency 上海市人力资源和社会保障局
    """
    from delivery.verify import verify_copy

    with reported_errors():
        verdict = verify_copy(resource_code=resource, path=file, version=version, agency=agency)
    whose = f" as {shown(agency)} receives it" if agency else ""
    if verdict.match:
        console.print(f"一致 / match: {shown(file.name)} holds exactly v{verdict.version} of {shown(resource)}{whose} "
                      f"({verdict.rows} rows, {len(verdict.columns)} columns)")
        return
    err_console.print(f"[red]不一致 / differs:[/red] {shown(file.name)} against v{verdict.version} of {shown(resource)}{whose}: "
                      f"{shown(verdict.difference, lines=True)}", soft_wrap=True)
    if agency is None:
        err_console.print("注意 / note: 使用部门收到的副本只含其授权的行和数据项，个人信息已脱敏；核验其副本请加 "
                          "--agency <机构代码> / a consumer's copy holds only its granted rows and items, personal "
                          "identifiers masked: to check it, add --agency <its code>", soft_wrap=True)
    raise typer.Exit(1)


def schema_changes_command(resource: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """Source schema changes detected for a resource (added, dropped, retyped columns), oldest first.

    Example: govshare schema-changes 101001/0001
    """
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.schema_changes import list_schema_changes
    from schemas.presentation import moment_compact

    with reported_errors(), session_scope() as session:
        rows = [(moment_compact(c.detected_at), c.actor, f"v{c.previous_version}",
                 ", ".join(a["name"] for a in c.added) or "-", ", ".join(d["name"] for d in c.dropped) or "-",
                 ", ".join(f"{r['name']} {r['from']}->{r['to']}" for r in c.retyped) or "-",
                 "publishes" if c.compatible else "blocked", c.obligation or "-")
                for c in list_schema_changes(session, resource=get_resource(session, code=resource))]
        table(f"{resource} 结构变更 / schema changes", ["detected 北京时间", "by", "against", "added", "dropped",
                                                       "retyped", "outcome", "obligation"], rows)


def housekeep_command(
    staging_hours: Annotated[float, typer.Option(help="remove the unpublished run folders of runs the registry "
                                                 "does not know once older than this (hours)")] = 24,
    keep: Annotated[int, typer.Option(help="always keep this many newest versions per resource")] = 5,
    keep_days: Annotated[int, typer.Option(help="and every version younger than this many days")] = 30,
) -> None:
    """Housekeeping now (the maintenance DAG does it daily): run folders no version names (crashed or abandoned
    runs, in the local folder or the object store), old versions by the retention rule.

    A version stays while a subscriber still needs it or a kept layered version reads its files.

    Example: govshare housekeep --keep 3 --keep-days 14
    """
    from pipeline.housekeeping import clean_staging, prune_versions

    with reported_errors():
        cleaned = clean_staging(max_age_hours=staging_hours)
        pruned = prune_versions(keep_last=keep, keep_days=keep_days)
    console.print(f"unpublished run folders removed: {len(cleaned)}; versions pruned: "
                  f"{shown(', '.join(pruned)) if pruned else 'none'}")


@notices_app.command("set-webhook")
def notices_set_webhook(
    resource: Annotated[str, typer.Argument(help="resource code")],
    agency: Annotated[str, typer.Option(help="the subscribing agency (code or name)")],
    url: Annotated[str, typer.Option(help="the receiver's https URL")],
) -> None:
    """Send a subscriber's notices to a webhook; prints the new signing secret once (the old one stops working).

    Example: govshare notices set-webhook 101001/0001 --agency 上海市人力资源和社会保障局 --url https://hr.example/hook
    """
    from registry.db import session_scope
    from registry.exchange.notices import find_subscription, set_endpoint

    with reported_errors(), session_scope() as session:
        subscription = find_subscription(session, resource_code=resource, agency=agency)
        done = set_endpoint(session, subscription=subscription, url=url)
    console.print(f"订阅 {done.subscription_id} 的更新通知将推送到 {shown(done.url)} / webhook of subscription "
                  f"{done.subscription_id}: {shown(done.url)}", soft_wrap=True)
    console.print(f"签名密钥（仅显示这一次，旧密钥即时失效；接收端用它校验 X-Govshare-Signature） / signing secret "
                  f"(shown once; verify X-Govshare-Signature with it): {done.secret}", soft_wrap=True)


@notices_app.command("subscriptions")
def notices_subscriptions(resource: Annotated[str | None, typer.Option(help="only this resource")] = None) -> None:
    """Subscriptions and where their notices go (a webhook, or the pull feed only).

    Example: govshare notices subscriptions --resource 101001/0001
    """
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.exchange.notice_models import NoticeEndpoint
    from registry.sharing.models import Subscription
    from schemas.presentation import label

    with reported_errors(), session_scope() as session:
        query = select(Subscription).order_by(Subscription.id)
        rows = []
        for s in session.scalars(query):
            if resource and s.resource.code != resource:
                continue
            endpoint = session.get(NoticeEndpoint, s.id)
            rows.append((s.id, s.resource.code, s.agency.name, label("subscription_statuses", s.status),
                         endpoint.url if endpoint else "pull feed"))
        table("订阅 / subscriptions", ["id", "resource", "subscriber", "status", "notices go to"], rows)


@notices_app.command("list")
def notices_list(resource: Annotated[str | None, typer.Option(help="only this resource")] = None,
                 status: Annotated[str | None, typer.Option(help="pending, delivered, failed, feed, withheld "
                                                                     "(no live grant: not sent), superseded "
                                                                     "(withheld, covered by a later notice) or "
                                                                     "released (withheld, then released as a new "
                                                                     "notice with catch_up)")] = None,
                 limit: Annotated[int, typer.Option(help="at most this many, the newest")] = 100) -> None:
    """The newest notices (oldest of them first) with their delivery state; --status failed shows the ones
    given up.

    Example: govshare notices list --status failed
    """
    from registry.db import session_scope
    from registry.sharing.models import Subscription
    from registry.exchange.notices import list_notices
    from schemas.presentation import label

    status_of(status, "notice_statuses")
    with reported_errors(), session_scope() as session:
        rows = []
        for n in list_notices(session, resource_code=resource, status=status, limit=limit, newest=True):
            subscriber = session.get(Subscription, n.subscription_id).agency.name
            changes = (n.payload or {}).get("changes") or {}
            rows.append((n.id, n.resource_code, f"v{n.version_number}", subscriber, label("notice_statuses", n.status),
                         n.attempts,
                         f"+{changes.get('inserted', 0)} ~{changes.get('updated', 0)} -{changes.get('deleted', 0)}",
                         (n.last_error or "")[:60]))
        table("更新通知 / notices", ["id", "resource", "version", "subscriber", "status", "attempts", "changes",
                                    "last error"], rows)


@notices_app.command("queue")
def notices_queue(resource: Annotated[str, typer.Argument(help="resource code")],
                  version: Annotated[int, typer.Argument(help="version number")]) -> None:
    """Queue a version's notices (done after every publish; safe to repeat: no subscriber gets two).

    Example: govshare notices queue 101001/0001 4
    """
    from pipeline.notify import queue_notices

    with reported_errors():
        queued = queue_notices(resource_code=resource, version_number=version)
        console.print(f"已排队 {queued} 条更新通知 / {queued} notice(s) queued")


@notices_app.command("deliver")
def notices_deliver() -> None:
    """Queue the notices of recent versions a publish never queued (its process killed after the commit), then
    send the webhook notices that are due now (the notices DAG does both every few minutes).

    Example: govshare notices deliver
    """
    from pipeline.notify import deliver_pending, queue_missed

    with reported_errors():
        missed = queue_missed()
        report = deliver_pending()
    console.print(f"更新通知：补排 {missed} 条，送达 {len(report.delivered)} 条，待重试 {len(report.retrying)} 条，"
                  f"放弃 {len(report.failed)} 条，接收端不可达顺延 {len(report.deferred)} 条，"
                  f"授权失效未发送 {len(report.withheld)} 条，授权恢复补发 {len(report.released)} 条"
                  f"（另有 {len(report.superseded)} 条由后续通知代替）/ "
                  + (f"queued {missed} missed, " if missed else "") + f"delivered {len(report.delivered)}, "
                  f"retrying {len(report.retrying)}, given up {len(report.failed)}"
                  + (f", deferred {len(report.deferred)} (receiver unreachable: next sweep)" if report.deferred else "")
                  + (f", withheld {len(report.withheld)} (grant lapsed)" if report.withheld else "")
                  + (f", released {len(report.released)} (grant live again; {len(report.superseded)} superseded)"
                     if report.released or report.superseded else ""))
