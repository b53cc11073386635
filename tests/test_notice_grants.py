"""Update notices follow the grant (有条件共享): a subscriber whose grant on a resource shared on application has
expired is not notified (the notice is recorded as withheld, with the reason in its feed) until a new grant is
approved; an unconditionally shared resource's subscriber is notified as before.

The clock is pinned to the days the test means: the grant runs to 10 December 2026 (Beijing)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, datetime
from pathlib import Path

import requests

from core import clock
from samples.loaders import load_sqlite
from tests.clock import on, pinned
from tests.helpers import CONSUMER, bearer, issue_token, register_resource, running_api
from tests.test_notices import _cli, _notices, _set_webhook, receiving

EXPIRES = datetime.combine(date(2026, 12, 10), datetime.max.time(), clock.BEIJING_TIME)


def _grant(resource_code: str, *, expires_at: datetime) -> None:
    """The provider approves the consumer's application (as applications.apply_decision grants it)."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.sharing.grants import create_grant

    with session_scope() as session:
        create_grant(session, resource=get_resource(session, code=resource_code),
                     agency=get_agency(session, ref=CONSUMER[0]), origin="application", purpose="就业登记核验",
                     by=console("test"), expires_at=expires_at)


def _change(database: Path, row: int, day: str) -> None:
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(f"UPDATE enterprises SET status = '注销', updated_at = '{day}T08:00:00+08:00' WHERE id = {row}")


def test_an_expired_grant_stops_notices_until_a_new_one_is_approved(hub_home: Path, tmp_path: Path) -> None:
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=40, seed=5)
    conditional = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                                    classification="102001", sharing_type="conditional",
                                    sharing_condition="仅用于就业参保登记核验")
    unconditional = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    with receiving() as receiver:
        with pinned(on(date(2026, 12, 9))):  # the grant is live
            _grant(conditional.resource_code, expires_at=EXPIRES)
            _set_webhook(conditional, CONSUMER[0], receiver)
            sync_resource(resource_code=conditional.resource_code)   # v1, queued while the grant is live
        with pinned(on(date(2026, 12, 14))):  # four days after the grant ran out
            report = deliver_pending()                                  # v1 is due now: not sent
            _change(database, 1, "2026-12-14")
            sync_resource(resource_code=conditional.resource_code)   # v2: not queued for sending
            sync_resource(resource_code=unconditional.resource_code)
            deliver_pending()
            assert receiver.requests == []
            notices = _notices(resource_code=conditional.resource_code)
            assert [(n.version_number, n.status) for n in notices] == [(1, "withheld"), (2, "withheld")]
            assert report.withheld == [notices[0].id] and notices[0].attempts == 0
            assert all("2026年12月10日到期" in n.last_error for n in notices), [n.last_error for n in notices]
            assert notices[1].payload["withheld_zh"] == notices[1].last_error
            assert "row_count" not in notices[1].payload and "manifest_sha256" not in notices[1].payload
            # the unconditionally shared resource's subscriber is notified as before
            assert [n.status for n in _notices(resource_code=unconditional.resource_code)] == ["feed"]

            # The consumer reads why in its feed; the operator in `notices list`.
            token = issue_token(CONSUMER[0])  # the hub's tokens are dated by the pinned clock
            with running_api() as api:
                answer = requests.get(f"{api.base_url}/api/v1/notices", headers=bearer(token), timeout=30)
                assert answer.status_code == 200, answer.text
                feed = answer.json()["notices"]
            withheld = [n for n in feed if n["resource"] == conditional.resource_code]
            assert [(n["version"], n["webhook_status"]) for n in withheld] == [(1, "withheld"), (2, "withheld")]
            assert all("共享授权已于2026年12月10日到期" in n["withheld_reason"] for n in withheld)
            listed = _cli("notices", "list", "--status", "withheld")
            assert listed.exit_code == 0 and "2026年12月10日到期" in listed.output, listed.output

            # A new application approved: notices resume with the next version, sent to the webhook.
            _grant(conditional.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
            _change(database, 2, "2026-12-15")
            sync_resource(resource_code=conditional.resource_code)   # v3
            report = deliver_pending()
        assert [n["version"] for n in receiver.accepted] == [3] and len(report.delivered) == 1
