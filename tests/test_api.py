"""The HTTP API served by uvicorn on loopback: bearer tokens, grants, downloads equal to the published version,
and an audit trail of every read and every refusal whose hash chain exposes tampering."""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from sqlalchemy import select, text

from samples.loaders import load_sqlite
from tests.helpers import (
    ApiServer,
    Hub,
    bearer,
    issue_token,
    latest,
    read_version,
    register_resource,
    revoke_token,
    rows_digest,
    sqlite_execute,
    subscribe_consumer,
    table_rows,
    version_folder,
)

ROWS = 800


@dataclass
class Served:
    hub: Hub
    api: ApiServer
    database: Path

    def url(self, path: str) -> str:
        return f"{self.api.base_url}{path}"

    def download(self, token: str | None = None, *, fmt: str = "parquet", code: str | None = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        return requests.get(self.url(f"/api/v1/resources/{code or self.hub.resource_code}/files"),
                            params={"format": fmt}, headers=headers or (bearer(token) if token else {}), timeout=60)


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """A resource synced once (v1) from a SQLite business database, its consumer not yet subscribed, and the
    real app listening on a loopback port."""
    from pipeline.sync import sync_resource

    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "market.db"
    load_sqlite(database, rows=ROWS, seed=51)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    sync_resource(resource_code=hub.resource_code)
    api = ApiServer().start()
    try:
        yield Served(hub=hub, api=api, database=database)
    finally:
        api.stop()


def _audit(action: str = "data.read") -> list:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _verify_chain() -> list[str]:
    from registry.audit.log import verify_chain
    from registry.db import session_scope

    with session_scope() as session:
        return verify_chain(session)


def _assert_401(response: requests.Response, *, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    body = response.json()
    assert reason in body["detail"] and body["detail_zh"]


def test_requests_without_a_valid_token_are_401(served: Served) -> None:
    subscribe_consumer(served.hub.resource_code)  # even with a grant in place, the credential decides
    _assert_401(served.download(), reason="missing API token")
    _assert_401(served.download(headers={"Authorization": "Basic dXNlcjpwYXNz"}), reason="missing API token")
    _assert_401(served.download("gsk_" + secrets.token_urlsafe(32)), reason="invalid API token")
    # Forged from a real one: same prefix and length, one character different.
    real = served.hub.token
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    _assert_401(served.download(forged), reason="invalid API token")

    expired = issue_token(days=-1)
    _assert_401(served.download(expired), reason="expired")
    revoked = issue_token()
    assert served.download(revoked).status_code == 200
    revoke_token(revoked)
    _assert_401(served.download(revoked), reason="revoked")

    for path in ("/api/v1/catalog", f"/api/v1/resources/{served.hub.resource_code}/versions"):
        _assert_401(requests.get(served.url(path), timeout=30), reason="missing API token")
        _assert_401(requests.get(served.url(path), headers=bearer(expired), timeout=30), reason="expired")


def test_agency_without_a_grant_is_403_with_chinese_and_english_reason(served: Served) -> None:
    response = served.download(served.hub.token)
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    body = response.json()
    assert "subscribe" in body["detail"]
    assert "共享授权" in body["detail_zh"]

    # A resource that is not shared says why, with its legal basis, in both languages.
    closed = register_resource(kind=None, name="涉密企业名录", classification="101002", sharing_type="not_shared",
                               sharing_condition="《中华人民共和国保守国家秘密法》")
    refused = served.download(served.hub.token, code=closed.resource_code).json()
    assert "not shared" in refused["detail"] and "保守国家秘密法" in refused["detail"]
    assert "不予共享" in refused["detail_zh"] and "保守国家秘密法" in refused["detail_zh"]

    subscribe_consumer(served.hub.resource_code)
    assert served.download(served.hub.token).status_code == 200


def test_parquet_download_equals_the_published_version(served: Served) -> None:
    subscribe_consumer(served.hub.resource_code)
    version = latest(served.hub.resource_code)

    response = served.download(served.hub.token)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["X-Govshare-Version"] == "1"
    assert response.headers["X-Govshare-Rows"] == str(ROWS)
    assert response.headers["X-Govshare-Manifest-SHA256"] == version.manifest_sha256
    manifest_bytes = (version_folder(version) / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == response.headers["X-Govshare-Manifest-SHA256"]
    assert "attachment" in response.headers["content-disposition"]

    downloaded = pq.read_table(io.BytesIO(response.content))
    published = read_version(version)
    assert downloaded.num_rows == version.row_count == ROWS
    assert downloaded.schema == published.schema
    assert rows_digest(table_rows(downloaded.sort_by("id"))) == rows_digest(table_rows(published))


def test_csv_download_keeps_rows_and_chinese_text(served: Served) -> None:
    subscribe_consumer(served.hub.resource_code)
    version = latest(served.hub.resource_code)

    response = served.download(served.hub.token, fmt="csv")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())  # Excel reads the BOM as UTF-8
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == version.row_count == ROWS
    published = read_version(version)
    by_id = {int(row["id"]): row for row in rows}
    assert sorted(by_id) == published.column("id").to_pylist()
    assert [by_id[i]["name"] for i in sorted(by_id)] == published.column("name").to_pylist()
    assert [by_id[i]["address"] for i in sorted(by_id)] == published.column("address").to_pylist()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in rows[0]["name"])
    assert [Decimal(by_id[i]["reg_capital"]) for i in sorted(by_id)] == published.column("reg_capital").to_pylist()


def test_catalog_versions_and_openapi(served: Served) -> None:
    from pipeline.sync import sync_resource

    token = served.hub.token
    catalog = requests.get(served.url("/api/v1/catalog"), headers=bearer(token), timeout=30)
    assert catalog.status_code == 200
    entries = {entry["code"]: entry for entry in catalog.json()}
    entry = entries[served.hub.resource_code]
    assert entry["name"] == "企业基本信息" and entry["provider"] == "上海市市场监督管理局"
    assert entry["provider_code"] == served.hub.provider_code
    assert entry["latest_version"] == 1 and entry["sharing_type"] == "unconditional"

    assert sync_resource(resource_code=served.hub.resource_code, full=True).version is None  # nothing changed
    assert latest(served.hub.resource_code).number == 1
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=served.hub.resource_code, full=True)
    versions_url = served.url(f"/api/v1/resources/{served.hub.resource_code}/versions")
    # metadata is data: without a grant, no schema, counts or watermark (refused and audited)
    ungranted = requests.get(versions_url, headers=bearer(token), timeout=30)
    assert ungranted.status_code == 403 and "schema_fields" not in ungranted.text
    assert _audit()[-1].result == "denied" and _audit()[-1].detail["channel"] == "metadata"
    subscribe_consumer(served.hub.resource_code)
    listed = requests.get(versions_url, headers=bearer(token), timeout=30)
    assert listed.status_code == 200
    body = listed.json()
    assert [v["number"] for v in body] == [2, 1]
    assert body[0]["manifest_sha256"] == latest(served.hub.resource_code).manifest_sha256
    assert body[0]["row_count"] == ROWS and body[0]["quarantined_count"] is None  # the provider's own business
    assert {f["name"] for f in body[0]["schema_fields"]} >= {"id", "name", "reg_capital"}
    assert _audit("data.metadata")[-1].detail["what"] == "versions"

    missing = requests.get(served.url("/api/v1/resources/999999/0001/versions"), headers=bearer(token), timeout=30)
    assert missing.status_code == 404 and "999999/0001" in missing.json()["detail"]

    spec = requests.get(served.url("/openapi.json"), timeout=30)
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/api/v1/catalog", "/api/v1/resources/{code}/versions", "/api/v1/resources/{code}/files"} <= set(paths)
    assert "format" in {p["name"] for p in paths["/api/v1/resources/{code}/files"]["get"]["parameters"]}


