"""The `govshare` command. Heavy imports (the registry and SQLAlchemy, Airflow, pyarrow, FastAPI) stay inside the
commands that need them: help and usage errors load none of them (tests/test_cli_startup.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import calendar as calendar_cmds
from cli import identifier_cmds, registry_cmds
from cli.output import console, err_console, reported_errors, shown, table
from cli.usage import ChineseUsageGroup, one_of

app = typer.Typer(
    cls=ChineseUsageGroup,  # usage errors of every command in Chinese
    help="govshare: government data sharing and exchange hub (政务数据资源共享交换平台).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(registry_cmds.agency_app, name="agency")
app.add_typer(registry_cmds.source_app, name="source")
app.add_typer(registry_cmds.resource_app, name="resource")
app.add_typer(registry_cmds.token_app, name="token")
app.add_typer(calendar_cmds.app, name="calendar")
app.add_typer(identifier_cmds.app, name="validate")
app.command("subscribe")(registry_cmds.subscribe_command)
from cli import cdc_cmds  # noqa: E402 - change capture

app.add_typer(cdc_cmds.cdc_app, name="cdc")
from cli import catalog_cmds, people_cmds  # noqa: E402 - catalogue system

app.add_typer(catalog_cmds.catalog_app, name="catalog")
from cli import catalog_io_cmds  # noqa: E402 - offline tool, docking, search, interface services, DCAT

catalog_io_cmds.register(catalog_cmds.catalog_app)
app.add_typer(people_cmds.person_app, name="person")
from cli import quality_cmds  # noqa: E402 - quality layer

app.add_typer(quality_cmds.quarantine_app, name="quarantine")
app.add_typer(quality_cmds.ticket_app, name="ticket")
app.add_typer(quality_cmds.element_app, name="element")
app.add_typer(quality_cmds.contract_app, name="contract")
app.command("consistency")(quality_cmds.consistency_command)
app.command("expectations")(quality_cmds.expectations_command)
from cli import exchange_cmds  # noqa: E402 - exchange engine

app.add_typer(exchange_cmds.notices_app, name="notices")
app.command("changes")(exchange_cmds.changes_command)
app.command("verify")(exchange_cmds.verify_command)
app.command("export")(exchange_cmds.export_command)
app.command("schema-changes")(exchange_cmds.schema_changes_command)
app.command("housekeep")(exchange_cmds.housekeep_command)
from cli import delivery_cmds  # noqa: E402 - offline exchange: packages and SFTP push

app.add_typer(delivery_cmds.package_app, name="package")
app.add_typer(delivery_cmds.push_app, name="push")
app.add_typer(delivery_cmds.cache_app, name="delivery-cache")
from cli import sharing_cmds  # noqa: E402 - sharing workflows, users, grants, audit

sharing_cmds.install(app, registry_cmds.token_app)
from cli import supervision_cmds  # noqa: E402 - evaluation, violations, rectification, notices

supervision_cmds.install(app)


@app.command()
def init() -> None:
    """Create or migrate the registry database to the latest schema.

    Example: GOVSHARE_DATABASE_URL=postgresql+psycopg2://govshare@db/govshare govshare init
    """
    from core.settings import get_settings
    from registry.catalog.dagspecs import write_dag_specs
    from registry.migrate import current_revision, upgrade

    with reported_errors():
        settings = get_settings()
        before = current_revision()
        upgrade()
        write_dag_specs()
        after = current_revision()
        state = "already up to date" if before == after else f"migrated {before or 'empty'} -> {after}"
        console.print(f"registry {shown(settings.database_url.split('@')[-1])}: {state}")


@app.command()
def sync(resource: Annotated[str, typer.Argument(help="resource code")],
         full: Annotated[bool, typer.Option("--full", help="read everything, not only changes")] = False,
         wait: Annotated[float, typer.Option(help="seconds to wait while another run holds the resource")] = 0,
         attempts: Annotated[int, typer.Option(help="tries when the source drops or the resource is busy")] = 1) -> None:
    """Extract, check, stage and publish a new version of a resource now, then queue its update notices.

    Example: govshare sync 101001/0001 --full --wait 60 --attempts 3
    """
    from pipeline.sync import sync_resource

    if cdc_cmds.is_cdc_resource(resource):  # change capture: stream the slot instead of reading the table
        return cdc_cmds.sync_cdc_command(resource, full=full, wait=wait, attempts=attempts)
    with reported_errors():
        report = sync_resource(resource_code=resource, full=full, wait_seconds=wait, attempts=attempts)
        from registry.exchange.versions import change_summary
        from schemas.presentation import label

        title = (f"{report.resource_code} v{report.version}" if report.published else
                 f"{report.resource_code}: 无变化，未发布新版本 / unchanged, v{report.previous_version} stays current")
        table(title, ["mode", "read", "published", "quarantined", "version rows", "changes +/~/-", "manifest"],
              [(label("run_modes", report.mode), report.rows_read, report.rows_published, report.rows_quarantined,
                report.version_rows, change_summary(report.changes), report.manifest_sha256[:16] or "-")])
        if report.rows_quarantined:  # where the provider's rows wait, and its ticket
            console.print(f"{report.rows_quarantined} 行已隔离并通知提供部门更正 / rows quarantined, the provider's "
                          f"ticket lists them: `govshare quarantine list {shown(resource)}`")
        for step, problem in report.after.get("errors", {}).items():
            err_console.print(f"[yellow]发布后步骤未完成 / after the publish, {shown(step)} failed:[/yellow] {shown(problem, lines=True)}",
                              soft_wrap=True)


@app.command()
def versions(resource: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """List a resource's published versions, newest first.

    Example: govshare versions 101001/0001
    """
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.versions import change_summary, list_versions
    from schemas.presentation import label, moment_compact

    with reported_errors(), session_scope() as session:
        rows = [(f"v{v.number}", moment_compact(v.created_at), v.row_count, v.quarantined_count,
                 label("run_modes", v.manifest.get("mode")), (v.manifest.get("watermark") or {}).get("value"),
                 change_summary(v.manifest.get("changes")), v.manifest_sha256[:16])
                for v in list_versions(session, resource=get_resource(session, code=resource))]
        table(f"{resource} versions", ["version", "published 北京时间", "rows", "quarantined", "mode", "watermark",
                                       "changes +/~/-", "manifest"], rows)


def _reason_cell(text: str | None, *, keep: int = 300) -> str:
    """A run's error on one wrapped cell: whole, or its head and its tail when very long. The tail is what to do
    (`govshare source edit …`): cutting at 120 characters left "the source refused the hub (cann" and no action."""
    text = " ".join((text or "").split())
    return text if len(text) <= 2 * keep else f"{text[:keep]} … {text[-keep:]}"


RUN_STATUSES = ("running", "staging", "staged", "published", "unchanged", "failed", "interrupted")


@app.command()
def runs(resource: Annotated[str | None, typer.Argument(help="resource code (all resources when left out)")] = None,
         status: Annotated[str | None, typer.Option(help="running, staging, staged, published, unchanged, failed "
                                                    "(interrupted ones too) or interrupted (its process killed "
                                                    "mid-way)")] = None,
         limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 20) -> None:
    """Sync runs (同步运行记录), newest first: how each ended, its rows, the version it published, or why it
    failed (a refused login, a missing column, a run abandoned by a killed process and taken over). A run whose
    process is gone (killed mid-way) shows as 已中断 (interrupted) until the resource's next run closes it.

    Example: govshare runs 101001/0001 --status failed
    """
    from sqlalchemy import func, select

    from pipeline.locks import LIVE_RUN_STATES, interrupted_runs
    from registry.catalog.models import Resource
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.models import DatasetVersion, SyncRun
    from schemas.presentation import label, moment_compact

    one_of(status, RUN_STATUSES)
    # A killed run is still recorded live: it is asked for as failed or interrupted, and is no longer staging.
    recorded = {"failed": ("failed", *LIVE_RUN_STATES), "interrupted": LIVE_RUN_STATES}.get(status or "", (status,))
    with reported_errors(), session_scope() as session:
        query = select(SyncRun, Resource.code).join(Resource, Resource.id == SyncRun.resource_id)
        if resource is not None:
            query = query.where(SyncRun.resource_id == get_resource(session, code=resource).id)
        if status is not None:
            query = query.where(SyncRun.status.in_(recorded))
        live = session.scalar(select(func.count()).select_from(query.where(
            SyncRun.status.in_(LIVE_RUN_STATES)).subquery())) if status is not None else 0
        found = session.execute(query.order_by(SyncRun.started_at.desc()).limit(max(1, limit) + live)).all()
        gone = interrupted_runs(session, [run for run, _ in found])
        rows = []
        for run, code in found:
            shown_status = "interrupted" if run.id in gone else run.status
            wanted = (status, "interrupted") if status == "failed" else (status,)
            if status is not None and shown_status not in wanted:
                continue
            version = session.get(DatasetVersion, run.version_id) if run.version_id is not None else None
            rows.append((run.id[:8], code, moment_compact(run.started_at),
                         moment_compact(run.finished_at) if run.finished_at else "",
                         label("run_modes", run.mode), label("run_statuses", shown_status),
                         run.rows_read, run.rows_published, run.rows_quarantined,
                         f"v{version.number}" if version else "",
                         _reason_cell(gone.get(run.id) or run.error)))
        table("同步运行 / sync runs", ["run", "resource", "started 北京时间", "finished", "方式 mode", "状态 status", "read",
                                      "published", "quarantined", "version", "error"], rows[:max(1, limit)])


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="bind address (GOVSHARE_API_HOST)")] = None,
          port: Annotated[int | None, typer.Option(help="port (GOVSHARE_API_PORT)")] = None,
          workers: Annotated[int, typer.Option(help="server processes (one per core for busy interfaces); with "
                                               "GOVSHARE_REDIS_URL they share the rate limits")] = 1,
          access_log: Annotated[bool, typer.Option(help="log every HTTP request (reads are audited anyway)")] = True,
          ) -> None:
    """Serve the HTTP API (catalogue, versions, downloads; OpenAPI at /openapi.json).

    Example: govshare serve --port 8000 --workers 2
    """
    import uvicorn

    from core.settings import get_settings
    from registry.migrate import require_current

    with reported_errors():
        settings = get_settings()
        settings.require_secret()
        require_current()  # an empty or older registry: say so now, not as a 500 on every request
        from registry.audit.log import require_sealing_key
        from registry.db import session_scope

        with session_scope() as session:
            require_sealing_key(session)  # not the key the registry was sealed with: every audited action fails
        host, port = host or settings.api_host, port or settings.api_port
        _require_free_address(host, port)
        # Named, not imported: the CLI and the API are both entry layers, neither imports the other.
        uvicorn.run("api.delivery:serving_app", factory=True, workers=workers, host=host, port=port,
                    access_log=access_log)


def _require_free_address(host: str, port: int) -> None:
    """Say in one line that the address is taken or not this machine's (uvicorn logged it in English after
    'Application startup complete' and exited 3, the hub's status for a fatal run)."""
    import socket

    from core.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(zh=f"无法解析监听地址 {host}（GOVSHARE_API_HOST / --host）：{exc}",
                          en=f"cannot resolve the address to listen on, {host} (GOVSHARE_API_HOST / --host): {exc}")
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(zh=f"无法在 {host}:{port} 上监听（{exc.strerror}）：端口已被占用时请先停止占用它的进程，或用 "
                                 "--port / GOVSHARE_API_PORT 换一个端口；地址须是本机的（--host / GOVSHARE_API_HOST）",
                              en=f"cannot listen on {host}:{port} ({exc.strerror}): if another process holds the port, "
                                 "stop it or choose another with --port / GOVSHARE_API_PORT; the address must be this "
                                 "machine's (--host / GOVSHARE_API_HOST)")


@app.command()
def demo(airflow: Annotated[bool, typer.Option(help="run the sync DAGs through Airflow's dag.test()")] = True) -> None:
    """Run the whole story on the embedded default (SQLite + local storage) under GOVSHARE_HOME (./var).

    Example: govshare demo
    """
    from cli.demo import run_demo

    with reported_errors():
        run_demo(use_airflow=airflow)


def main() -> None:
    """The `govshare` command; an error no command caught still ends in one clear line, never a traceback."""
    import logging
    import sys

    from cli.output import OneLineWarnings, unexpected

    logging.lastResort = OneLineWarnings()  # a warning logged with its traceback: one line here, the rest in the log
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last net under every command
        sys.exit(unexpected(exc))


if __name__ == "__main__":
    main()
