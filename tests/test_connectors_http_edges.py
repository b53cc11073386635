"""The http connector at the edges a new agency's API shows, against real HTTP servers on loopback (two of them,
on 127.0.0.1 and 127.0.0.2, so that "another host" is one): where the agency's credentials may go (a next link
or a redirect to another host), pagination that would never end, values that cannot be read exactly (a lone
surrogate, a number a double cannot hold), and a page in the Chinese national charset (GB18030).

Each server answers from a table of routes (path -> function of the query), so a test says what its API does."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.base import ROW_PROBLEM_COLUMN, ReadState, StreamSpec
from connectors.http_api import HTTPConnector
from core.errors import ConfigError
from tests.helpers import cursor_value, latest, read_version, register_resource

TOKEN = "agency-token-" + "机密".encode().hex()
Answer = tuple[int, dict[str, str], object]  # status, headers, body (bytes, or a value written as JSON)
# ... or a function writing the answer itself to the handler (a server sending it slowly)


@dataclass
class Host:
    """One loopback API: what it answers (routes) and what it was sent (requests)."""

    address: str
    routes: dict[str, Callable[[dict[str, str]], Answer]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}/api"


def _handler(host: Host) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            host.requests.append({"path": url.path, "query": query, "authorization": self.headers.get("Authorization"),
                                  "api_key": self.headers.get("X-API-Key")})
            route = host.routes.get(url.path.removeprefix("/api"))
            answer = route(query) if route else (404, {}, {"error": "no such endpoint"})
            if callable(answer):  # the route writes its answer itself, slowly
                return answer(self)
            status, headers, body = answer
            data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _serve(address: str) -> Iterator[Host]:
    host = Host(address)
    server = ThreadingHTTPServer((address, 0), _handler(host))
    host.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, name=f"govshare-test-http-{address}", daemon=True).start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def agency() -> Iterator[Host]:
    """The agency's API, the one the source is registered with."""
    yield from _serve("127.0.0.1")


@pytest.fixture
def stranger() -> Iterator[Host]:
    """Another host on loopback, which must never see the agency's credentials."""
    yield from _serve("127.0.0.2")


def _connector(host: Host, stream: dict, **config: object) -> HTTPConnector:
    settings = {"base_url": host.base_url, "auth": "bearer", "backoff_seconds": 0.01, "max_retries": 1, "timeout": 5,
                "streams": {"s": {"records_path": "items", "columns": {"id": "integer", "name": "text"}, **stream}},
                **config}
    return HTTPConnector(name="人社接口", config=settings, secret={"token": TOKEN})


def _rows(connector: HTTPConnector) -> list[dict]:
    spec = StreamSpec(table="s", primary_key=("id",), batch_rows=1000)
    return [r for b in connector.read(spec, ReadState()) for r in b.to_pylist()]


def _json(body: object, headers: dict[str, str] | None = None) -> Callable[[dict[str, str]], Answer]:
    return lambda query: (200, headers or {}, body)


# --- credentials go to the agency's host only ------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["bearer", "header"])
def test_a_next_link_to_another_host_is_refused_before_the_token_goes_there(agency: Host, stranger: Host,
                                                                            auth: str) -> None:
    """The API's next link named another host: the read followed it with the agency's token (Authorization, or
    the X-API-Key of header auth), handing it to whoever that host is. It stops, naming the host, and that host
    is sent nothing."""
    agency.routes["/people"] = _json({"items": [{"id": 1, "name": "张三"}], "next": f"{stranger.base_url}/people"})
    stranger.routes["/people"] = _json({"items": [{"id": 2, "name": "李四"}], "next": None})
    connector = _connector(agency, {"path": "/people", "pagination": "cursor", "next_cursor_path": "next"}, auth=auth)
    with pytest.raises(ConfigError) as raised:
        _rows(connector)
    message = str(raised.value)
    assert "127.0.0.2" in message and "another host" in message and TOKEN not in message
    assert stranger.requests == []


def test_a_next_link_on_the_agency_host_is_followed(agency: Host) -> None:
    """The same host, spelt as the base URL spells it, with its port: followed as before."""
    agency.routes["/people"] = _json({"items": [{"id": 1, "name": "张三"}], "next": f"{agency.base_url}/more"})
    agency.routes["/more"] = _json({"items": [{"id": 2, "name": "李四"}], "next": None})
    connector = _connector(agency, {"path": "/people", "pagination": "cursor", "next_cursor_path": "next"})
    assert [r["id"] for r in _rows(connector)] == [1, 2]
    assert [r["authorization"] for r in agency.requests] == [f"Bearer {TOKEN}"] * 2


