"""A consumer reading the pull feed (更新通知拉取) with a saved cursor sees the notice released once its grant is
live again (补发通知), even when its cursor already passed the withheld entry of that version: the release is a
new feed entry after every earlier one, naming the withheld notice it releases, and the cursor only moves on.

The clock is pinned to the days the test means: the first grant runs to 10 December 2026 (Beijing)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import requests

from core import clock
from samples.loaders import load_sqlite
from tests.clock import on, pinned
from tests.helpers import CONSUMER, bearer, issue_token, register_resource, running_api
from tests.test_notice_grants import EXPIRES, _audit, _change, _grant


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def registry(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")


def _read_feed(api_url: str, token: str, after: str | None) -> tuple[list[dict], str]:
    """One page of the consumer's feed after its saved cursor, and the cursor to save."""
    answer = requests.get(f"{api_url}/api/v1/notices", params={"after": after} if after else None,
                          headers=bearer(token), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["notices"], answer.json()["next_cursor"]


def test_a_feed_reader_past_the_withheld_entry_gets_the_release_with_its_catch_up(registry: Path,
                                                                                  tmp_path: Path) -> None:
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=40, seed=5)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                            classification="102001", sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
    with pinned(on(date(2026, 12, 9))):  # the grant is live: v1 goes straight into the feed (no webhook)
        _grant(hub.resource_code, expires_at=EXPIRES)
        sync_resource(resource_code=hub.resource_code)
        token = issue_token(CONSUMER[0])
        with running_api() as api:
            first, cursor = _read_feed(api.base_url, token, None)
    assert [(n["version"], n["webhook_status"]) for n in first] == [(1, "feed")]

    with pinned(on(date(2026, 12, 16))):  # the grant ran out: v2 and v3 are withheld
        for row, day in ((1, "2026-12-14"), (2, "2026-12-15")):
            _change(database, row, day)
            sync_resource(resource_code=hub.resource_code)
        assert deliver_pending().released == []
        with running_api() as api:
            # The consumer reads both withheld entries, with the reason, and saves the cursor past them.
            withheld, cursor_past_withheld = _read_feed(api.base_url, token, cursor)
            _grant(hub.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
            report = deliver_pending()
            again = deliver_pending()  # a second sweep releases nothing more
            released, cursor_after_release = _read_feed(api.base_url, token, cursor_past_withheld)
            nothing_new, cursor_unmoved = _read_feed(api.base_url, token, cursor_after_release)
            whole, _ = _read_feed(api.base_url, token, None)

    assert [(n["version"], n["webhook_status"]) for n in withheld] == [(2, "withheld"), (3, "withheld")]
    assert all("2026年12月10日到期" in n["withheld_reason"] for n in withheld)
    withheld_v2, withheld_v3 = (n["id"] for n in withheld)

    # From the cursor it saved, the consumer gets the release: v3 with what it missed, naming the entry it
    # read as withheld. The cursor only moved on.
    assert len(released) == 1, released
    (release,) = released
    assert (release["version"], release["webhook_status"], release["releases"]) == (3, "feed", withheld_v3)
    catch_up = release["payload"]["catch_up"]
    assert (catch_up["since_version"], catch_up["withheld_versions"]) == (1, [2, 3])
    assert catch_up["changes_feed"] == f"/api/v1/resources/{hub.resource_code}/changes?since=1"
    assert catch_up["releases"] == withheld_v3
    assert release["payload"]["event"] == "dataset.version.published" and release["withheld_reason"] is None
    assert int(cursor) < int(cursor_past_withheld) < int(cursor_after_release) == int(release["id"])
    assert report.released == [int(release["id"])] and report.superseded == [int(withheld_v2)]
    assert (again.released, again.superseded) == ([], [])
    assert (nothing_new, cursor_unmoved) == ([], cursor_after_release)

    # Read from the start, every entry comes once, in cursor order, and says what became of it.
    assert [n["id"] for n in whole] == sorted({n["id"] for n in whole}, key=int)
    assert [(n["version"], n["webhook_status"], n["releases"]) for n in whole] == [
        (1, "feed", None), (2, "superseded", None), (3, "released", None), (3, "feed", withheld_v3)]
    by_id = {n["id"]: n for n in whole}
    assert by_id[withheld_v2]["withheld_reason"] == f"已由第3版的更新通知（编号{release['id']}）代替，不再单独发送"
    assert by_id[withheld_v3]["withheld_reason"] == (
        f"共享授权恢复后已补发为更新通知（编号{release['id']}），附 catch_up（未通知的版本及其变更）")
    assert "withheld_zh" in by_id[withheld_v3]["payload"]  # what the entry said when withheld stays as it was
    assert [detail for _, _, detail in _audit("notice.released")] == [{
        "notice_id": int(release["id"]), "releases": int(withheld_v3), "version": 3, "since_version": 1,
        "withheld_versions": [2, 3], "superseded": [int(withheld_v2)]}]


def test_a_release_made_in_place_before_the_migration_gets_its_feed_entry(registry: Path, tmp_path: Path) -> None:
    """Migration 0080: a notice released in place by the code before it (same id, so same feed place) gets its
    release entry at the end of the feed on upgrade; a downgrade folds the entry back into the notice."""
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource
    from registry.migrate import downgrade, upgrade

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=40, seed=5)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, name="企业纳税信用等级",
                            classification="102001", sharing_type="conditional", sharing_condition="仅用于就业参保登记核验")
    with pinned(on(date(2026, 12, 14))):  # the grant ran out four days ago: v1 is withheld, then released
        _grant(hub.resource_code, expires_at=EXPIRES)
        sync_resource(resource_code=hub.resource_code)
        _grant(hub.resource_code, expires_at=datetime(2027, 6, 30, 15, 59, tzinfo=clock.UTC))
        released = deliver_pending().released
    withheld, entry = _notice_rows(hub.resource_code)
    assert (withheld["status"], entry["status"], entry["releases_id"]) == ("released", "feed", withheld["id"])
    assert released == [entry["id"]]

    downgrade(revision="0075_cursor_files")  # the form the code before 0080 left
    (in_place,) = _notice_rows(hub.resource_code)
    assert (in_place["id"], in_place["status"], in_place["last_error"]) == (withheld["id"], "feed", None)
    assert in_place["payload"] == entry["payload"] and "releases_id" not in in_place

    upgrade()
    kept, appended = _notice_rows(hub.resource_code)
    assert (kept["id"], kept["status"]) == (withheld["id"], "released")
    assert kept["last_error"] == f"共享授权恢复后已补发为更新通知（编号{appended['id']}），附 catch_up（未通知的版本及其变更）"
    assert appended["id"] > kept["id"] and (appended["status"], appended["releases_id"]) == ("feed", withheld["id"])
    assert appended["payload"] == entry["payload"] and appended["payload"]["catch_up"]["releases"] == str(kept["id"])


def _notice_rows(resource_code: str) -> list[dict]:
    """The notices table as stored (not through the model, which knows only the newest columns)."""
    from sqlalchemy import text

    from registry.db import session_scope

    with session_scope() as session:
        rows = session.execute(text("SELECT * FROM notices WHERE resource_code = :code ORDER BY id"),
                               {"code": resource_code}).mappings().all()
        return [{**row, "payload": _json(row["payload"])} for row in rows]


def _json(value: object) -> dict:
    import json

    return json.loads(value) if isinstance(value, str) else value
