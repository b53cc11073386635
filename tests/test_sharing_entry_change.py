"""A published entry whose sharing type changes (第八条): the grants it no longer supports end with the change."""

from __future__ import annotations

from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import PROVIDER
from tests.sharing_world import World, build_world

pytestmark = [pytest.mark.usefixtures("cheap_hashing")]


@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    database = tmp_path / "market.db"
    load_sqlite(database, rows=40, seed=17)
    return build_world(database, tmp_path)


def _republish(code: str, *, sharing_type: str, condition: str) -> None:
    """The provider's cataloguer changes the entry's sharing type; its reviewer publishes the revision."""
    from registry.catalog.entries import latest_revision, upsert_entry
    from registry.catalog.resources import get_resource
    from registry.catalog.review import record_confidentiality_review, review_revision, submit_revision
    from registry.db import session_scope
    from schemas.catalog_metadata import CatalogEntryData

    with session_scope() as session:
        resource = get_resource(session, code=code)
        suffix = resource.agency.code[-8:].lower()
        content = dict(latest_revision(session, resource=resource).content)
        content.update(sharing_type=sharing_type, sharing_condition=condition)
        upsert_entry(session, agency=PROVIDER[0], data=CatalogEntryData.model_validate(content), code=code,
                     author=f"cat-{suffix}", actor="test")
        submit_revision(session, code=code, account=f"cat-{suffix}")
        record_confidentiality_review(session, code=code, account=f"rev-{suffix}", passed=True, note="已审查")
        review_revision(session, code=code, account=f"rev-{suffix}", approve=True)


def _read(world: World, code: str):  # noqa: ANN202
    from delivery.access import authorize_read
    from registry.db import session_scope

    with session_scope() as session:
        return authorize_read(session, token=world.tokens["system:consumer"], resource_code=code, channel="file")


def test_a_subscription_ends_when_its_entry_becomes_shared_on_application(world: World) -> None:
    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants

    code = world.resources["unconditional"]
    assert _read(world, code).grant_id is not None
    _republish(code, sharing_type="conditional", condition="限于社保登记核验")
    with pytest.raises(AccessDenied):
        _read(world, code)
    with session_scope() as session:
        assert baseless_grants(session) == []


def test_every_grant_ends_when_its_entry_becomes_not_shared(world: World) -> None:
    from core.errors import AccessDenied
    from registry.db import session_scope
    from registry.sharing.check import baseless_grants
    from registry.sharing.models import Subscription
    from sqlalchemy import select

    _republish(world.resources["unconditional"], sharing_type="not_shared", condition="《保守国家秘密法》第九条")
    with pytest.raises(AccessDenied):
        _read(world, world.resources["unconditional"])
    with session_scope() as session:
        assert baseless_grants(session) == []
        assert session.scalars(select(Subscription.status)).all() == ["revoked", "active"]