def test_every_read_and_refusal_is_audited_and_the_chain_exposes_tampering(served: Served) -> None:
    from registry.db import get_engine

    code = served.hub.resource_code
    before = len(_audit())

    assert served.download().status_code == 401                            # no token
    assert served.download("gsk_" + secrets.token_urlsafe(32)).status_code == 401  # forged token
    assert served.download(served.hub.token).status_code == 403             # no grant
    subscribe_consumer(code)
    assert served.download(served.hub.token).status_code == 200
    assert served.download(served.hub.token, fmt="csv").status_code == 200

    events = _audit()[before:]
    assert [e.result for e in events] == ["denied", "denied", "denied", "ok", "ok"]
    assert all(e.resource_code == code for e in events)
    denied, ok = events[:3], events[3:]
    assert "missing API token" in denied[0].detail["reason"]
    assert "invalid API token" in denied[1].detail["reason"]
    assert denied[2].agency_code == served.hub.consumer_code and "subscribe" in denied[2].detail["reason"]
    assert [e.detail["format"] for e in ok] == ["parquet", "csv"]
    assert all(e.agency_code == served.hub.consumer_code and e.detail["rows"] == ROWS for e in ok)
    assert all(e.detail["version"] == 1 for e in ok)
    assert served.hub.token not in str([e.detail for e in events])  # a credential is never logged

    assert _verify_chain() == []

    # Someone turns a refusal into a success with plain SQL: the chain shows the edited event.
    edited = denied[2].id
    with get_engine().begin() as connection:
        connection.execute(text("UPDATE audit_events SET result = 'ok' WHERE id = :id"), {"id": edited})
    problems = _verify_chain()
    assert problems == [f"event {edited}: content does not match its hash (edited)"]

    # Restored, then a row removed: the next event no longer follows its predecessor.
    with get_engine().begin() as connection:
        connection.execute(text("UPDATE audit_events SET result = 'denied' WHERE id = :id"), {"id": edited})
    assert _verify_chain() == []
    removed = denied[1].id
    with get_engine().begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": removed})
    problems = _verify_chain()
    assert problems == [f"event {denied[2].id}: does not follow the previous event (deleted, inserted or reordered)"]