@pytest.mark.parametrize("auth", ["bearer", "header", "basic"])
def test_a_redirect_to_another_host_carries_no_credential(agency: Host, stranger: Host, auth: str) -> None:
    """A redirect to another host was followed with header auth's X-API-Key still on it (requests drops only
    Authorization). No credential of any kind reaches the other host."""
    agency.routes["/people"] = lambda query: (302, {"Location": f"{stranger.base_url}/people"}, b"")
    stranger.routes["/people"] = _json({"items": [{"id": 2, "name": "李四"}]})
    connector = _connector(agency, {"path": "/people", "pagination": "none"}, auth=auth, username="exchange")
    _rows(connector)
    assert agency.requests[0]["authorization"] or agency.requests[0]["api_key"]  # the agency's host has them
    assert [(r["authorization"], r["api_key"]) for r in stranger.requests] == [(None, None)]


# --- pagination that would never end ----------------------------------------------------------------------------

def test_a_server_ignoring_the_cursor_stops_at_the_second_page(agency: Host) -> None:
    """The API ignores the cursor parameter (it is named after another one) and answers the first page again,
    each time with a new next cursor: the read went on for max_pages (100,000 requests), every one the same
    records. The second page, equal to the first, stops it and names the parameter to check."""
    served = iter(range(10**6))
    agency.routes["/people"] = lambda query: (200, {}, {"items": [{"id": 1, "name": "张三"}, {"id": 2, "name": "李四"}],
                                                        "next": f"c{next(served)}"})
    connector = _connector(agency, {"path": "/people", "pagination": "cursor", "next_cursor_path": "next",
                                    "cursor_param": "pageToken"})
    with pytest.raises(ConfigError) as raised:
        _rows(connector)
    assert "ignores 'pageToken'; set the stream's cursor_param" in str(raised.value)
    assert len(agency.requests) == 2


# --- values that cannot be read exactly are quarantined, never a crash -------------------------------------------

def test_a_lone_surrogate_in_a_json_string_is_flagged_on_its_row(agency: Host) -> None:
    """JSON may escape half of a UTF-16 pair (\\ud83d without its \\ude00), as a system that cut an emoji in two
    writes it: no character, so no UTF-8 either; the read failed whole with UnicodeEncodeError (a traceback).
    Its row is flagged with the escape, the others are read, an emoji written whole is kept."""
    agency.routes["/people"] = _json(b'{"items": [{"id": 1, "name": "\\u5f20\\u4e09 \\ud83d\\ude00"},'
                                     b' {"id": 2, "name": "\\u674e\\ud83d"},'
                                     b' {"id": 3, "name": {"nick": "\\udead"}},'
                                     b' {"id": 4, "name": "\\u738b\\u4e94"}, ["\\udead"]]}')
    rows = _rows(_connector(agency, {"path": "/people", "pagination": "none"}))
    assert [r["id"] for r in rows] == [1, 2, 3, 4, None]
    assert rows[0]["name"] == "张三 😀" and rows[3]["name"] == "王五"
    assert rows[0][ROW_PROBLEM_COLUMN] is None and rows[3][ROW_PROBLEM_COLUMN] is None
    assert "\\ud83d" in rows[1][ROW_PROBLEM_COLUMN] and "lone surrogate" in rows[1][ROW_PROBLEM_COLUMN]
    assert rows[1]["name"] == "李\\ud83d"  # kept as the JSON wrote it for the quarantine, which shows it
    assert "\\udead" in rows[2][ROW_PROBLEM_COLUMN] and "\\udead" in rows[4][ROW_PROBLEM_COLUMN]


# --- charsets ------------------------------------------------------------------------------------------------------

def test_a_page_in_the_charset_it_declares_is_read_as_written(agency: Host) -> None:
    """Many Chinese government systems answer in GB18030 or GBK and say so (charset=GBK): the page was refused
    as "did not answer JSON". Read in the charset declared, four-byte GB18030 characters (𠀀, an emoji) too."""
    names = {1: "上海市徐汇区𠀀", 2: "漕河泾😀", 3: "张三"}
    page = json.dumps({"items": [{"id": i, "name": n} for i, n in names.items()]}, ensure_ascii=False)
    agency.routes["/gb18030"] = _json(page.encode("gb18030"), {"Content-Type": "application/json; charset=GB18030"})
    agency.routes["/gbk"] = _json(page.replace("𠀀", "").replace("😀", "").encode("gbk"),
                                  {"Content-Type": 'application/json;charset="gbk"'})
    agency.routes["/bom"] = _json(b"\xef\xbb\xbf" + page.encode())
    assert {r["id"]: r["name"] for r in _rows(_connector(agency, {"path": "/gb18030", "pagination": "none"}))} \
        == names
    assert [r["name"] for r in _rows(_connector(agency, {"path": "/gbk", "pagination": "none"}))] \
        == ["上海市徐汇区", "漕河泾", "张三"]
    assert [r["name"] for r in _rows(_connector(agency, {"path": "/bom", "pagination": "none"}))] == list(names.values())


