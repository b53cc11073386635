"""The access matrix, driven by the declared role table (registry/people/roles.py): every role (and every agency's
systems) against every sharing situation and every channel, through the one access check (authorize_read +
restrict), and over every data and metadata route of the real API (downloads, files, changes, records, lookups,
signed links, versions, the per-resource OpenAPI, the browsing page; the catalogue and DCAT for anyone signed
in). Nothing leaks (no unapproved column, row or unmasked identifier), nothing approved is refused."""

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
SITUATIONS = ("unconditional", "conditional", "pending", "not_shared")


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr("registry.people.users.SCRYPT_N", 2**10)  # stored hashes carry their cost: login still verifies
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "market.db"
    load_sqlite(database, rows=ROWS, seed=61)
    yield build_world(database, tmp_path)


def principals(world: World) -> list[str]:
    return sorted(world.tokens)


def role_of(principal: str):  # noqa: ANN201 - registry.people.roles.Role
    from registry.people.roles import ROLE_TABLE, SYSTEM

    agency, _, who = principal.partition(":")
    return SYSTEM if agency == "system" else ROLE_TABLE[who]


def expected(principal: str, situation: str) -> str | None:
    """The policy, from the declared role table: None when refused, else "all" or "approved" (the partial
    grant). Only roles that may read data read it, and only their own agency's grants or resources."""
    agency, _, who = principal.partition(":")
    if agency == "system":
        agency = who
    if "read_data" not in role_of(principal).may:
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
    # private by default: personal identifiers masked on every channel (the decision did not lift them)
    return [{k: (mask(v) if k in PERSONAL_COLUMNS else v) for k, v in r.items()} for r in kept]


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
    even though it is on a column the grant lists, identifiers masked on every channel."""
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
        assert filed.mask_columns == PERSONAL_COLUMNS


def test_download_endpoint_follows_the_matrix(world: World) -> None:
    published = {s: read_version(latest(code)) for s, code in world.resources.items()}
    with running_api() as api:
        for principal in principals(world):
            for situation in SITUATIONS:
                code = world.resources[situation]
                response = requests.get(f"{api.base_url}/api/v1/resources/{code}/files",
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


def test_the_role_table_is_the_one_the_services_use() -> None:
    from registry.people.auth import DATA_ROLES, OVERSIGHT_ROLES
    from registry.people.roles import PLATFORM_ROLES, ROLE_TABLE, ROLES

    assert set(ROLES) == set(ROLE_TABLE)
    assert DATA_ROLES == {c for c, r in ROLE_TABLE.items() if "read_data" in r.may}
    assert OVERSIGHT_ROLES <= PLATFORM_ROLES and not PLATFORM_ROLES & DATA_ROLES  # platform roles read no data
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for role in ROLE_TABLE.values():  # the docs show the same table
        assert f"`{role.code}`" in readme and role.label in readme, role.code


ROUTES = (  # (method, path with {code}, query or JSON body, channel)
    ("GET", "/api/v1/resources/{code}/files", {"format": "parquet"}, "file"),
    ("GET", "/api/v1/resources/{code}/files", {"format": "csv"}, "file"),
    ("POST", "/api/v1/resources/{code}/links", {"format": "csv"}, "file"),
    ("GET", "/api/v1/resources/{code}/changes", {"since": 1}, "interface"),
    ("GET", "/api/v1/resources/{code}/records", {"limit": 5}, "interface"),
    ("GET", "/api/v1/resources/{code}/lookup", {"column": "id", "value": "3"}, "interface"),
    ("GET", "/api/v1/resources/{code}/versions", {}, "metadata"),
    ("GET", "/api/v1/catalog/{code}/openapi.json", {}, "metadata"),
)


def _call(api_url: str, method: str, path: str, params: dict, token: str | None) -> requests.Response:
    headers = bearer(token) if token else {}
    if method == "POST":
        return requests.post(api_url + path, json=params, headers=headers, timeout=60)
    return requests.get(api_url + path, params=params, headers=headers, timeout=60)


def test_every_route_and_channel_follows_the_role_table(world: World) -> None:
    """Each principal of the table against each data and metadata route: allowed exactly when the table and the
    grants say so, anonymous always 401; what is allowed carries only granted columns, masked identifiers."""
    with running_api() as api:
        for situation in SITUATIONS:
            code = world.resources[situation]
            for method, path, params, channel in ROUTES:
                url_path = path.format(code=code)
                anonymous = _call(api.base_url, method, url_path, params, None)
                assert anonymous.status_code == 401, (path, anonymous.text)
                for principal in principals(world):
                    response = _call(api.base_url, method, url_path, params, world.tokens[principal])
                    scope = expected(principal, situation)
                    where = (principal, situation, path)
                    if scope is None:
                        assert response.status_code == 403, (*where, response.status_code, response.text[:200])
                        assert response.json()["detail_zh"], where
                        continue
                    assert response.status_code == 200, (*where, response.text[:300])
                    if method == "POST":  # a signed link: following it re-checks the grant
                        followed = requests.get(response.json()["url"], timeout=60)
                        assert followed.status_code == 200, where
                        body = followed.text
                    else:
                        body = response.text
                    if scope == "approved" and channel != "metadata":
                        assert "reg_capital" not in body and "310107" not in body.replace("310****", ""), where
                    if scope == "approved" and path.endswith("/versions"):
                        fields = {f["name"] for v in response.json() for f in v["schema_fields"]}
                        assert fields == set(APPROVED_ITEMS), where
                        # the digest names the version, as every download carries it (one rule, ARCHITECTURE.md)
                        assert all(v["row_count"] is None and len(v["manifest_sha256"]) == 64 for v in response.json())
                    if scope == "approved" and path.endswith("openapi.json"):
                        record = response.json()["components"]["schemas"]["Record"]["properties"]
                        assert set(record) == set(APPROVED_ITEMS), where


def test_catalogue_level_routes_need_a_caller_only(world: World) -> None:
    """The published catalogue itself (entries, search, services, DCAT) is for every signed-in caller: it is how
    agencies find what to apply for; it carries no version, count or data."""
    with running_api() as api:
        for path in ("/api/v1/catalog", "/api/v1/catalog/entries", "/api/v1/catalog/search",
                     "/api/v1/catalog/services", "/api/v1/catalog/dcat.jsonld"):
            assert requests.get(api.base_url + path, timeout=30).status_code == 401, path
            for principal in principals(world):
                answer = requests.get(api.base_url + path, headers=bearer(world.tokens[principal]), timeout=30)
                assert answer.status_code == 200, (principal, path, answer.text[:200])
                assert "row_count" not in answer.text and "watermark" not in answer.text


def test_the_browsing_page_follows_the_role_table(world: World) -> None:
    """Online browsing (在线浏览) for each signed-in person: the table decides; masked identifiers say 已脱敏."""
    from api.web import COOKIE

    with running_api() as api:
        for principal in principals(world):
            if principal.startswith("system:"):
                continue  # systems do not browse: pages need a person
            for situation in SITUATIONS:
                page = requests.get(f"{api.base_url}/web/data/{world.resources[situation]}", timeout=30,
                                    cookies={COOKIE: world.tokens[principal]})
                scope = expected(principal, situation)
                if scope is None:
                    assert page.status_code == 403, (principal, situation, page.status_code)
                    continue
                assert page.status_code == 200, (principal, situation, page.text[:300])
                if scope == "approved":
                    assert "已脱敏" in page.text and "****" in page.text and "注册资本" not in page.text
