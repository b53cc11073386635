"""The hold of a notice whose resource row was edited outside the hub (registry/seals.py) against a sweep
delivering it, two real transactions on a PostgreSQL registry.

The pull feed read a page, then held each notice of an edited resource by writing the loaded object back: a
sweep that delivered the notice between the feed's read and its hold had its `delivered` overwritten with
`withheld`. Once the row was put back, the sweep released that notice again: the subscriber got a second
notice, with a catch_up naming a version it had already been told of, and the record said it never had. The
hold is now one conditional UPDATE (still the state the check read), as a claim and a release are."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.clock


def test_a_hold_does_not_overwrite_a_notice_delivered_meanwhile(pg_hub_home: Path, tmp_path: Path) -> None:
    from pipeline.notice_delivery import hold_edited
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.exchange.notices import list_notices
    from registry.people.models import Agency
    from samples.loaders import load_sqlite
    from tests.helpers import CONSUMER, OTHER_PROVIDER, register_resource
    from tests.test_notices import _notices, _set_webhook, receiving

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=30, seed=7)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    register_resource(kind=None, provider=OTHER_PROVIDER, name="另一机构资源")
    with receiving() as receiver:
        _set_webhook(hub, CONSUMER[0], receiver)
        sync_resource(resource_code=hub.resource_code)
        (notice,) = _notices(resource_code=hub.resource_code)
        assert notice.status == "pending"

        with session_scope() as feed:  # the feed's transaction: its page read, the hold check still to come
            agency_id = feed.query(Agency).filter_by(code=CONSUMER[0]).one().id
            page = list_notices(feed, agency_id=agency_id, after=None, limit=100)
            assert [(n.id, n.status) for n in page] == [(notice.id, "pending")]

            assert deliver_pending().delivered == [notice.id]  # another transaction: the sweep
            with session_scope() as editor:  # then the row is edited outside the hub
                editor.execute(text("UPDATE resources SET agency_id = (SELECT id FROM agencies WHERE code = :o) "
                                    "WHERE id = :id"), {"o": OTHER_PROVIDER[0], "id": hub.resource_id})
            hold_edited(feed, notices=page, actor="system:feed")
            assert page[0].status == "delivered", "the page shows what the notice is"

        assert [n.status for n in _notices(resource_code=hub.resource_code)] == ["delivered"]
        with session_scope() as editor:  # put back as the hub wrote it
            editor.execute(text("UPDATE resources SET agency_id = (SELECT id FROM agencies WHERE code = :o) "
                                "WHERE id = :id"), {"o": hub.provider_code, "id": hub.resource_id})
        report = deliver_pending()
        assert report.released == [] and report.delivered == [], report
        assert [r["id"] for r in receiver.requests] == [str(notice.id)], "delivered once, never released again"