def test_a_page_its_charset_misnames_is_read_as_the_utf8_it_is(agency: Host) -> None:
    """A gateway stamping charset=GBK on a system's UTF-8 answer: read as the UTF-8 it is (JSON's own encoding,
    RFC 8259), never decoded as GBK into 涓婃捣. A page in a charset Python does not know says which."""
    page = json.dumps({"items": [{"id": 1, "name": "上海市"}]}, ensure_ascii=False)
    agency.routes["/mislabelled"] = _json(page.encode(), {"Content-Type": "application/json; charset=GBK"})
    agency.routes["/unknown"] = _json(page.encode("gb18030"), {"Content-Type": "application/json; charset=x-gb-9999"})
    assert [r["name"] for r in _rows(_connector(agency, {"path": "/mislabelled", "pagination": "none"}))] == ["上海市"]
    with pytest.raises(ConfigError, match="charset 'x-gb-9999'"):
        _rows(_connector(agency, {"path": "/unknown", "pagination": "none"}))


def test_a_number_a_double_column_cannot_hold_is_flagged_not_rounded(agency: Host) -> None:
    """A column declared double took an 18-digit ID (JSON number or string) and published it rounded,
    123456789012345678 as 123456789012345680, silently; 1e-400 as 0. Such values are flagged with the fix;
    what a double reads back as written (0.1, 12.30, 2**60, the 17 digits a double prints) is published."""
    written = ['123456789012345678', '"123456789012345678"', '12345678901234567.5', '1e-400', '"1e-400"',
               '0.1', '"12.30"', '1152921504606846976', '0.10000000000000001', '-2.5e-3', '"7"']
    body = '{"items": [' + ", ".join(f'{{"id": {i}, "v": {v}}}' for i, v in enumerate(written)) + "]}"
    agency.routes["/measures"] = _json(body.encode())
    rows = _rows(_connector(agency, {"path": "/measures", "pagination": "none",
                                     "columns": {"id": "integer", "v": "double"}}))
    flagged = {r["id"]: r[ROW_PROBLEM_COLUMN] for r in rows if r[ROW_PROBLEM_COLUMN]}
    assert sorted(flagged) == [0, 1, 2, 3, 4]
    assert "declare the column as decimal" in flagged[0] and "123456789012345678" in flagged[1]
    assert {r["id"]: r["v"] for r in rows if not r[ROW_PROBLEM_COLUMN]} == {
        5: 0.1, 6: 12.3, 7: 2.0**60, 8: 0.1, 9: -0.0025, 10: 7.0}


# --- incremental reads over HTTP -----------------------------------------------------------------------------------

def test_a_text_cursor_is_sent_as_the_api_wrote_it(hub_home: Path, agency: Host) -> None:
    """The API writes its times as text, 2026-03-01 09:00:00, and filters updated_since by comparing text, as
    an SQL varchar column does. The hub sent the mark re-spelt as 2026-03-01T09:00:00, which sorts after every
    time of that day written with a space: a record changed at 09:30 was never read again, silently. Ties
    at the mark across pages and records out of order are read too."""
    from pipeline.sync import sync_resource

    records = [{"id": i, "name": f"第{i}号", "updated": f"2026-03-01 0{t}:00:00"}
               for i, t in [(1, 8), (2, 9), (3, 7), (4, 9), (5, 8)]]  # out of order; 09:00 on two pages

    def people(query: dict[str, str]) -> Answer:
        rows = [r for r in records if r["updated"] >= query.get("updated_since", "")]
        page, size = int(query["page"]), int(query["page_size"])
        return 200, {}, {"items": rows[(page - 1) * size:page * size]}

    agency.routes["/people"] = people
    config = {"base_url": agency.base_url, "auth": "bearer", "backoff_seconds": 0.01,
              "streams": {"people": {"path": "/people", "records_path": "items", "page_size": 2,
                                     "incremental_param": "updated_since",
                                     "columns": {"id": "integer", "name": "text", "updated": "text"}}}}
    hub = register_resource(kind="http", config=config, secret={"token": TOKEN}, table="people", cursor="updated")
    assert sync_resource(resource_code=hub.resource_code).rows_published == 5
    assert cursor_value(hub.resource_code) == "2026-03-01 09:00:00"

    records.append({"id": 6, "name": "第6号", "updated": "2026-03-01 09:30:00"})
    records[3]["name"] = "第4号（更正）"  # a late writer at the mark, on the second page
    agency.requests.clear()
    report = sync_resource(resource_code=hub.resource_code)
    by_id = {r["id"]: r for r in read_version(latest(hub.resource_code)).to_pylist()}
    assert sorted(by_id) == [1, 2, 3, 4, 5, 6] and by_id[4]["name"] == "第4号（更正）"
    assert report.mode == "incremental" and report.rows_read == 3  # both ties at the mark, and the new one
    assert {r["query"]["updated_since"] for r in agency.requests} == {"2026-03-01 09:00:00"}


