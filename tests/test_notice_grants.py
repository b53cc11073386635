"""Update notices follow the grant (有条件共享): a subscriber whose grant on a resource shared on application has
expired is not notified (the notice is recorded as withheld, with the reason in its feed) until a new grant is
approved; then the next sweep sends one notice of what it missed (the newest withheld one, released as a new
notice with the changes since the last notice it received) and marks the older withheld ones superseded. An
unconditionally shared resource's subscriber is notified as before.

The clock is pinned to the days the test means: the grant runs to 10 December 2026 (Beijing)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from core import clock
from samples.loaders import load_sqlite
from tests.clock import on, pinned
from tests.helpers import CONSUMER, OTHER_PROVIDER, bearer, issue_token, register_resource, running_api
from tests.test_notices import _cli, _notices, _set_webhook, receiving

EXPIRES = datetime.combine(date(2026, 12, 10), datetime.max.time(), clock.BEIJING_TIME)


def _grant(resource_code: str, *, expires_at: datetime, agency: tuple[str, str] = CONSUMER) -> None:
    """The provider approves the consumer's application (as applications.apply_decision grants it)."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.grants import create_grant
    from tests.helpers import ensure_agency

    with session_scope() as session:
        create_grant(session, resource=get_resource(session, code=resource_code),
                     agency=ensure_agency(session, *agency), origin="application", purpose="就业登记核验",
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
            assert "暂不发送" in listed.output and "withheld" not in listed.output, listed.output

            # A new application approved: notices resume. The sweep first sends the one notice of what was
            # missed (v2, the newest withheld; v1 superseded by it), then the next version's, in order.
            _grant(conditional.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
            _change(database, 2, "2026-12-15")
            sync_resource(resource_code=conditional.resource_code)   # v3
            report = deliver_pending()
        assert [n["version"] for n in receiver.accepted] == [2, 3] and len(report.delivered) == 2
        # v1 was withheld before it ever reached the consumer: nothing received, so only a whole download helps
        catch_up = receiver.accepted[0]["catch_up"]
        assert (catch_up["since_version"], catch_up["withheld_versions"], catch_up["changes_feed"]) == (None, [1, 2],
                                                                                                     None)
        assert "请下载第2版完整数据" in catch_up["note_zh"] and "catch_up" not in receiver.accepted[1]
        # The release is a new notice after v3's (pipeline/notice_release.py), sent first all the same: a
        # receiver gets each subscription's notices in version order.
        notices = _notices(resource_code=conditional.resource_code)
        assert [(n.version_number, n.status, n.releases_id) for n in notices] == [
            (1, "superseded", None), (2, "released", None), (3, "delivered", None), (2, "delivered", notices[1].id)]
        assert receiver.accepted[0]["notice_id"] == str(notices[3].id) and catch_up["releases"] == str(notices[1].id)


def _audit(action: str) -> list:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [(e.agency_code, e.result, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def registry(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")


def test_a_consumer_granted_again_is_sent_one_notice_of_what_it_missed(registry: Path, tmp_path: Path) -> None:
    """Two versions published while the grant had lapsed: after a new grant the next sweep sends one notice,
    naming the latest version with the changes since the last notice the consumer received; the other withheld
    notice is superseded, never sent; a subscriber still without a grant hears nothing."""
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=40, seed=5)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                            classification="102001", sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
    with receiving() as regranted, receiving() as lapsed:
        with pinned(on(date(2026, 12, 9))):  # both grants live: v1 reaches both receivers
            for agency, receiver in ((CONSUMER, regranted), (OTHER_PROVIDER, lapsed)):
                _grant(hub.resource_code, expires_at=EXPIRES, agency=agency)
                _set_webhook(hub, agency[0], receiver)
            sync_resource(resource_code=hub.resource_code)
            assert len(deliver_pending().delivered) == 2
        with pinned(on(date(2026, 12, 16))):  # both grants ran out: v2 and v3 are withheld from both
            _change(database, 1, "2026-12-14")
            sync_resource(resource_code=hub.resource_code)
            _change(database, 2, "2026-12-15")
            _change(database, 3, "2026-12-15")
            sync_resource(resource_code=hub.resource_code)
            report = deliver_pending()
            assert (report.delivered, report.released, report.superseded) == ([], [], [])
            _grant(hub.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))  # CONSUMER only
            report = deliver_pending()
            again = deliver_pending()  # the next sweep: nothing left to release or send
            token = issue_token(CONSUMER[0])
            catch_up = regranted.accepted[-1].get("catch_up", {})
            with running_api() as api:  # the consumer follows the notice to the changes it names
                answer = requests.get(f"{api.base_url}{catch_up['changes_feed']}", headers=bearer(token),
                                      timeout=30) if catch_up else None
    assert [n["version"] for n in regranted.accepted] == [1, 3], regranted.accepted
    assert all(r["valid"] for r in regranted.requests) and len(regranted.requests) == 2
    assert [n["version"] for n in lapsed.accepted] == [1] and len(lapsed.requests) == 1
    body = regranted.accepted[1]
    assert body["event"] == "dataset.version.published" and body["manifest_sha256"]
    assert catch_up["since_version"] == 1 and catch_up["withheld_versions"] == [2, 3]
    assert catch_up["changes_feed"] == f"/api/v1/resources/{hub.resource_code}/changes?since=1"
    # changes is v3's own (two rows); catch_up.changes counts v2 and v3 as the changes feed serves them
    assert (body["changes"]["since_version"], body["changes"]["updated"]) == (2, 2)
    assert catch_up["changes"] == {"inserted": 0, "updated": 3, "deleted": 0}
    assert answer is not None and answer.status_code == 200, getattr(answer, "text", None)
    assert {k: int(answer.headers[f"X-Govshare-{k.capitalize()}"]) for k in catch_up["changes"]} == catch_up["changes"]
    assert answer.headers["X-Govshare-Version"] == "3"
    assert "第2、3版未予通知" in catch_up["note_zh"] and "changes 仅为第3版本身的变更" in catch_up["note_zh"]

    by_agency = {agency: [(n.version_number, n.status) for n in _notices(resource_code=hub.resource_code)
                          if n.agency_id == agency_id] for agency, agency_id in _agency_ids().items()}
    # v3's withheld notice stays in its place, released; its release is a new notice (补发通知) after it
    assert by_agency[CONSUMER[0]] == [(1, "delivered"), (2, "superseded"), (3, "released"), (3, "delivered")]
    assert by_agency[OTHER_PROVIDER[0]] == [(1, "delivered"), (2, "withheld"), (3, "withheld")]
    consumer_id = _agency_ids()[CONSUMER[0]]
    _, superseded, withheld, released = (n for n in _notices(resource_code=hub.resource_code)
                                         if n.agency_id == consumer_id)
    assert released.releases_id == withheld.id and catch_up["releases"] == str(withheld.id)
    assert regranted.requests[1]["id"] == str(released.id)
    assert report.released == [released.id] and report.superseded == [superseded.id]
    assert report.delivered == [released.id] and report.withheld == []
    assert (again.released, again.superseded, again.delivered) == ([], [], [])
    assert superseded.last_error == f"已由第3版的更新通知（编号{released.id}）代替，不再单独发送"
    assert withheld.last_error == f"共享授权恢复后已补发为更新通知（编号{released.id}），附 catch_up（未通知的版本及其变更）"
    assert "withheld_zh" in superseded.payload and "withheld_zh" in withheld.payload  # as they were when withheld

    # Every step is audited like the rest of the notices' life.
    assert _audit("notice.released") == [(CONSUMER[0], "ok", {
        "notice_id": released.id, "releases": withheld.id, "version": 3, "since_version": 1,
        "withheld_versions": [2, 3], "superseded": [superseded.id]})]
    assert _audit("notice.superseded") == [(CONSUMER[0], "ok", {
        "notice_id": superseded.id, "version": 2, "superseded_by": released.id, "superseded_by_version": 3})]
    delivered = [(agency, detail["version"]) for agency, _, detail in _audit("notice.delivered")]
    # (v1's two receivers are served by parallel workers: their order is not the test's business)
    assert sorted(delivered[:2]) == sorted([(CONSUMER[0], 1), (OTHER_PROVIDER[0], 1)])
    assert delivered[2:] == [(CONSUMER[0], 3)]


def test_a_withheld_notice_older_than_one_already_in_the_feed_is_superseded_by_it(hub_home: Path,
                                                                                   tmp_path: Path) -> None:
    """A consumer reading the pull feed only gets the next version's notice in its feed as soon as it is queued
    under the new grant: the notice withheld before it is superseded by that one, never released after it (an
    older version announced after a newer one would read as going back)."""
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=40, seed=5)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                            classification="102001", sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
    with pinned(on(date(2026, 12, 14))):  # the grant ran out four days ago
        _grant(hub.resource_code, expires_at=EXPIRES)
        sync_resource(resource_code=hub.resource_code)  # v1: withheld
        _grant(hub.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
        _change(database, 1, "2026-12-14")
        sync_resource(resource_code=hub.resource_code)  # v2: straight into the feed
        report = deliver_pending()
    first, second = _notices(resource_code=hub.resource_code)
    assert [(n.version_number, n.status) for n in (first, second)] == [(1, "superseded"), (2, "feed")]
    assert report.superseded == [first.id] and report.released == []
    assert first.last_error == f"已由第2版的更新通知（编号{second.id}）代替，不再单独发送"
    assert "catch_up" not in second.payload
    assert [detail["superseded_by"] for _, _, detail in _audit("notice.superseded")] == [second.id]
    assert _audit("notice.released") == []


def _agency_ids() -> dict[str, int]:
    from registry.db import session_scope
    from registry.people.agencies import get_agency

    with session_scope() as session:
        return {code: get_agency(session, ref=code).id for code, _ in (CONSUMER, OTHER_PROVIDER)}