def test_a_registry_that_stops_answering_is_503_with_the_reason_and_recovers(pg_hub_home: Path, pg_database: str,
                                                                             tmp_path: Path) -> None:
    """The PostgreSQL registry going away under a running server (restarted, moved) answered every request a
    bare 500 'Internal Server Error' with the driver's traceback in the log; now 503 with the reason (Chinese and
    English, Retry-After), a Chinese page for a browser, and the next request after it is back answers again."""
    import psycopg2

    from tests.helpers import bearer, register_resource, running_api
    from tests.services import require_postgres

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=20, seed=4)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    name = pg_database.rpartition("/")[2]
    admin = psycopg2.connect(require_postgres())
    admin.autocommit = True

    def rename(old: str, new: str) -> None:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (old,))
            cursor.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')

    try:
        with running_api() as api:
            catalog = f"{api.base_url}/api/v1/catalog"
            assert requests.get(catalog, headers=bearer(hub.token), timeout=30).status_code == 200
            rename(name, name + "_away")
            try:
                answer = requests.get(catalog, headers=bearer(hub.token), timeout=30)
                assert answer.status_code == 503 and answer.headers["Retry-After"] == "30", answer.text
                assert answer.json()["detail_zh"] == "平台登记库暂时无法访问，请稍后再试"
                page = requests.post(f"{api.base_url}/web/login", data={"username": "zhang.wei", "password": "x"},
                                     headers={"Accept": "text/html"}, timeout=30, allow_redirects=False)
                assert page.status_code == 503 and "平台的登记库暂时无法访问" in page.text
                assert requests.get(f"{api.base_url}/healthz", timeout=30).status_code == 503  # compose sees it
            finally:
                rename(name + "_away", name)
            assert requests.get(catalog, headers=bearer(hub.token), timeout=30).status_code == 200
            assert requests.get(f"{api.base_url}/healthz", timeout=30).json() == {"status": "ok"}
    finally:
        admin.close()


def test_invalid_requests_say_which_field_and_why_in_chinese_and_pages_never_show_json(hub_home: Path) -> None:
    """FastAPI answered an invalid request with its English-only `detail` list, and a page's form sent without a
    text/html Accept header got that JSON. The list stays as it was (clients read it), with a Chinese `message`
    naming each field and why beside it; a page's form shows the Chinese text, by the field's label."""
    hub = register_resource(kind=None)
    api = ApiServer().start()
    try:
        def call(method: str, path: str, **kwargs) -> requests.Response:  # noqa: ANN003
            return requests.request(method, f"{api.base_url}{path}", timeout=30, **kwargs)

        login = call("POST", "/api/v1/auth/login", json={"username": 5})
        assert login.status_code == 422, login.text
        body = login.json()
        assert [(e["type"], e["loc"]) for e in body["detail"]] == [("string_type", ["body", "username"]),
                                                                   ("missing", ["body", "password"])]
        assert body["message"] == "请求有误：请求体 username：应为文本；请求体 password：必须填写"
        assert body["detail_zh"] == body["message"]
        auth = bearer(hub.token)
        cases = [
            (f"/api/v1/resources/{hub.resource_code}/files?format=xml", "查询参数 format：只能是 'parquet'、'csv'、'xlsx' 之一"),
            ("/api/v1/tickets?status=bogus", "查询参数 status：格式不符（应匹配 ^(open|closed)$）"),
        ]
        for path, says in cases:
            answer = call("GET", path, headers=auth)
            assert answer.status_code == 422 and answer.json()["message"] == f"请求有误：{says}", answer.text
        too_many = call("POST", "/api/v1/elements/duplicate-check", headers=auth,
                        json={"element_codes": [f"DE{i:04d}" for i in range(501)]})
        assert too_many.status_code == 422 and too_many.json()["message"] == \
            "请求有误：请求体 element_codes：过多：最多 500 项", too_many.text

        for accept in ({"Accept": "text/html"}, {}):  # a browser's form post, and one without Accept
            page = call("POST", "/web/login", data={"username": "zhang"}, headers=accept, allow_redirects=False)
            assert page.status_code == 400 and page.headers["content-type"].startswith("text/html"), page.text
            assert "提交的内容有误：密码：必须填写。" in page.text and '"detail"' not in page.text
    finally:
        api.stop()
