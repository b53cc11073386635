"""Group commit of read audits for the high-rate interface channel (接口交换).

Every keyed lookup is audited before its answer leaves (article 18), but one transaction per lookup costs a
disk flush and a turn at the chain's write lock each time, which caps the rate far below what a busy consumer
system sends. Here requests hand their audit record to one writer thread and wait: the writer appends every
waiting record to the hash chain in a single transaction, commits once, and releases them all. The guarantee
is unchanged (no answer without its committed audit record); the cost is shared.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from core.errors import RetriableError
from delivery.access import AccessDecision, read_event
from registry.audit import record_events

MAX_BATCH = 500
WAIT_SECONDS = 30.0
IDLE_SECONDS = 60.0
CHECKPOINT_SECONDS = 1.0


@dataclass
class _Pending:
    decision: AccessDecision
    rows: int
    fmt: str
    done: Future


class GroupAudit:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="govshare-audit-writer", daemon=True)
                self._thread.start()

    def submit(self, *, decision: AccessDecision, rows: int, fmt: str) -> Future:
        """Queue the read's audit record; the future completes when it is committed (or fails)."""
        pending = _Pending(decision=decision, rows=rows, fmt=fmt, done=Future())
        self._queue.put(pending)
        self._start()  # after the put: a writer that has just gone idle is replaced, never missed
        return pending.done

    def record(self, *, decision: AccessDecision, rows: int, fmt: str) -> None:
        """Return once the read's audit record is committed; raise if it could not be."""
        try:
            self.submit(decision=decision, rows=rows, fmt=fmt).result(timeout=WAIT_SECONDS)
        except TimeoutError as exc:
            raise RetriableError("the audit log did not accept the record in time; retry the request") from exc

    async def record_async(self, *, decision: AccessDecision, rows: int, fmt: str) -> None:
        """record() for a coroutine: the event loop serves other requests while the batch commits."""
        import asyncio

        try:
            await asyncio.wait_for(asyncio.wrap_future(self.submit(decision=decision, rows=rows, fmt=fmt)),
                                   WAIT_SECONDS)
        except TimeoutError as exc:
            raise RetriableError("the audit log did not accept the record in time; retry the request") from exc

    def _run(self) -> None:
        from sqlalchemy.orm import sessionmaker

        from registry.db import engine_for

        stopped = threading.Event()  # ends this writer's checkpoint thread with it
        engine = engine_for(self._url)
        if engine.dialect.name == "sqlite":
            engine = _sqlite_writer_engine(self._url)
            threading.Thread(target=_checkpoints, args=(engine, stopped), daemon=True,
                             name="govshare-audit-checkpoint").start()
        sessions = sessionmaker(engine, expire_on_commit=False)
        while True:
            try:
                batch = [self._queue.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:  # idle: end the thread unless a record arrived meanwhile
                    if self._queue.empty():
                        self._thread = None
                        stopped.set()
                        return
                continue
            while len(batch) < MAX_BATCH:  # whatever queued up while the previous batch was committed
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with sessions.begin() as session:
                    record_events(session, [read_event(decision=i.decision, rows=i.rows, fmt=i.fmt) for i in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must learn of the failure
                for item in batch:
                    item.done.set_exception(exc)
                continue
            for item in batch:
                item.done.set_result(None)


def _sqlite_writer_engine(url: str):
    """The writer's own SQLite connection, never checkpointing on commit: a checkpoint copies the log into
    the database file and would hold up every lookup waiting for that commit. _checkpoints does it aside."""
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"check_same_thread": False})

    def configure(connection, _record) -> None:
        cursor = connection.cursor()
        # synchronous=NORMAL as the registry's own connections (registry/db.py): a commit survives a crash of
        # the process; without it every group commit waited for an fsync.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000",
                       "wal_autocheckpoint=0"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine, "connect", configure)
    return engine


def _checkpoints(engine, stopped: threading.Event) -> None:
    """Copy the write-ahead log into the database every second while the writer lives (readers and the writer
    go on meanwhile: a passive checkpoint waits for no one)."""
    from sqlalchemy import text

    while not stopped.wait(CHECKPOINT_SECONDS):
        try:
            with engine.connect() as connection:
                connection.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
        except Exception:
            logging.getLogger(__name__).warning("audit log checkpoint failed", exc_info=True)
    engine.dispose()


_WRITERS: dict[str, GroupAudit] = {}
_WRITERS_LOCK = threading.Lock()


def group_audit() -> GroupAudit:
    """One writer per registry database (tests switch databases within one process)."""
    from core.settings import get_settings

    url = get_settings().database_url
    with _WRITERS_LOCK:
        if url not in _WRITERS:
            _WRITERS[url] = GroupAudit(url)
        return _WRITERS[url]
