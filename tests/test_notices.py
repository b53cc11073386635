"""Update notices (article 16): queued once per subscriber and version after a publish, POSTed to a webhook
signed with HMAC, retried with backoff, given up and reported; the pull feed; the `govshare notices` CLI.

The receiver is a real HTTP server on loopback that checks the signature and fails its first request."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.helpers import (
    CONSUMER,
    OTHER_PROVIDER,
    Hub,
    bearer,
    issue_token,
    register_resource,
    running_api,
)


class Receiver:
    """A subscriber's webhook endpoint: verifies X-Govshare-Signature, answers `fail_first` requests with 503."""

    def __init__(self, *, fail_first: int = 0, always_fail: bool = False) -> None:
        self.secret = ""
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.requests: list[dict] = []   # every request: headers, body, whether the signature was valid
        self.accepted: list[dict] = []   # bodies of notices processed (deduplicated by notice id)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Govshare-Timestamp"]
                expected = "sha256=" + hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, self.headers["X-Govshare-Signature"])
                receiver.requests.append({"id": self.headers["X-Govshare-Notice-Id"], "valid": valid,
                                          "attempt": self.headers["X-Govshare-Attempt"]})
                if not valid:
                    status = 401
                elif receiver.always_fail or len(receiver.requests) <= receiver.fail_first:
                    status = 503
                else:
                    notice = json.loads(body)
                    if all(n["notice_id"] != notice["notice_id"] for n in receiver.accepted):
                        receiver.accepted.append(notice)
                    status = 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/govshare"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@contextmanager
def receiving(**kwargs) -> Iterator[Receiver]:  # noqa: ANN003
    receiver = Receiver(**kwargs)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def _set_webhook(hub: Hub, agency: str, receiver: Receiver) -> None:
    result = _cli("notices", "set-webhook", hub.resource_code, "--agency", agency, "--url", receiver.url)
    assert result.exit_code == 0, result.output
    receiver.secret = re.search(r"(whsec_\S+)", result.output).group(1)


def _notices(**filters) -> list:  # noqa: ANN003
    from registry.db import session_scope
    from registry.exchange.notices import list_notices

    with session_scope() as session:
        return list_notices(session, **filters)


def _later(minutes: float):  # noqa: ANN202
    from core import clock

    return clock.now() + timedelta(minutes=minutes)


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=150, seed=8)
    return register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True), database


def test_a_signed_webhook_is_retried_then_delivered_once(source: tuple[Hub, Path]) -> None:
    from pipeline.notify import deliver_pending, notify_published, queue_notices
    from pipeline.sync import sync_resource

    hub, database = source
    with receiving(fail_first=1) as receiver:
        _set_webhook(hub, CONSUMER[0], receiver)
        report = sync_resource(resource_code=hub.resource_code)  # publishes v1 and queues its notice
        (notice,) = _notices(resource_code=hub.resource_code)
        assert notice.status == "pending" and notice.version_number == 1

        first = deliver_pending()
        assert first.retrying == [notice.id] and not first.delivered
        (notice,) = _notices(resource_code=hub.resource_code)
        assert notice.attempts == 1 and notice.last_error.startswith("HTTP 503")
        # Backoff: not due again before its delay (30 s after the first failure).
        assert deliver_pending().delivered == [] and len(receiver.requests) == 1

        second = deliver_pending(now=_later(1))
        assert second.delivered == [notice.id]
        assert [r["valid"] for r in receiver.requests] == [True, True]
        assert [r["attempt"] for r in receiver.requests] == ["1", "2"]
        (body,) = receiver.accepted
        assert body["resource"] == hub.resource_code and body["version"] == report.version == 1
        assert body["row_count"] == 150 and body["changes"]["inserted"] == 150
        assert body["subscriber_code"] == CONSUMER[0] and body["notice_id"] == str(notice.id)

        # Re-runs (a retried DAG task, a restart) queue and send nothing more.
        assert queue_notices(resource_code=hub.resource_code, version_number=1) == 0
        assert notify_published(resource_code=hub.resource_code, version_number=1, now=_later(60)) == {
            "queued": 0, "delivered": 0, "retrying": 0, "failed": 0}
        assert len(receiver.requests) == 2 and len(_notices(resource_code=hub.resource_code)) == 1

        # A sync that changes nothing notifies nobody; a change does, with its change summary.
        sync_resource(resource_code=hub.resource_code)
        assert len(_notices(resource_code=hub.resource_code)) == 1
        with closing(sqlite3.connect(database)) as conn, conn:
            conn.execute("UPDATE enterprises SET status = '注销', updated_at = '2026-09-01T08:00:00+08:00' "
                         "WHERE id IN (3, 4)")
        sync_resource(resource_code=hub.resource_code)
        deliver_pending()
        assert [n["version"] for n in receiver.accepted] == [1, 2]  # the sync that changed nothing made no version
        assert receiver.accepted[1]["changes"]["updated"] == 2 and receiver.accepted[1]["changes"]["since_version"] == 1


