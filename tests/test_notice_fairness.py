"""The notices sweep is fair between receivers: a slow or unreachable consumer system neither delays another
agency's notices nor fills the sweep, and its own notices wait for the next sweep, in order, each sent once.

Receivers are real HTTP servers on loopback: a healthy one (tests/test_notices.py's Receiver) and one that holds
every request open until the sweep gives up on it."""

from __future__ import annotations

import select
import socket
import sqlite3
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import CONSUMER, OTHER_PROVIDER, Hub, ensure_agency, register_resource, subscribe_consumer
from tests.test_notices import _later, _notices, _set_webhook, receiving


class SlowReceiver:
    """Answers nothing until the sender gives up (its timeout), noting whether the healthy receiver got all its
    notices while this request was still open on the sender's side."""

    def __init__(self, healthy, expected: int) -> None:  # noqa: ANN001 - tests.test_notices.Receiver
        self.secret = ""
        self.hang = True  # False: the system is back and accepts at once
        self.requests: list[tuple[str, str]] = []  # (notice id, attempt) of every request
        self.healthy_done_while_held: list[bool] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers["X-Govshare-Notice-Id"], self.headers["X-Govshare-Attempt"]))
                if not receiver.hang:
                    self.send_response(204)
                    self.end_headers()
                    return
                healthy_done = False
                for _ in range(1200):  # at most 60 s, then give up on the test
                    healthy_done = healthy_done or len(healthy.accepted) >= expected
                    readable, _, _ = select.select([self.connection], [], [], 0.05)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        break  # the sender closed the connection: it timed out
                receiver.healthy_done_while_held.append(healthy_done)
                self.close_connection = True

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/govshare"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def two_subscribers(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    """One resource, subscribed by the HR bureau (CONSUMER) and the civil affairs bureau (OTHER_PROVIDER)."""
    from registry.db import session_scope

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=60, seed=3)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    with session_scope() as session:
        ensure_agency(session, *OTHER_PROVIDER)
    subscribe_consumer(hub.resource_code, OTHER_PROVIDER[0])
    return hub, database


def _publish_change(hub: Hub, database: Path, row: int) -> None:
    from pipeline.sync import sync_resource

    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(f"UPDATE enterprises SET status = '注销', updated_at = '2026-09-0{row}T08:00:00+08:00' "
                     f"WHERE id = {row}")
    sync_resource(resource_code=hub.resource_code)


def _by_agency(hub: Hub) -> dict[str, list]:
    from registry.db import session_scope
    from registry.people.agencies import get_agency

    with session_scope() as session:
        ids = {get_agency(session, ref=code).id: code for code in (CONSUMER[0], OTHER_PROVIDER[0])}
    found: dict[str, list] = {code: [] for code in ids.values()}
    for notice in _notices(resource_code=hub.resource_code):
        found[ids[notice.agency_id]].append(notice)
    return found


def test_a_slow_receiver_neither_delays_nor_loses_other_notices(two_subscribers: tuple[Hub, Path]) -> None:
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource

    hub, database = two_subscribers
    with receiving() as healthy:
        slow = SlowReceiver(healthy, expected=2)
        try:
            _set_webhook(hub, CONSUMER[0], slow)            # the HR bureau's system hangs
            _set_webhook(hub, OTHER_PROVIDER[0], healthy)   # the civil affairs bureau's answers at once
            sync_resource(resource_code=hub.resource_code)  # v1
            _publish_change(hub, database, 1)               # v2
            queued = _by_agency(hub)
            # The hanging receiver's notices come first in the queue (lower ids, earlier subscription).
            assert [n.version_number for n in queued[CONSUMER[0]]] == [1, 2]
            assert queued[CONSUMER[0]][0].id < queued[OTHER_PROVIDER[0]][0].id

            report = deliver_pending(timeout_seconds=3)

            # The healthy receiver got both versions, in order, while the hanging one still held the sweep's
            # first request open: it did not wait for that timeout.
            assert [n["version"] for n in healthy.accepted] == [1, 2]
            assert slow.healthy_done_while_held == [True]
            # The hanging receiver was tried once; its second notice was not sent into the same timeout.
            first, second = queued[CONSUMER[0]]
            assert slow.requests == [(str(first.id), "1")]
            assert report.retrying == [first.id] and report.deferred == [second.id]
            after = {n.id: n for n in _by_agency(hub)[CONSUMER[0]]}
            assert after[first.id].status == "pending" and after[first.id].attempts == 1
            assert "Timeout" in after[first.id].last_error
            # never lost and its retry schedule untouched: still due, no attempt spent
            assert after[second.id].status == "pending" and after[second.id].attempts == 0
            assert after[second.id].next_attempt_at == second.next_attempt_at

            # The system is back: the next sweep sends what waited, in order, each notice under its own id.
            slow.hang = False
            report = deliver_pending(now=_later(1))
            assert report.delivered == [first.id, second.id]
            assert slow.requests[1:] == [(str(first.id), "2"), (str(second.id), "1")]
            assert deliver_pending(now=_later(60)).delivered == [] and len(slow.requests) == 3
            assert len(healthy.requests) == 2  # nothing sent twice to the healthy one
        finally:
            slow.close()


def _closed_port_url() -> str:
    with socket.socket() as probe:  # bound then closed: nothing listens there, connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/govshare"


def test_a_down_receivers_backlog_does_not_fill_the_sweep(two_subscribers: tuple[Hub, Path]) -> None:
    """With a sweep limit of 2 and the down receiver holding the 3 oldest due notices, the other subscriber's
    notice is still in the sweep (each subscriber's oldest first), and the down one's wait untouched."""
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.exchange.notices import find_subscription, set_endpoint

    hub, database = two_subscribers
    with receiving() as healthy:
        with session_scope() as session:
            subscription = find_subscription(session, resource_code=hub.resource_code, agency=CONSUMER[0])
            set_endpoint(session, subscription=subscription, url=_closed_port_url(), actor="test")
        sync_resource(resource_code=hub.resource_code)  # v1: both are notified, the civil affairs bureau by feed
        _publish_change(hub, database, 1)
        _publish_change(hub, database, 2)
        _set_webhook(hub, OTHER_PROVIDER[0], healthy)
        _publish_change(hub, database, 3)               # v4: the only webhook notice of the civil affairs bureau
        down = _by_agency(hub)[CONSUMER[0]]
        assert [n.version_number for n in down] == [1, 2, 3, 4] and all(n.status == "pending" for n in down)

        report = deliver_pending(limit=2)

        assert [n["version"] for n in healthy.accepted] == [4]
        assert report.retrying == [down[0].id] and report.deferred == []  # its later ones were not even picked
        assert "ConnectionError" in _by_agency(hub)[CONSUMER[0]][0].last_error
        assert [n.attempts for n in _by_agency(hub)[CONSUMER[0]]] == [1, 0, 0, 0]
