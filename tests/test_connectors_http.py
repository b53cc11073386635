"""The http connector against a real HTTP server on loopback (http.server in a thread) serving paginated JSON:
page and cursor pagination, bearer and basic auth, retries on 5xx, incremental reads through a query parameter,
values that do not fit quarantined with their reason, and a read into published versions through the pipeline."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import ROW_PROBLEM_COLUMN, ReadState, StreamSpec
from connectors.http_api import HTTPConnector
from core.errors import ConfigError, RetriableError
from tests.helpers import (
    cursor_value,
    latest,
    read_version,
    register_resource,
    sync_runs,
)

TOKEN = "tok-" + "秘密".encode().hex()
COLUMNS = {"id": "integer", "uscc": "text", "name": "text", "reg_capital": "decimal(18,2)", "established": "date",
           "updated_at": "timestamptz", "tags": "text"}


def licence(i: int, *, updated: str | None = None) -> dict:
    return {"id": i, "uscc": f"91310000{i:09d}X", "name": f"徐汇区第{i}号餐饮店", "reg_capital": f"{i * 10}.5{i % 10}",
            "established": f"2019-0{1 + i % 9}-2{i % 8}", "updated_at": updated or f"2026-03-01T08:{i % 60:02d}:00+08:00",
            "tags": None if i % 4 else ["食品经营", "小型"]}


@dataclass
class Api:
    """What the loopback API serves and what it saw."""

    records: list[dict] = field(default_factory=list)
    fail_first: int = 0                       # answer 503 to this many requests first
    always_fail: bool = False
    delay_seconds: float = 0.0                # answer this late
    max_page_size: int = 0                    # /licences answers at most this many records a page (0: as asked)
    clamp_pages: bool = False                 # /licences answers a page past the end with the last page
    requests: list[dict] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: object) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            api.requests.append({"path": url.path, "query": query, "auth": self.headers.get("Authorization")})
            if api.delay_seconds:
                time.sleep(api.delay_seconds)
            if api.always_fail or api.fail_first > 0:
                api.fail_first -= 1
                return self._send(503, {"error": "维护中"})
            auth = self.headers.get("Authorization") or ""
            basic = "Basic " + base64.b64encode("exchange:口令-1".encode()).decode()
            if auth not in (f"Bearer {TOKEN}", basic):
                return self._send(401, {"error": "unauthorised"})
            rows = api.records
            if since := query.get("updated_since"):
                rows = [r for r in rows if datetime.fromisoformat(r["updated_at"]) >= datetime.fromisoformat(since)]
            if url.path == "/api/licences":  # page pagination, records under data.items
                page, size = int(query.get("page", 1)), int(query.get("page_size", 10))
                size = min(size, api.max_page_size or size)
                if api.clamp_pages and rows:
                    page = min(page, (len(rows) + size - 1) // size)
                return self._send(200, {"data": {"items": rows[(page - 1) * size: page * size]}, "page": page})
            if url.path == "/api/changes":  # cursor pagination: an opaque cursor, null on the last page
                start = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
                chunk = rows[start:start + 7]
                following = base64.b64encode(str(start + 7).encode()).decode() if start + 7 < len(rows) else None
                return self._send(200, {"result": chunk, "meta": {"next": following}})
            if url.path == "/api/links":  # cursor pagination by a full next URL
                start = int(query.get("after", 0))
                following = f"{api.base_url}/links?after={start + 20}" if start + 20 < len(rows) else ""
                return self._send(200, {"items": rows[start:start + 20], "links": {"next": following}})
            if url.path == "/api/broken":
                return self._send(200, b"<html>not json</html>")
            if url.path == "/api/huge":  # a page of 3 MB, streamed without announcing its length
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    self.wfile.write(b'{"items": [' + b'{"id": 1, "pad": "' + b"x" * (3 << 20) + b'"}]}')
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: expected
                    pass
                return None
            if url.path == "/api/announced":  # announces 10 GB, sends nothing
                self.send_response(200)
                self.send_header("Content-Length", str(10 << 30))
                self.end_headers()
                return None
            return self._send(404, {"error": "no such endpoint"})

    return Handler


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api(records=[licence(i) for i in range(1, 46)])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="govshare-test-http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _config(api: Api, **overrides: object) -> dict:
    config = {"base_url": api.base_url, "auth": "bearer", "backoff_seconds": 0.01, "max_retries": 3, "timeout": 5,
              "streams": {
                  "licences": {"path": "/licences", "records_path": "data.items", "page_size": 10,
                               "incremental_param": "updated_since", "columns": COLUMNS},
                  "changes": {"path": "/changes", "pagination": "cursor", "records_path": "result",
                              "next_cursor_path": "meta.next", "cursor_param": "cursor"}}}
    config.update(overrides)
    return config


def _connector(api: Api, *, secret: dict | None = None, **overrides: object) -> HTTPConnector:
    return HTTPConnector(name="卫健委接口", config=_config(api, **overrides),
                         secret=secret if secret is not None else {"token": TOKEN})


def _rows(connector: HTTPConnector, stream: str, *, since: str | None = None, batch_rows: int = 1000) -> list[dict]:
    spec = StreamSpec(table=stream, primary_key=("id",), cursor_column="updated_at", batch_rows=batch_rows)
    return [r for b in connector.read(spec, ReadState(since)) for r in b.to_pylist()]


def test_page_pagination_with_declared_types(api: Api) -> None:
    rows = _rows(_connector(api), "licences")
    assert [r["id"] for r in rows] == list(range(1, 46))
    assert rows[3] == {"id": 4, "uscc": "91310000000000004X", "name": "徐汇区第4号餐饮店", "reg_capital": Decimal("40.54"),
                       "established": date(2019, 5, 24), "updated_at": datetime(2026, 3, 1, 0, 4, tzinfo=UTC),
                       "tags": '["食品经营", "小型"]'}
    assert rows[0]["tags"] is None
    pages = [int(r["query"]["page"]) for r in api.requests]
    assert pages == [1, 2, 3, 4, 5] and all(r["query"]["page_size"] == "10" for r in api.requests)
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in api.requests)


def test_cursor_pagination_basic_auth_and_inferred_types(api: Api) -> None:
    connector = _connector(api, auth="basic", username="exchange", secret={"password": "口令-1"})
    [changes] = [t for t in connector.discover() if t.name == "changes"]
    types = {c.name: c.arrow_type for c in changes.columns}
    assert types["id"] == pa.int64() and types["reg_capital"] == pa.decimal128(38, 2)
    assert types["updated_at"] == pa.timestamp("us", tz="UTC") and types["established"] == pa.date32()
    api.requests.clear()
    spec = StreamSpec(table="changes", batch_rows=20)
    batches = list(connector.read(spec, ReadState()))
    assert [b.num_rows for b in batches] == [20, 20, 5]
    assert [r["id"] for b in batches for r in b.to_pylist()] == list(range(1, 46))
    cursors = [r["query"].get("cursor") for r in api.requests[1:]]  # after the page read to infer the columns
    assert cursors[0] is None and len(cursors) == 7 and len(set(cursors)) == 7


def test_server_failing_twice_then_answering_is_retried(api: Api) -> None:
    api.fail_first = 2
    rows = _rows(_connector(api), "licences")
    assert len(rows) == 45
    assert [int(r["query"]["page"]) for r in api.requests[:3]] == [1, 1, 1]  # two 503s, then the page


def test_server_failing_beyond_the_limit_raises_retriable(api: Api) -> None:
    api.always_fail = True
    with pytest.raises(RetriableError) as raised:
        _rows(_connector(api, max_retries=2), "licences")
    message = str(raised.value)
    assert "source '卫健委接口'" in message and "HTTP 503" in message and "after 3 attempts" in message
    assert len(api.requests) == 3 and TOKEN not in message


def test_wrong_token_missing_endpoint_and_closed_port_are_one_line(api: Api) -> None:
    cases = [
        (_connector(api, secret={"token": "wrong-token"}), "licences", ConfigError, "HTTP 401"),
        (_connector(api, streams={"x": {"path": "/nowhere"}}), "x", ConfigError, "HTTP 404"),
        (_connector(api, streams={"x": {"path": "/broken"}}), "x", ConfigError, "did not answer JSON"),
        (_connector(api, streams={"x": {"path": "/licences", "records_path": "data.itmes"}}), "x", ConfigError,
         "records_path 'data.itmes' is not in the answer"),
        (_connector(api, base_url="http://127.0.0.1:1/api"), "licences", RetriableError, "cannot connect"),
    ]
    for connector, stream, error, must_say in cases:
        with pytest.raises(error) as raised:
            connector.check(StreamSpec(table=stream))
        message = str(raised.value)
        assert "source '卫健委接口'" in message and must_say in message and "\n" not in message, message
        assert "wrong-token" not in message and TOKEN not in message


def test_values_that_do_not_fit_are_flagged(api: Api) -> None:
    api.records[2]["reg_capital"] = "12.345"        # three decimal places in a decimal(18,2)
    api.records[5]["established"] = "2019-02-30"
    api.records[7] = "not an object"
    rows = _rows(_connector(api), "licences")
    flagged = {r["id"] if r["id"] else i: r[ROW_PROBLEM_COLUMN] for i, r in enumerate(rows) if r[ROW_PROBLEM_COLUMN]}
    assert set(flagged) == {3, 6, 7}
    assert flagged[3].startswith("/licences page 1 record 3: reg_capital='12.345'")
    assert "established='2019-02-30'" in flagged[6] and "not a JSON object" in flagged[7]


def test_http_into_published_versions_incrementally(hub_home: Path, api: Api) -> None:
    from pipeline.paths import quarantine_file
    from pipeline.sync import sync_resource

    api.records[10]["reg_capital"] = "不详"
    hub = register_resource(kind="http", config=_config(api), secret={"token": TOKEN}, table="licences",
                            cursor="updated_at")
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (45, 44, 1)
    quarantined = pq.read_table(quarantine_file(hub.resource_id, sync_runs(hub.resource_code)[-1].id)).to_pylist()
    assert quarantined[0]["_reason"].startswith("/licences page 2 record 1: reg_capital='不详'")
    mark = cursor_value(hub.resource_code)
    assert mark.startswith("2026-03-01 00:45:00")

    api.records[4] = licence(5, updated="2026-03-02T10:00:00+08:00")   # changed at the source
    api.records.append(licence(46, updated="2026-03-02T11:00:00+08:00"))
    api.requests.clear()
    report = sync_resource(resource_code=hub.resource_code)

    assert report.mode == "incremental" and report.rows_read == 3  # the tie at the mark, the change, the new one
    sent = {r["query"]["updated_since"] for r in api.requests}
    assert sent == {datetime.fromisoformat(mark).isoformat()} and "T00:45:00" in sent.pop()
    table = read_version(latest(hub.resource_code))
    assert table.num_rows == 45 + 1 - 1  # id 11 is still quarantined, 46 is new
    by_id = {r["id"]: r for r in table.to_pylist()}
    assert by_id[5]["updated_at"] == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert by_id[46]["name"] == "徐汇区第46号餐饮店"
    # The token is stored encrypted, never in the source's configuration.
    from registry.db import session_scope
    from registry.catalog.sources import get_source

    with session_scope() as session:
        source = get_source(session, name=hub.source_name)
        assert TOKEN not in json.dumps(source.config) and TOKEN not in (source.secret_encrypted or "")
        assert source.secret_encrypted


def test_a_server_that_does_not_answer_in_time_is_retried_then_retriable(api: Api) -> None:
    api.delay_seconds = 2.0
    with pytest.raises(RetriableError) as raised:
        _rows(_connector(api, timeout=0.2, max_retries=1), "licences")
    assert "no answer from" in str(raised.value) and "after 2 attempts" in str(raised.value)
    assert len(api.requests) == 2


def test_a_run_failing_mid_pagination_publishes_nothing(hub_home: Path, api: Api) -> None:
    from pipeline.sync import sync_resource

    hub = register_resource(kind="http", config=_config(api, max_retries=1), secret={"token": TOKEN},
                            table="licences", cursor="updated_at")
    assert sync_resource(resource_code=hub.resource_code).version == 1
    mark = cursor_value(hub.resource_code)

    api.records.append(licence(46, updated="2026-03-05T09:00:00+08:00"))
    api.fail_first = 10**6  # from now on every request fails
    with pytest.raises(RetriableError):
        sync_resource(resource_code=hub.resource_code, full=True)

    assert latest(hub.resource_code).number == 1 and cursor_value(hub.resource_code) == mark
    runs = sync_runs(hub.resource_code)
    assert [r.status for r in runs] == ["published", "failed"] and "HTTP 503" in runs[-1].error


def test_inferred_stream_flags_a_field_it_has_no_column_for(api: Api) -> None:
    api.records[20]["remark"] = "第三页才出现的字段"
    spec = StreamSpec(table="changes")
    rows = [r for b in _connector(api).read(spec, ReadState()) for r in b.to_pylist()]
    flagged = [r for r in rows if r[ROW_PROBLEM_COLUMN]]
    assert len(rows) == 45 and [r["id"] for r in flagged] == [21]
    assert "remark" in flagged[0][ROW_PROBLEM_COLUMN] and "第三页才出现的字段" in flagged[0][ROW_PROBLEM_COLUMN]


def test_next_url_and_single_response_streams(api: Api) -> None:
    connector = _connector(api, streams={
        "linked": {"path": "/links", "pagination": "cursor", "records_path": "items", "next_cursor_path": "links.next",
                   "columns": COLUMNS},
        "single": {"path": "/licences", "pagination": "none", "records_path": "data.items", "columns": COLUMNS}})
    assert [r["id"] for r in _rows(connector, "linked")] == list(range(1, 46))
    assert [r["query"].get("after") for r in api.requests] == [None, "20", "40"]
    api.requests.clear()
    assert [r["id"] for r in _rows(connector, "single")] == list(range(1, 11))
    assert len(api.requests) == 1 and "page" not in api.requests[0]["query"]


def test_a_page_larger_than_the_limit_stops_the_read_with_the_fix(api: Api) -> None:
    """A server answering with gigabytes (a bug, a wrong page_size, a hostile peer) would take the worker's
    memory: the read stops at max_page_bytes, announced or not, and says what to change."""
    for path in ("/huge", "/announced"):
        connector = _connector(api, max_page_bytes=1 << 20, streams={
            "big": {"path": path, "pagination": "none", "records_path": "items"}})
        with pytest.raises(ConfigError, match="larger than 1,048,576 bytes; lower the stream's page_size"):
            _rows(connector, "big")
    connector = _connector(api, streams={"big": {"path": "/huge", "pagination": "none", "records_path": "items"}})
    assert len(_rows(connector, "big")[0]["pad"]) == 3 << 20  # under the default limit it is read



def test_numbers_beyond_their_declared_type_are_flagged_not_a_crash(api: Api) -> None:
    """An id of 20 digits in a column declared integer failed the whole read (OverflowError, an internal
    error). It is flagged on its row, with the value as sent; the other rows read."""
    api.records[3]["id"] = 99999999999999999999
    rows = [r for b in _connector(api).read(StreamSpec(table="licences", primary_key=("id",), batch_rows=1000),
                                            ReadState()) for r in b.to_pylist()]
    flagged = {i: r[ROW_PROBLEM_COLUMN] for i, r in enumerate(rows) if r[ROW_PROBLEM_COLUMN]}
    assert list(flagged) == [3] and len(rows) == len(api.records)
    assert "id=99999999999999999999: is outside the range of int64" in flagged[3]


def test_nested_numbers_and_booleans_keep_their_json_spelling(api: Api) -> None:
    """An object or array in a text column is published as the JSON it was: its numbers stay numbers, exact
    (they were written as strings, {"lng": "121.4737"}), and true in a text column stays true (was True)."""
    api.records = [{"id": 1, "uscc": "91310000000000001X", "name": "甲", "reg_capital": "1.00", "established": None,
                    "updated_at": "2026-03-01T08:00:00+08:00",
                    "tags": {"位置": {"lng": 121.4737, "lat": 31.2304}, "评分": [4.5, 1e2, 0.1],
                             "ok": True, "n": None, "件数": 3}},
                   {"id": 2, "uscc": "91310000000000002X", "name": "乙", "reg_capital": "2.00", "established": None,
                    "updated_at": "2026-03-01T08:00:00+08:00", "tags": True}]
    rows = _rows(_connector(api), "licences")
    assert json.loads(rows[0]["tags"], parse_float=Decimal) == {
        "位置": {"lng": Decimal("121.4737"), "lat": Decimal("31.2304")},
        "评分": [Decimal("4.5"), Decimal("100.0"), Decimal("0.1")], "ok": True, "n": None,
        "件数": 3}
    assert '"lng": 121.4737' in rows[0]["tags"]
    assert rows[1]["tags"] == "true"


def test_a_server_capping_the_page_size_is_read_to_the_end(api: Api) -> None:
    """The API answers at most 7 records a page though 10 were asked: every page is read (only the first was:
    a short page was taken for the last, silently). A server answering pages past the end with the last page
    again stops the read there, each record once."""
    api.max_page_size = 7
    rows = _rows(_connector(api), "licences")
    assert [r["id"] for r in rows] == list(range(1, 46))
    assert [int(r["query"]["page"]) for r in api.requests] == [1, 2, 3, 4, 5, 6, 7]
    api.max_page_size, api.clamp_pages, api.requests = 9, True, []  # 45 = 5 full pages; page 6 repeats page 5
    assert [r["id"] for r in _rows(_connector(api), "licences")] == list(range(1, 46))
    assert [int(r["query"]["page"]) for r in api.requests] == [1, 2, 3, 4, 5, 6]
    api.max_page_size, api.requests = 0, []
    with pytest.raises(ConfigError) as raised:  # the API's parameter is page, not pageNo: always the first page
        _rows(_connector(api, page_param="pageNo"), "licences")
    assert "page 2 of" in str(raised.value) and "ignores 'pageNo'" in str(raised.value)
    api.requests = []
    api.records = api.records[:3]  # fewer records than a page: one request more says so
    assert [r["id"] for r in _rows(_connector(api), "licences")] == [1, 2, 3]
    assert [int(r["query"]["page"]) for r in api.requests] == [1, 2]