def test_a_time_of_day_in_a_date_column_is_flagged_not_dropped(agency: Host) -> None:
    """A date column took 2026-03-01T15:30:00 and published 2026-03-01, the time dropped without a word (and
    anything after ten characters that read as a date: 2026-03-01 待核实). Midnight, written either way, is
    the day; anything else is flagged with the fix."""
    written = ['"2026-03-01T15:30:00"', '"2026-03-01 待核实"', '"2026-03-01T00:00:00+08:00"', '"2026-03-01 00:00:00"',
               '"2026-03-01"']
    body = '{"items": [' + ", ".join(f'{{"id": {i}, "v": {v}}}' for i, v in enumerate(written)) + "]}"
    agency.routes["/days"] = _json(body.encode())
    rows = _rows(_connector(agency, {"path": "/days", "pagination": "none",
                                     "columns": {"id": "integer", "v": "date"}}))
    flagged = {r["id"]: r[ROW_PROBLEM_COLUMN] for r in rows if r[ROW_PROBLEM_COLUMN]}
    assert sorted(flagged) == [0, 1] and "declare the column as timestamp" in flagged[0]
    assert {r["id"]: r["v"].isoformat() for r in rows if not r[ROW_PROBLEM_COLUMN]} == {
        2: "2026-03-01", 3: "2026-03-01", 4: "2026-03-01"}


# --- a server asking to wait ------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_server_asking_to_wait_an_hour_is_left_alone_until_the_next_run(agency: Host, form: str) -> None:
    """429 with Retry-After an hour away, in seconds or as an HTTP date (RFC 9110 allows both): the date was
    not understood, so the rate-limited server was asked again at once; the seconds held the worker a minute
    per retry, to be refused again. The read stops at the first answer, retriable, saying when to come back."""
    from email.utils import format_datetime

    from core import clock
    from core.errors import RetriableError

    later = "3600" if form == "seconds" else format_datetime(clock.now() + timedelta(hours=1), usegmt=True)
    agency.routes["/people"] = lambda query: (429, {"Retry-After": later}, {"error": "请求过于频繁"})
    with pytest.raises(RetriableError) as raised:
        _rows(_connector(agency, {"path": "/people", "pagination": "none"}, max_retries=3))
    assert len(agency.requests) == 1
    assert "Retry-After" in str(raised.value) and (form != "seconds" or "for 3600s" in str(raised.value))


def test_a_server_trickling_its_answer_is_cut_at_the_page_timeout(agency: Host) -> None:
    """A server sending a byte every tenth of a second never trips the read timeout (30 s between bytes), so a
    page of a few kilobytes held the worker for minutes, a large one for days. A page must arrive whole within
    page_timeout; past it the read stops, retriable, saying so."""
    body = json.dumps({"items": [{"id": i, "name": "名" * 10} for i in range(20)]}, ensure_ascii=False).encode()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for offset in range(len(body)):
                handler.wfile.write(body[offset:offset + 1])
                handler.wfile.flush()
                stop.wait(0.1)
                if stop.is_set():
                    return
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected
            return

    stop = threading.Event()
    agency.routes["/people"] = lambda query: trickle
    from core.errors import RetriableError

    try:
        with pytest.raises(RetriableError) as raised:
            _rows(_connector(agency, {"path": "/people", "pagination": "none"}, page_timeout=1, max_retries=0))
    finally:
        stop.set()
    assert "page_timeout" in str(raised.value) and len(agency.requests) == 1


