"""`govshare cdc status|guard`, and the change-capture branch of `govshare sync`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import console, reported_errors, shown, table

cdc_app = typer.Typer(help="Change capture (变更捕获): PostgreSQL logical replication slots of cdc resources.",
                      no_args_is_help=True)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


@cdc_app.command("status")
def status() -> None:
    """Show every cdc resource's slot: WAL it holds back on the source, confirmed and published positions.

    Example: govshare cdc status
    """
    from core.settings import get_settings
    from pipeline.cdc_slots import cdc_status

    with reported_errors():
        rows = []
        for s in cdc_status():
            state = ("出错 / error: " + s.problem) if s.problem else (
                ("使用中 / active" if s.active else "空闲 / idle") if s.exists else "无复制槽 / no slot")
            rows.append((s.resource_code, s.slot, state, _mb(s.retained_bytes) if s.exists else "-",
                         s.wal_status or "-", s.confirmed_lsn or "-", s.published_lsn or "-",
                         s.resync_pending or "-"))
        table(f"复制槽 / change-capture slots (limit {get_settings().cdc_max_retained_mb} MB)",
              ["resource", "slot", "state", "retained WAL", "wal_status", "confirmed", "published", "resync pending"],
              rows)


@cdc_app.command("guard")
def guard() -> None:
    """Drop slots holding back too much WAL (GOVSHARE_CDC_MAX_RETAINED_MB); their resources re-read in full next.

    Example: govshare cdc guard   (run it from cron or the maintenance DAG)
    """
    from pipeline.cdc_slots import guard_all

    with reported_errors():
        results = guard_all()
        if not results:
            console.print("所有复制槽均在限值内 / every change-capture slot is within its limits")
        for r in results:
            verb = "已删除 / dropped" if r.dropped else "未删除 / kept"
            console.print(f"{shown(r.resource_code)} slot {shown(r.slot)}: {verb}: {shown(r.reason, lines=True)}")


@cdc_app.command("enable")
def enable(resource: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """Switch a PostgreSQL resource to change capture; its next sync takes a snapshot and creates the slot.

    Example: govshare cdc enable 101001/0001
    """
    from pipeline.cdc_slots import set_cdc_mode

    with reported_errors():
        set_cdc_mode(resource_code=resource, enabled=True)
        console.print(f"{shown(resource)}: 已启用变更捕获 / change capture enabled; run `govshare sync {shown(resource)}`")


@cdc_app.command("disable")
def disable(resource: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """Switch a resource back to table reads and drop its slot and publication on the source.

    Example: govshare cdc disable 101001/0001
    """
    from pipeline.cdc_slots import set_cdc_mode

    with reported_errors():
        dropped = set_cdc_mode(resource_code=resource, enabled=False)
        console.print(f"{shown(resource)}: 已停用变更捕获 / change capture disabled"
                      + (f"; slot {shown(dropped)} dropped" if dropped else ""))


def sync_cdc_command(resource: str, *, full: bool, wait: float = 0, attempts: int = 1) -> None:
    """`govshare sync` for a resource in cdc mode."""
    import time

    from core.errors import RetriableError
    from pipeline.cdc import sync_cdc
    from schemas.presentation import label

    with reported_errors():
        for attempt in range(1, max(1, attempts) + 1):
            try:
                report = sync_cdc(resource_code=resource, full=full, wait_seconds=wait)
                break
            except RetriableError:  # nothing was confirmed: the next attempt gets the same changes again
                if attempt >= attempts:
                    raise
                time.sleep(2.0 * 2 ** (attempt - 1))
        title = f"{report.resource_code} v{report.version}" if report.version else \
            f"{report.resource_code}: 无变更 / no change ({report.note or 'nothing new'})"
        table(title, ["mode", "changed rows", "deleted", "transactions", "re-delivered", "published", "quarantined",
                      "position (LSN)"],
              [(label("run_modes", report.mode), report.upserts, report.deletes, report.transactions, report.redelivered,
                report.rows_published if report.version else "-", report.rows_quarantined, report.position)])
        if report.version and report.mode == "cdc-snapshot":
            console.print(f"全量快照 / full snapshot: {shown(report.note, lines=True)}")


def is_cdc_resource(resource: str) -> bool:
    from pipeline.cdc_resource import is_cdc
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    with reported_errors(), session_scope() as session:
        return is_cdc(get_resource(session, code=resource).stream)
