"""Instants in the registry: one built in Beijing time comes back as the same instant on SQLite and PostgreSQL
(SQLite drops an offset and the registry reads a naive value as UTC, so a Beijing end of day was stored 8 hours
late: a token, grant or deadline built that way lasted 8 hours too long)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from core import clock


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_home(request: pytest.FixtureRequest):  # noqa: ANN201 - the hub home of either backend
    return request.getfixturevalue("hub_home" if request.param == "sqlite" else "pg_hub_home")


def test_an_instant_built_in_beijing_time_is_stored_as_that_instant(registry_home) -> None:  # noqa: ANN001
    from registry.db import session_scope
    from registry.people.models import Agency, ApiToken

    end_of_day = datetime.combine(clock.today(), time(23, 59, 59), clock.BEIJING_TIME)
    with session_scope() as session:
        agency = Agency(code="11310000002420000X", name="上海市测试局")
        session.add(agency)
        session.flush()
        session.add(ApiToken(agency_id=agency.id, name="t", token_sha256="0" * 64, expires_at=end_of_day))
    with session_scope() as session:
        token = session.scalars(select(ApiToken)).one()
        assert clock.as_utc(token.expires_at) == end_of_day
        assert clock.to_beijing(token.expires_at).strftime("%H:%M:%S") == "23:59:59"
        # a query comparing with a Beijing-built instant compares instants, not wall-clock digits
        later = end_of_day + timedelta(hours=1)
        assert session.scalars(select(ApiToken).where(ApiToken.expires_at < later)).all() == [token]
        earlier = end_of_day - timedelta(hours=1)
        assert session.scalars(select(ApiToken).where(ApiToken.expires_at < earlier)).all() == []
