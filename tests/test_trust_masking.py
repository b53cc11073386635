"""Private by default: a column the published catalogue entry marks as a personal identifier (主体标识 身份证号码,
or 个人信息 such as a natural person's name) is masked on every channel, without any secrecy review or contract,
unless the provider's decision lifts the mask for that consumer and that column; the browsing page says 已脱敏."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from tests.helpers import CONSUMER, bearer, person_of, publish_entry, running_api
from tests.sharing_world import PROVIDER, World, small_world


pytestmark = pytest.mark.usefixtures("cheap_hashing")

@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> World:
    return small_world(tmp_path, rows=30, seed=47)


def _masked(value: str) -> bool:
    return "****" in value


def test_the_catalogue_mark_alone_masks_on_every_channel_until_the_decision_lifts_it(world: World) -> None:
    from api.web import COOKIE
    from registry.sharing.applications import apply, decide
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.sharing.models import ResourceSensitivity

    code = world.resources["pending"]  # conditional, no secrecy review, no contract
    with session_scope() as session:
        publish_entry(session, code, personal={"legal_rep_id": "idcard", "legal_rep": "person_name"})
        assert session.get(ResourceSensitivity, get_resource(session, code=code).id) is None  # no secrecy review
        consumer = person_of(session, CONSUMER[0], "data_admin")
        application = apply(session, resource_code=code, consumer=CONSUMER[0], scope="本市企业", purpose="执法检查",
                            items=["id", "legal_rep", "legal_rep_id"], by=consumer)
        decide(session, number=application.number, outcome="approve", reasons="同意",
               by=person_of(session, PROVIDER[0], "data_admin"))
    token = world.tokens["system:consumer"]
    with running_api() as api:
        def rows(path: str, **params: object) -> list[dict]:
            answer = requests.get(f"{api.base_url}/api/v1/resources/{code}/{path}", params=params,
                                  headers=bearer(token), timeout=30)
            assert answer.status_code == 200, answer.text
            if params.get("format") == "parquet":
                return pq.read_table(io.BytesIO(answer.content)).to_pylist()
            return answer.json()["records"]

        for channel_rows in (rows("files", format="parquet"), rows("records", limit=50)):
            assert channel_rows and all(_masked(r["legal_rep_id"]) and _masked(r["legal_rep"]) for r in channel_rows)
        page = requests.get(f"{api.base_url}/web/data/{code}", cookies={COOKIE: world.tokens["consumer:data_admin"]},
                            timeout=30)
        assert page.status_code == 200 and "已脱敏" in page.text
        owner = requests.get(f"{api.base_url}/api/v1/resources/{code}/files", params={"format": "parquet"},
                             headers=bearer(world.tokens["system:provider"]), timeout=30)
        assert not any(_masked(r["legal_rep_id"]) for r in pq.read_table(io.BytesIO(owner.content)).to_pylist())

        # the provider's decision lifts the mask for one column of this consumer, and only that column
        with session_scope() as session:
            again = apply(session, resource_code=code, consumer=CONSUMER[0], scope="本市企业", purpose="执法检查",
                          items=["id", "legal_rep", "legal_rep_id"], by=person_of(session, CONSUMER[0], "data_admin"))
            decide(session, number=again.number, outcome="approve", reasons="核对法定代表人需要姓名",
                   unmask=["legal_rep"], by=person_of(session, PROVIDER[0], "data_admin"))
        lifted = rows("files", format="parquet")
        assert not any(_masked(r["legal_rep"]) for r in lifted) and all(_masked(r["legal_rep_id"]) for r in lifted)


def test_pages_of_a_resource_keyed_by_a_masked_column_are_not_in_its_order(world: World) -> None:
    """A person-keyed resource (its key the ID number, masked for this consumer): pages sorted by the key would
    give the masked numbers' order (which rows share a district prefix, who was born first); they are sorted by
    the first column the consumer sees in the clear instead, and the cursor walks that order to the end."""
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.sharing.applications import apply, decide

    code = world.resources["pending"]
    with session_scope() as session:
        publish_entry(session, code, personal={"legal_rep_id": "idcard"})
        resource = get_resource(session, code=code)
        resource.stream = {**resource.stream, "primary_key": ["legal_rep_id"]}
        application = apply(session, resource_code=code, consumer=CONSUMER[0], scope="本市企业", purpose="执法检查",
                            items=["legal_rep_id", "id", "name"], by=person_of(session, CONSUMER[0], "data_admin"))
        decide(session, number=application.number, outcome="approve", reasons="同意",
               by=person_of(session, PROVIDER[0], "data_admin"))
    with running_api() as api:
        def walk(token: str) -> list[dict]:
            rows, cursor = [], None
            while True:
                answer = requests.get(f"{api.base_url}/api/v1/resources/{code}/records", headers=bearer(token),
                                      params={"limit": 7, **({"cursor": cursor} if cursor else {})}, timeout=30)
                assert answer.status_code == 200, answer.text
                rows += answer.json()["records"]
                if not (cursor := answer.json().get("next_cursor")):
                    return rows
        consumer = walk(world.tokens["system:consumer"])
        assert len(consumer) == 30 and all(_masked(r["legal_rep_id"]) for r in consumer)
        assert [r["id"] for r in consumer] == sorted(r["id"] for r in consumer)  # the clear column's order
        owner = walk(world.tokens["system:provider"])  # the provider sees the key: its own order
        assert [r["legal_rep_id"] for r in owner] == sorted(r["legal_rep_id"] for r in owner)
        assert [r["id"] for r in owner] != sorted(r["id"] for r in owner)  # (the two orders differ here)
