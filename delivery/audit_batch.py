"""Group commit of read audits for the high-rate interface channel (接口交换).

Every keyed lookup is audited before its answer leaves (article 18), but one transaction per lookup costs a
disk flush and a turn at the chain's write lock each time, which caps the rate far below what a busy consumer
system sends. Here requests hand their audit record to one writer thread and wait: the writer appends every
waiting record to the hash chain in a single transaction, commits once, and releases them all. The guarantee
is unchanged (no answer without its committed audit record); the cost is shared.

On SQLite a coroutine first tries to append its record itself, on the event loop, when the write lock is
free at once (a commit there is a write to the log, no fsync): most lookups are then answered without any
thread hop; under contention they queue for the writer as before. Appends go through
registry.audit.log.ChainWriter (one driver connection, the INSERT compiled once).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from core.errors import RetriableError
from delivery.access import AccessDecision, read_event
from registry.audit.log import ChainWriter

MAX_BATCH = 500
WAIT_SECONDS = 30.0
IDLE_SECONDS = 60.0
CHECKPOINT_SECONDS = 1.0


@dataclass
class _Pending:
    decision: AccessDecision
    rows: int
    fmt: str
    done: Future | None = None  # a thread waits on it (record)
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None  # or a coroutine (record_async)


class GroupAudit:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sqlite = database_url.startswith("sqlite")
        self._inline = threading.local()  # an event loop thread's own SQLite writer
        self._checkpointer: threading.Thread | None = None
        self._last_write = 0.0

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
        """record() for a coroutine: the event loop serves other requests while the batch commits, and the
        writer wakes the loop once per batch (not a thread future chained to a loop future per record)."""
        if self._sqlite and self._queue.empty() and self._append_inline(decision=decision, rows=rows, fmt=fmt):
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._queue.put(_Pending(decision=decision, rows=rows, fmt=fmt, waiter=(loop, waiter)))
        self._start()
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await waiter
        except TimeoutError as exc:
            raise RetriableError("the audit log did not accept the record in time; retry the request") from exc

    def _append_inline(self, *, decision: AccessDecision, rows: int, fmt: str) -> bool:
        """On SQLite, append on the calling (event loop) thread when the write lock is free at once: a
        commit without fsync costs about 80 us there, less than handing the record to the writer thread and
        back. It never waits (busy_timeout 0): when another writer holds the lock, or on any error, nothing
        is kept and the caller goes through the writer thread, which waits, retries and reports."""
        writer = getattr(self._inline, "writer", None)
        if writer is None:
            writer = self._inline.writer = ChainWriter(_sqlite_writer_engine(self._url, busy_ms=0))
        try:
            writer.append([read_event(decision=decision, rows=rows, fmt=fmt)])
        except Exception as exc:  # noqa: BLE001 - busy, or broken: the writer thread takes the record
            if "locked" not in str(exc) and "busy" not in str(exc):
                self._inline.writer = _discard(writer)  # not merely busy: start afresh next time
            return False
        self._wrote()
        return True

    def _wrote(self) -> None:
        """Keep the SQLite log being copied into the database while records are written."""
        self._last_write = time.monotonic()
        if self._sqlite and (self._checkpointer is None or not self._checkpointer.is_alive()):
            with self._lock:
                if self._checkpointer is None or not self._checkpointer.is_alive():
                    self._checkpointer = threading.Thread(target=self._checkpoints, daemon=True,
                                                          name="govshare-audit-checkpoint")
                    self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the write-ahead log into the database every second while records are written (readers and
        writers go on meanwhile: a passive checkpoint waits for no one); end when idle."""
        from sqlalchemy import text

        engine = _sqlite_writer_engine(self._url)
        try:
            while time.monotonic() - self._last_write < IDLE_SECONDS:
                time.sleep(CHECKPOINT_SECONDS)
                try:
                    with engine.connect() as connection:
                        connection.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
                except Exception:
                    logging.getLogger(__name__).warning("audit log checkpoint failed", exc_info=True)
        finally:
            engine.dispose()

    def _run(self) -> None:
        from registry.db import engine_for

        writer: ChainWriter | None = None
        engine = _sqlite_writer_engine(self._url) if self._sqlite else engine_for(self._url)
        while True:
            try:
                batch = [self._queue.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:  # idle: end the thread unless a record arrived meanwhile
                    if self._queue.empty():
                        self._thread = None
                        _discard(writer)
                        return
                continue
            while len(batch) < MAX_BATCH:  # whatever queued up while the previous batch was committed
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if writer is None:
                    writer = ChainWriter(engine)
                writer.append([read_event(decision=i.decision, rows=i.rows, fmt=i.fmt) for i in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must learn of the failure
                writer = _discard(writer)  # a broken connection is not reused
                _settle(batch, exc)
                continue
            self._wrote()
            _settle(batch, None)


def _settle(batch: list[_Pending], error: Exception | None) -> None:
    """Tell every waiter of a batch how it ended: threads directly, each event loop with one wake-up."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for item in batch:
        if item.done is not None:
            item.done.set_exception(error) if error is not None else item.done.set_result(None)
        elif item.waiter is not None:
            by_loop.setdefault(item.waiter[0], []).append(item.waiter[1])
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiters, error)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass


def _resolve(waiters: list[asyncio.Future], error: Exception | None) -> None:
    for waiter in waiters:
        if not waiter.done():  # a request that timed out has stopped waiting
            waiter.set_exception(error) if error is not None else waiter.set_result(None)


def _discard(writer: ChainWriter | None) -> None:
    if writer is not None:
        try:
            writer.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail too
            pass


def _sqlite_writer_engine(url: str, *, busy_ms: int = 30_000):
    """A writer's own SQLite connection, never checkpointing on commit: a checkpoint copies the log into
    the database file and would hold up every lookup waiting for that commit. _checkpoints does it aside."""
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"check_same_thread": False})

    def configure(connection, _record) -> None:
        cursor = connection.cursor()
        # synchronous=NORMAL as the registry's own connections (registry/db.py): a commit survives a crash of
        # the process; without it every group commit waited for an fsync.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={busy_ms}",
                       "wal_autocheckpoint=0"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine, "connect", configure)
    return engine


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