def test_a_number_in_a_text_column_is_published_as_the_api_wrote_it(agency: Host) -> None:
    """A JSON number in a text column (or inside an object kept as JSON) was published in Python's spelling of
    its decimal, 1e400 as 1E+400 and 1.5e3 as 1.5E+3: the value the API sent, but not as it sent it."""
    written = ["1e400", "1.5e3", "0.10", "-2.50E-7", "123456789012345678901234567890"]
    body = '{"items": [' + ", ".join(f'{{"id": {i}, "name": {v}}}' for i, v in enumerate(written)) \
        + ', {"id": 9, "name": {"lng": 121.4737e0, "n": [1e2, 0.1]}}]}'
    agency.routes["/codes"] = _json(body.encode())
    rows = _rows(_connector(agency, {"path": "/codes", "pagination": "none"}))
    assert [r["name"] for r in rows] == [*written, '{"lng": 121.4737e0, "n": [1e2, 0.1]}']


def test_an_answer_cut_off_mid_json_is_retried_not_called_a_configuration_error(agency: Host) -> None:
    """A server (or a proxy) closing the connection mid-answer, without announcing the length, leaves JSON that
    ends mid-record: it was a configuration error ("did not answer JSON", never retried) and the run failed
    until someone looked. It is retried, and said as cut off when it keeps happening."""
    whole = json.dumps({"items": [{"id": i, "name": f"第{i}号"} for i in range(50)]}, ensure_ascii=False).encode()
    cuts = iter([len(whole) // 2])

    def cut_once(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # no Content-Length: the body ends where the connection closes
        handler.wfile.write(whole[:next(cuts, len(whole))])

    agency.routes["/people"] = lambda query: cut_once
    assert [r["id"] for r in _rows(_connector(agency, {"path": "/people", "pagination": "none"}))] == list(range(50))
    assert len(agency.requests) == 2

    from core.errors import RetriableError

    cuts = iter([whole.index("第".encode()) + 1] * 3)  # within a character's three bytes
    with pytest.raises(RetriableError, match="cut off"):
        _rows(_connector(agency, {"path": "/people", "pagination": "none"}, max_retries=2))


def test_a_page_larger_than_memory_allows_is_streamed_in_batches_with_exact_values(agency: Host) -> None:
    """A whole page was held as bytes and parsed into Python values (about eight times its size), so a page past
    16 MiB was refused and a smaller one took the worker's memory. The page is kept on disk as it arrives and its
    records are parsed one at a time into batches: the Python memory a read takes stays far below the page."""
    import tracemalloc

    count, street = 45_000, "上海市浦东新区张江高科技园区碧波路690号" * 6
    items = ", ".join(f'{{"id": {i}, "name": "上海市第{i}号科技有限公司", "capital": "{i}.05", "amount": {i}.10, '
                      f'"address": "{street}{i}"}}' for i in range(count))  # amount: a JSON number
    body = f'{{"meta": {{"total": {count}, "note": "全量"}}, "data": {{"items": [{items}], "next": null}}}}'.encode()
    assert len(body) > 16 << 20
    agency.routes["/firms"] = _json(body)
    agency.routes["/one"] = _json(b'{"data": {"items": [{"id": 1, "capital": "1.05"}]}}')
    stream = {"pagination": "none", "records_path": "data.items", "columns": {
        "id": "integer", "name": "text", "capital": "decimal(20,2)", "amount": "text", "address": "text"}}
    spec = StreamSpec(table="s", primary_key=("id",), batch_rows=5_000)
    assert _rows(_connector(agency, {"path": "/one", **stream}))[0]["id"] == 1  # what a read imports, imported
    connector = _connector(agency, {"path": "/firms", **stream})

    tracemalloc.start()
    try:
        sizes, ids, firsts, peak = [], [], [], 0
        for batch in connector.read(spec, ReadState()):
            sizes.append(batch.num_rows)
            ids.extend(batch.column("id").to_pylist())
            firsts.extend(batch.slice(0, 1).to_pylist())
            peak = max(peak, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert [size for size in sizes if size] == [5_000] * 9 and ids == list(range(count))
    assert firsts[3] == {"id": 15_000, "name": "上海市第15000号科技有限公司", "capital": Decimal("15000.05"),
                         "amount": "15000.10", "address": f"{street}15000"}
    assert peak < len(body) // 2, f"{peak:,} bytes of Python objects for a page of {len(body):,}"
