"""The pull feed's cursor (更新通知拉取游标) loses no notice to transactions committing out of order.

On PostgreSQL a notice's id is drawn from a sequence at INSERT and becomes visible at COMMIT. Transaction A
queues a notice and has not committed; transaction B queues one (a later id) and commits; a consumer reads the
feed and saves B's id as its cursor; A commits an id below that cursor, which the consumer never reads. Every
path that inserts notices (post-publish queueing, the sweep's queueing of missed versions, the release of a
withheld notice) takes the feed-order lock first, so B waits for A's commit and the reader, whenever it reads,
never sees B's notice without A's (registry/exchange/notices.py).

Two real transactions on a real PostgreSQL registry, each in its own thread: A is held open inside
pipeline.notify.queue_notices, after its insert, at its audit event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import date, datetime
from pathlib import Path

import pytest

from core import clock
from samples.loaders import load_sqlite
from tests.clock import on, pinned
from tests.helpers import register_resource, subscribe_consumer
from tests.test_notice_grants import EXPIRES, _change, _grant

WAIT_SECONDS = 60


def _synced_resource(tmp_path: Path, name: str, **kwargs) -> tuple[str, Path]:  # noqa: ANN003
    from pipeline.sync import sync_resource

    database = tmp_path / f"{name}.db"
    load_sqlite(database, rows=30, seed=len(name))
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name=name, **kwargs)
    sync_resource(resource_code=hub.resource_code)
    return hub.resource_code, database


def _queued_after_publish(tmp_path: Path) -> Callable[[], object]:
    """B: the post-publish queueing of another resource's version."""
    from pipeline.notify import queue_notices

    code, _ = _synced_resource(tmp_path, "企业年报信息", classification="101002")
    subscribe_consumer(code)
    return lambda: queue_notices(resource_code=code, version_number=1)


def _queued_by_the_sweep(tmp_path: Path) -> Callable[[], object]:
    """B: the sweep queueing a version whose publish died before its notices (they were never queued)."""
    from sqlalchemy import text

    from pipeline.notify import queue_missed
    from registry.db import session_scope

    code, _ = _synced_resource(tmp_path, "企业年报信息", classification="101002", subscribe=True)
    with session_scope() as session:
        session.execute(text("DELETE FROM notices WHERE resource_code = :code"), {"code": code})
    return lambda: queue_missed()


def _released_by_the_sweep(tmp_path: Path) -> Callable[[], object]:
    """B: the release entry of a notice withheld while the consumer's grant had run out (补发通知)."""
    from pipeline.notice_release import release_regranted
    from pipeline.sync import sync_resource

    with pinned(on(date(2026, 12, 9))):
        code, database = _synced_resource(tmp_path, "企业纳税信用等级", classification="102001",
                                          sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
        _grant(code, expires_at=EXPIRES)
    _change(database, 1, "2026-12-14")
    sync_resource(resource_code=code)  # v2, withheld: the grant ran out on 10 December
    _grant(code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
    return lambda: release_regranted(now=clock.now())


@pytest.mark.parametrize("later_insert", [_queued_after_publish, _queued_by_the_sweep, _released_by_the_sweep],
                         ids=["queue_notices", "queue_missed", "release_regranted"])
def test_a_reader_never_saves_a_cursor_past_a_notice_still_being_committed(
        pg_hub_home: Path, pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        later_insert: Callable[[Path], Callable[[], object]]) -> None:
    import pipeline.notify
    from pipeline.notify import queue_notices

    with pinned(on(date(2026, 12, 16))):
        # A's resource has a version and a subscriber but no notice yet: queue_notices will insert one.
        first_code, _ = _synced_resource(tmp_path, "企业基本信息")
        subscribe_consumer(first_code)
        start_later_insert = later_insert(tmp_path)
        already_read = _feed(after=None)
        cursor = already_read[-1] if already_read else None

        a_inserted, a_may_commit = threading.Event(), threading.Event()
        record_event = pipeline.notify.record_event

        def held_open(session, **event):  # noqa: ANN001, ANN003 - the real record_event's arguments
            if threading.current_thread().name == "transaction-a":
                a_inserted.set()  # A drew its notice id and has not committed
                assert a_may_commit.wait(WAIT_SECONDS)
            return record_event(session, **event)

        monkeypatch.setattr(pipeline.notify, "record_event", held_open)
        a = _Transaction("transaction-a", lambda: queue_notices(resource_code=first_code, version_number=1))
        b = _Transaction("transaction-b", start_later_insert)
        try:
            a.start()
            assert a_inserted.wait(WAIT_SECONDS), a.error
            b.start()
            _wait_until_done_or_blocked(b, pg_database)
            read_while_a_open = _feed(after=cursor)
            saved = read_while_a_open[-1] if read_while_a_open else cursor
        finally:
            a_may_commit.set()
            a.join(WAIT_SECONDS)
            b.join(WAIT_SECONDS)
        assert (a.error, b.error) == (None, None)
        assert not a.is_alive() and not b.is_alive()
        read_after = _feed(after=saved)

    # Whatever the reader saw while A was open, its saved cursor leads it to every notice committed since.
    assert sorted(read_while_a_open + read_after) == _feed(after=cursor)
    assert len(_feed(after=cursor)) >= 2  # A's notice and B's at least


class _Transaction(threading.Thread):
    def __init__(self, name: str, work: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's assertion
            self.error = repr(exc)


def _feed(*, after: int | None) -> list[int]:
    """The ids the pull feed returns after the cursor, as the API reads them."""
    from registry.db import session_scope
    from registry.exchange.notices import FEED_PAGE_MAX, list_notices

    with session_scope() as session:
        return [notice.id for notice in list_notices(session, after=after, limit=FEED_PAGE_MAX)]


def _wait_until_done_or_blocked(transaction: _Transaction, database_url: str) -> None:
    """Until B has committed (nothing orders it after A) or waits on a lock A holds."""
    import psycopg2

    deadline = time.monotonic() + WAIT_SECONDS
    with closing(psycopg2.connect(database_url)) as watcher:
        watcher.autocommit = True
        while transaction.is_alive() and time.monotonic() < deadline:
            with watcher.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
                               "WHERE NOT granted AND datname = current_database()")
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.05)
    assert time.monotonic() < deadline, "transaction B neither finished nor waited on a lock"
