"""Sync runs (同步运行) as the registry records them: started only once the resource's lock is held, ended
failed (with the error), published, or unchanged (checked, nothing to publish), so the update clock and
supervision see every run that kept the resource up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select

from core import clock
from core.settings import get_settings
from registry.db import session_scope
from registry.exchange.models import SyncRun

FULL_MODES = ("full", "cdc-snapshot")  # runs that read every row of the source
DONE_STATES = ("published", "unchanged")
NOT_MARKED = ("未能将运行记为失败（下一次运行时关闭）", "the run is not marked failed (the next run closes it)")
FILES_LEFT = ("运行文件留待定期清理（govshare housekeep）", "its files are left to housekeeping")
log = logging.getLogger(__name__)


def start_run(*, run_id: str, resource_id: int, mode: str, status: str = "staging") -> None:
    """Record a run that holds its resource's lock (a run never shows as live without it)."""
    with session_scope() as session:
        session.add(SyncRun(id=run_id, resource_id=resource_id, status=status, mode=mode))


def _reason(exc: BaseException) -> str:
    """What `govshare runs` shows for a failed run (a Ctrl-C or a stop signal has no text of its own)."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return f"已中断 / interrupted ({type(exc).__name__}: Ctrl-C or a stop signal); nothing was published"
    return str(exc) or type(exc).__name__


def record_run_failure(run_id: str, exc: BaseException, *, resource_id: int | None = None,
                       mode: str = "full") -> bool:
    """The run failed: recorded with its error (a run refused before it started gets a row of its own). False
    when the registry could not take it: the run's own error matters more than the bookkeeping, and the next
    run of the resource closes a run left live (pipeline.locks)."""
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is None and resource_id is not None:
                run = SyncRun(id=run_id, resource_id=resource_id, mode=mode)
                session.add(run)
            if run is not None:
                run.status, run.finished_at, run.error = "failed", clock.now(), _reason(exc)[:2000]
        return True
    except Exception:  # noqa: BLE001 - the original error matters more than the bookkeeping
        return False


def cleanup_unfinished(run_id: str, *, failed: bool, undone: Sequence[tuple[str, str]],
                       cause: BaseException | None) -> None:
    """One warning (the CLI's 注意 line) for what a run's clean-up could not do, in Chinese and English: beside
    the run's own error, never instead of it."""
    from sqlalchemy.exc import DBAPIError

    if not undone:
        return
    zh, en = "；".join(z for z, _ in undone), "; ".join(e for _, e in undone)
    if isinstance(cause, DBAPIError):  # the driver's words, without SQLAlchemy's wrapping and link
        why = "登记库无法访问 / the registry cannot be reached: " + " ".join(str(cause.orig).split())[:200]
    else:
        why = " ".join(str(cause).split())[:200] if cause is not None else ""
    if failed:
        log.warning("运行 %s 失败后的清理未完成：%s。运行本身的错误见下 / the clean-up of failed run %s did not finish: "
                    "%s; the run's own error follows (%s)", run_id[:8], zh, run_id[:8], en, why)
    else:
        log.warning("运行 %s 已结束，但清理未完成：%s / run %s ended, but its clean-up did not finish: %s (%s)",
                    run_id[:8], zh, run_id[:8], en, why)


def full_read_due(session, *, resource_id: int) -> bool:  # noqa: ANN001 - Session
    """The periodic full read (safety net: every row compared, whatever the source can tell): due once the
    last run that read everything, published or unchanged, is GOVSHARE_FULL_REFRESH_DAYS old."""
    days = get_settings().full_refresh_days
    if not days:
        return False
    last = session.scalar(select(SyncRun.finished_at).where(
        SyncRun.resource_id == resource_id, SyncRun.mode.in_(FULL_MODES), SyncRun.status.in_(DONE_STATES),
        SyncRun.finished_at.is_not(None)).order_by(SyncRun.finished_at.desc()).limit(1))
    return last is None or clock.now() - clock.as_utc(last) >= timedelta(days=days)