def test_an_unreachable_webhook_is_given_up_and_reported(source: tuple[Hub, Path]) -> None:
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    hub, _ = source
    from tests.helpers import ensure_agency, subscribe_consumer

    with session_scope() as session:
        ensure_agency(session, *OTHER_PROVIDER)
    subscribe_consumer(hub.resource_code, OTHER_PROVIDER[0])
    with receiving(always_fail=True) as receiver:
        _set_webhook(hub, OTHER_PROVIDER[0], receiver)
        sync_resource(resource_code=hub.resource_code)
        notices = {n.status: n for n in _notices(resource_code=hub.resource_code)}
        assert set(notices) == {"pending", "feed"}  # the first consumer has no webhook: pull feed only
        pending = notices["pending"]
        delays = []
        for minutes in (0, 1, 3, 7):
            report = deliver_pending(now=_later(minutes), max_attempts=4)
            (notice,) = [n for n in _notices(resource_code=hub.resource_code) if n.id == pending.id]
            if notice.next_attempt_at is not None:
                delays.append(notice.next_attempt_at)
        assert report.failed == [pending.id] and notice.status == "failed" and notice.attempts == 4
        assert len(receiver.requests) == 4 and all(r["valid"] for r in receiver.requests)
        # exponential backoff: each wait doubles (30 s, 60 s, 120 s after each failed attempt)
        gaps = [(b - a).total_seconds() for a, b in zip(delays, delays[1:])]
        assert gaps == [pytest.approx(60 + 30, abs=1), pytest.approx(120 + 60, abs=1)]

    with session_scope() as session:
        from sqlalchemy import select

        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "notice.failed"))
        assert event.result == "failed" and event.agency_code == OTHER_PROVIDER[0]
    result = _cli("notices", "list", "--status", "failed")
    assert result.exit_code == 0 and OTHER_PROVIDER[1] in result.output and "HTTP 503" in result.output


def test_the_pull_feed(source: tuple[Hub, Path]) -> None:
    from pipeline.sync import sync_resource

    hub, database = source
    sync_resource(resource_code=hub.resource_code)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("DELETE FROM enterprises WHERE id = 9")
    sync_resource(resource_code=hub.resource_code, full=True)
    with running_api() as api:
        url = f"{api.base_url}/api/v1/notices"
        assert requests.get(url, timeout=30).status_code == 401
        page = requests.get(url, headers=bearer(hub.token), timeout=30).json()
        assert [(n["resource"], n["version"], n["webhook_status"]) for n in page["notices"]] == [
            (hub.resource_code, 1, "feed"), (hub.resource_code, 2, "feed")]
        assert page["notices"][1]["payload"]["changes"]["deleted"] == 1
        newer = requests.get(url, params={"after": page["next_cursor"]}, headers=bearer(hub.token), timeout=30).json()
        assert newer["notices"] == [] and newer["next_cursor"] == page["next_cursor"]
        # Another agency's token sees none of this agency's notices.
        from registry.db import session_scope
        from tests.helpers import ensure_agency

        with session_scope() as session:
            ensure_agency(session, *OTHER_PROVIDER)
        stranger = issue_token(OTHER_PROVIDER[0])
        assert requests.get(url, headers=bearer(stranger), timeout=30).json()["notices"] == []
    result = _cli("notices", "subscriptions", "--resource", hub.resource_code)
    assert result.exit_code == 0 and "pull feed" in result.output and CONSUMER[1] in result.output
    assert "有效" in result.output and "active" not in result.output  # the subscription's status in Chinese
    # The operator's list shows the newest notices: with more than --limit, it used to show the oldest only.
    result = _cli("notices", "list", "--limit", "1")
    assert result.exit_code == 0 and "│ v2 " in result.output and "│ v1 " not in result.output, result.output
    result = _cli("notices", "list")
    assert result.output.index("│ v1 ") < result.output.index("│ v2 ")
    assert "仅供拉取" in result.output and "feed" not in result.output  # each notice's status in Chinese


KILLED_BEFORE_NOTICES = """
import sys, time
from pathlib import Path
import pipeline.after_publish as after_publish
marker = Path(sys.argv[1])
def killed_here(*args, **kwargs):  # the version is committed; its follow-up has not queued anything yet
    marker.write_text("committed")
    time.sleep(600)
after_publish.after_publish = killed_here
import pipeline.run.lifecycle as lifecycle
lifecycle.after_publish = killed_here
from pipeline.sync import sync_resource
sync_resource(resource_code={code!r})
"""


def test_notices_of_a_version_whose_sync_was_killed_after_the_commit_are_queued_by_the_sweep(
        source: tuple[Hub, Path]) -> None:
    """`govshare sync` (or Airflow's after_publish task) killed between the commit and the notices: v1 served,
    no notice, and nothing ever queued it (`notices deliver` and the notices DAG only sent queued ones). The
    sweep now queues what a version's subscribers of the day lack, once; later subscribers get none."""
    from tests.helpers import hub_child, latest, sigkill, wait_for_marker

    hub, database = source
    marker = database.parent / "committed"
    with receiving() as receiver:
        _set_webhook(hub, CONSUMER[0], receiver)
        with hub_child(KILLED_BEFORE_NOTICES.format(code=hub.resource_code), str(marker)) as child:
            wait_for_marker(child, marker, "committed")
            sigkill(child)
        assert latest(hub.resource_code).number == 1 and _notices(resource_code=hub.resource_code) == []
        assert _cli("agency", "add", OTHER_PROVIDER[0], OTHER_PROVIDER[1]).exit_code == 0
        result = _cli("subscribe", hub.resource_code, "--agency", OTHER_PROVIDER[1], "--purpose", "迟到的订阅")
        assert result.exit_code == 0, result.output  # after v1: no notice of v1 for it

        result = _cli("notices", "deliver")
        assert result.exit_code == 0 and "queued 1 missed, delivered 1" in result.output, result.output
        (notice,) = _notices(resource_code=hub.resource_code)
        assert notice.version_number == 1 and notice.status == "delivered"
        assert [n["version"] for n in receiver.accepted] == [1]
        result = _cli("notices", "deliver")
        assert result.exit_code == 0 and "missed" not in result.output and len(receiver.requests) == 1
