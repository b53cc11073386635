"""The access matrix: every role (and every agency's systems) against every sharing situation and every channel,
through the one access check (authorize_read + restrict) and through the real API download endpoint.
Nothing leaks (no unapproved column, row or unmasked identifier), nothing approved is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from samples.loaders import load_sqlite
from tests.helpers import bearer, latest, read_version, running_api
from tests.sharing_world import (
    APPROVED_ITEMS,
    APPROVED_STATUSES,
    CHANNELS,
    PERSONAL_COLUMNS,
    World,
    build_world,
)

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

ROWS = 300
DATA_ROLES = {"agency_admin", "data_admin"}
SITUATIONS = ("unconditional", "conditional", "pending", "not_shared")


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr("registry.users.SCRYPT_N", 2**10)  # stored hashes carry their cost: login still verifies
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "market.db"
    load_sqlite(database, rows=ROWS, seed=61)
    yield build_world(database, tmp_path)


def principals(world: World) -> list[str]:
    return sorted(world.tokens)


def expected(principal: str, situation: str) -> str | None:
    """The policy, stated once: None when refused, else "all" or "approved" (the partial grant)."""
    agency, _, who = principal.partition(":")
    if agency == "system":
        agency, who = who, "system"
    if who != "system" and who not in DATA_ROLES:
        return None  # catalogue and oversight roles read no data
    if situation == "not_shared":
        return None
    if agency == "provider":
        return "all"  # the provider's own resource
    if agency == "consumer":
        return {"unconditional": "all", "conditional": "approved", "pending": None}[situation]
    return None  # the third agency holds no grant


def mask(value: str) -> str:
    return value[:3] + "****" + value[-2:] if len(value) >= 6 else value[:1] + "****"


def expected_rows(published: pa.Table, scope: str, channel: str) -> list[dict]:
    rows = published.to_pylist()
    if scope == "all":
        return rows
    kept = [{k: r[k] for k in APPROVED_ITEMS} for r in rows if r["status"] in APPROVED_STATUSES]
    if channel == "browse":
        kept = [{k: (mask(v) if k in PERSONAL_COLUMNS else v) for k, v in r.items()} for r in kept]
    return kept


def test_every_role_sharing_type_and_channel(world: World) -> None:
    from core.errors import AccessDenied
    from delivery.access import authorize_read, restrict, restricted_row_count
    from delivery.files import iter_batches
    from registry.db import session_scope

    published = {s: read_version(latest(code)) for s, code in world.resources.items()}
    checked = allowed = 0
    for principal in principals(world):
        for situation in SITUATIONS:
            code = world.resources[situation]
            scope = expected(principal, situation)
            for channel in CHANNELS:
                checked += 1
                with session_scope() as session:
                    if scope is None:
                        with pytest.raises(AccessDenied) as refused:
                            authorize_read(session, token=world.tokens[principal], resource_code=code,
                                           channel=channel)
                        assert refused.value.zh and refused.value.en, (principal, situation, channel)
                        continue
                    decision = authorize_read(session, token=world.tokens[principal], resource_code=code,
                                              channel=channel)
                    batches = list(restrict(decision, iter_batches(decision.version,
                                                                   columns=decision.read_columns)))
                    got = pa.Table.from_batches(batches).sort_by("id").to_pylist()
                    want = expected_rows(published[situation], scope, channel)
                    assert got == want, (principal, situation, channel)
                    assert restricted_row_count(decision) == len(want)
                    allowed += 1
    assert checked == len(principals(world)) * len(SITUATIONS) * len(CHANNELS)
    assert 0 < allowed < checked


def test_the_partial_grant_never_shows_more(world: World) -> None:
    """The conditional grant, looked at directly: approved items only, in their order, the row condition applied
    even though it is on a column the grant lists, identifiers masked in browsing and only there."""
    from delivery.access import authorize_read
    from registry.db import session_scope

    with session_scope() as session:
        decision = authorize_read(session, token=world.tokens["system:consumer"],
                                  resource_code=world.resources["conditional"], channel="browse")
        assert decision.columns == APPROVED_ITEMS
        assert decision.row_filter == {"column": "status", "op": "in", "values": APPROVED_STATUSES}
        assert decision.mask_columns == PERSONAL_COLUMNS
        assert decision.purpose == "社保登记核验" and decision.grant_id
        assert "reg_capital" not in (decision.read_columns or [])
        filed = authorize_read(session, token=world.tokens["system:consumer"],
                               resource_code=world.resources["conditional"], channel="file")
        assert filed.mask_columns == []


def test_download_endpoint_follows_the_matrix(world: World) -> None:
    published = {s: read_version(latest(code)) for s, code in world.resources.items()}
    with running_api() as api:
        for principal in principals(world):
            for situation in SITUATIONS:
                code = world.resources[situation]
                response = requests.get(f"{api.base_url}/api/v1/resources/{code}/download",
                                        params={"format": "parquet"}, headers=bearer(world.tokens[principal]),
                                        timeout=60)
                scope = expected(principal, situation)
                if scope is None:
                    assert response.status_code == 403, (principal, situation, response.text)
                    body = response.json()
                    assert body["detail"] and body["detail_zh"]
                    continue
                assert response.status_code == 200, (principal, situation, response.text)
                table = pq.read_table(io.BytesIO(response.content)).sort_by("id")
                want = expected_rows(published[situation], scope, "file")
                assert table.to_pylist() == want, (principal, situation)
                assert response.headers["X-Govshare-Rows"] == str(len(want))
