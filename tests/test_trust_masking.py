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
