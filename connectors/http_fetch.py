"""One JSON document from an HTTP API (requests): the session with the source's authentication and TLS
settings, and a GET that retries what may pass and refuses what will not.

5xx, 408, 425, 429, timeouts, dropped connections and answers cut off mid-JSON are retried ``max_retries`` times with exponential backoff
(a server's Retry-After, seconds or a date, is honoured up to MAX_BACKOFF; one asking longer ends the read at
once, retriable), then raise RetriableError; 401/403 and other 4xx, TLS
and URL errors, an answer that is not JSON and a page beyond ``max_page_bytes`` are ConfigErrors; a page
that has not arrived whole within ``page_timeout`` is a timeout like any other. Numbers are
parsed as exact decimals that keep their spelling (JSONNumber). A page is UTF-8, or when it is not, in the charset
its Content-Type declares (GBK). A page is spooled, not held: its records are parsed from it one at a time
(connectors/http_stream.py).

Apart from the HTTP source (connectors/http_api.py), which turns pages into rows, and the pagination
(connectors/http_pages.py), because this is the transport alone: what one request costs and how it fails.
Each function takes the source's config (timeouts, backoff, page limit) and ``fail`` (Connector.fail) to name
the source in its errors.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from email.utils import parsedate_to_datetime
from math import ceil
from typing import Any

import requests
import urllib3

from connectors.http_stream import Page, Spool, Truncated, page_encoding
from connectors.tabular import flag
from core import clock
from core.errors import ConfigError, RetriableError

RETRY_STATUSES = {408, 425, 429}
MAX_BACKOFF = 60.0
# A page is kept on disk as it arrives and its records parsed one at a time (connectors/http_stream.py), so its
# size no longer bounds the worker's memory; a server answering with gigabytes (a bug, a wrong page_size, a
# hostile peer) would still fill the disk. Beyond this many bytes the read stops with a clear error.
MAX_PAGE_BYTES = 1 << 30
SPOOL_IN_MEMORY = 1 << 20  # a page up to this size stays in memory
PAGE_TIMEOUT = 600.0  # seconds a whole page may take (64 MiB at about 1 Mbit/s, four full pages); ``page_timeout`` changes it


class _Session(requests.Session):
    """A session whose credentials stay on the host they were given for: requests drops Authorization on a
    redirect to another host, but not the header of ``header`` auth (X-API-Key), which went with it."""

    secret_headers: tuple[str, ...] = ()

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in self.secret_headers:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


class JSONNumber(Decimal):
    """A JSON number with a fraction or an exponent: its exact decimal, written (str) as the API wrote it, so a
    text column or an object kept as JSON publishes 1e400 and 1.5e3, not Python's 1E+400 and 1.5E+3.
    Arithmetic gives plain decimals; whole numbers stay ints (exact, and written the one way)."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> JSONNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text


def open_session(config: dict[str, Any], secret: dict[str, Any], *, fail: Callable[[str], str]) -> requests.Session:
    """A session sending the source's headers and credentials (config and secret as credentials.overlay gives
    them: an Airflow connection's filled in)."""
    session = _Session()
    session.headers.update({"Accept": "application/json", "User-Agent": "govshare"})
    session.headers.update({str(k): str(v) for k, v in (config.get("headers") or {}).items()})
    auth = config.get("auth") or ("bearer" if secret.get("token") else "none")
    if auth in ("bearer", "header") and not secret.get("token"):
        raise ConfigError(fail(f"{auth} auth needs a token in the source's secret (--token-env)"))
    if auth == "bearer":
        session.headers["Authorization"] = f"Bearer {secret['token']}"
    elif auth == "header":
        name = str(config.get("auth_header") or "X-API-Key")
        session.headers[name] = str(secret["token"])
        session.secret_headers = (name,)
    elif auth == "basic":
        # UTF-8 (RFC 7617), not requests' default latin-1, so a Chinese password works
        session.auth = (str(config.get("username")).encode(), str(secret.get("password") or "").encode())
    session.verify = config.get("ca_bundle") or flag(config.get("verify_tls"), default=True)
    return session


def get_json(session: requests.Session, url: str, params: dict[str, Any] | None, *, retries: int,
             config: dict[str, Any], fail: Callable[[str], str]) -> Any:
    """The JSON document at url, whole, retrying transient failures with exponential backoff."""
    def parse(spool: Spool, content_type: str) -> Any:
        try:
            return json.loads(_text(spool.read_all(), content_type, url, fail=fail), parse_float=JSONNumber)
        finally:
            spool.close()
    return _fetch(session, url, params, retries=retries, config=config, fail=fail, parse=parse)


def get_page(session: requests.Session, url: str, params: dict[str, Any] | None, *, retries: int,
             config: dict[str, Any], fail: Callable[[str], str], records_path: str | None,
             cursor_path: str | None) -> Page:
    """The page at url, checked whole and its records counted (connectors.http_stream.Page), retrying
    transient failures (a page cut off mid-JSON among them) as get_json does."""
    def parse(spool: Spool, content_type: str) -> Page:
        declared = charset(content_type)
        encoding = page_encoding(spool, declared, url=url, fail=fail)
        try:
            return Page(spool, encoding, records_path=records_path, cursor_path=cursor_path,
                        decoder=json.JSONDecoder(parse_float=JSONNumber))
        except UnicodeDecodeError as exc:
            spool.close()
            if encoding.startswith("utf") or exc.reason == "unexpected end of data":
                raise
            raise ConfigError(fail(f"{url} declares charset {declared!r} but its bytes are not text in it "
                                   f"({exc.reason}): {excerpt(spool.head.decode(encoding, 'replace'))}")) from None
        except BaseException:
            spool.close()
            raise
    return _fetch(session, url, params, retries=retries, config=config, fail=fail, parse=parse)


def _fetch(session: requests.Session, url: str, params: dict[str, Any] | None, *, retries: int,
           config: dict[str, Any], fail: Callable[[str], str], parse: Callable[[Spool, str], Any]) -> Any:
    """parse(the answer's body, its Content-Type), retrying transient failures with exponential backoff."""
    timeout = (float(config.get("connect_timeout", 10)), float(config.get("timeout", 30)))
    backoff = float(config.get("backoff_seconds", 1.0))
    problem = ""
    for attempt in range(retries + 1):
        wait = min(backoff * 2 ** attempt, MAX_BACKOFF)
        try:
            response = session.get(url, params=params, timeout=timeout, stream=True)
            body = _body(response, url, config=config, fail=fail) if response.status_code < 300 else None
        except requests.exceptions.SSLError as exc:
            raise ConfigError(fail(f"TLS verification of {url} failed: {exc.__class__.__name__}")) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise ConfigError(fail(f"invalid URL {url}: {exc}")) from None
        except _TooSlow as exc:
            problem = str(exc)
        except requests.Timeout:
            problem = f"超时 / no answer from {url} within {timeout[1]:g}s"
        except requests.ConnectionError as exc:
            problem = f"无法连接 / cannot connect to {url}: {_root_cause(exc)}"
        except requests.RequestException as exc:  # e.g. a body cut off mid-transfer
            problem = f"传输中断 / transfer from {url} failed: {_root_cause(exc)}"
        else:
            status = response.status_code
            if status >= 500 or status in RETRY_STATUSES:
                problem = f"HTTP {status} from {url}"
                asked = _retry_after(response)
                response.close()  # streamed: its connection goes back to the pool unread
                if asked > MAX_BACKOFF:  # holding the worker that long, to be refused again, helps nobody
                    raise RetriableError(fail(f"{problem}: 服务器要求 {ceil(asked)} 秒后再试 / the server asks to be left "
                                              f"alone for {ceil(asked)}s (Retry-After); the next run will read it"))
                wait = max(wait, asked)
            elif status in (401, 403):
                raise ConfigError(fail(f"认证被拒绝 / HTTP {status} from {url}: the token or password is "
                                       "wrong or lacks access"))
            elif status >= 400:
                text = response.raw.read(4096, decode_content=True).decode("utf-8", "replace")
                raise ConfigError(fail(f"HTTP {status} from {url}: {excerpt(text)}"))
            else:
                try:
                    return parse(body, response.headers.get("Content-Type", ""))
                except ValueError as exc:
                    if not _cut_off(exc):
                        text = body.head.decode("utf-8", "replace")
                        raise ConfigError(fail(f"{url} did not answer JSON: {excerpt(text)}")) from None
                    # a connection closed mid-answer, its length unannounced: transient, like a reset
                    problem = f"传输中断 / the answer from {url} was cut off mid-JSON after {body.size:,} bytes"
                finally:
                    response.close()
        if attempt < retries:
            time.sleep(wait)
    attempts = f" after {retries + 1} attempts" if retries else ""
    raise RetriableError(fail(f"{problem}{attempts}"))


def _body(response: requests.Response, url: str, *, config: dict[str, Any], fail: Callable[[str], str]) -> Spool:
    """The page's bytes, spooled (in memory up to SPOOL_IN_MEMORY, then on disk), at most ``max_page_bytes``
    (default MAX_PAGE_BYTES) of them."""
    limit = int(config.get("max_page_bytes") or MAX_PAGE_BYTES)
    declared = response.headers.get("Content-Length", "")
    too_big = ConfigError(fail(f"页面过大 / {url} answered a page larger than {limit:,} bytes; lower the "
                               "stream's page_size, or raise the source's max_page_bytes"))
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise too_big
    # The read timeout bounds each wait for a byte, not the page: a server trickling a byte at a time held the
    # worker for as long as it liked. read1 returns what has arrived, so the page's own deadline is checked.
    deadline = time.monotonic() + float(config.get("page_timeout", PAGE_TIMEOUT))
    spool = Spool(tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="govshare-page-"))
    try:
        while chunk := _read1(response):
            if spool.size + len(chunk) > limit:
                response.close()
                raise too_big
            if time.monotonic() > deadline:
                response.close()
                raise _TooSlow(f"超时 / {url} did not send its page within page_timeout="
                               f"{config.get('page_timeout', PAGE_TIMEOUT)}s ({spool.size:,} bytes came)")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.close_writing()
    return spool


class _TooSlow(requests.Timeout):
    """A page that did not arrive whole within page_timeout."""


def _read1(response: requests.Response) -> bytes:
    """What has arrived of the body (at most 64 KiB), decompressed; urllib3's errors as requests' (as
    iter_content gives them), which get_json sorts into retriable and not."""
    try:
        return response.raw.read1(1 << 16, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(str(exc)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # cut off, reset, or shorter than announced
        raise requests.exceptions.ChunkedEncodingError(exc) from exc


def charset(content_type: str) -> str | None:
    """The charset a Content-Type declares (``application/json; charset="GBK"``), lower case; None if none."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip("\"'"):
            return value.strip().strip("\"'").lower()
    return None


def _text(body: bytes, content_type: str, url: str, *, fail: Callable[[str], str]) -> str | bytes:
    """The page as json.loads takes it: UTF-8 (or UTF-16/32, which json.loads tells by the bytes) as it is;
    another charset the server declares (GB18030, GBK: many Chinese government systems answer in it) decoded.

    UTF-8 is JSON's own encoding (RFC 8259), so a page that reads as UTF-8 is UTF-8 whatever the header says:
    a gateway stamping charset=GBK on a UTF-8 answer would otherwise publish 上海 as 涓婃捣 (and a servlet
    container's default ISO-8859-1 label é as Ã©). Under a GB label, UTF-8 needs a character of three bytes
    or more (CJK among them): GBK text forms only two-byte ones by chance, for a character or two."""
    declared = charset(content_type)
    if declared is None or declared.replace("_", "-").startswith(("utf-8", "utf8", "utf-16", "utf-32")):
        return body
    national = declared in ("gbk", "gb2312", "gb18030", "cp936", "x-gbk")
    try:
        text = body.decode("utf-8")
        if not national or text.isascii() or any(ord(ch) >= 0x800 for ch in text):
            return body
    except UnicodeDecodeError:
        pass
    codec = "gb18030" if national else declared  # GB18030 holds GBK and GB2312
    try:
        return body.decode(codec)  # strict: a byte that is not text in it is no page to publish
    except LookupError:
        raise ConfigError(fail(f"{url} answered in charset {declared!r}, which is unknown here; ask the provider "
                               "for UTF-8 (JSON's own encoding) or GB18030")) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(fail(f"{url} declares charset {declared!r} but byte {exc.start} is not text in it: "
                               f"{body[max(0, exc.start - 20):exc.start + 20]!r}")) from None


def _cut_off(exc: ValueError) -> bool:
    """JSON that ends before its document does (an open string, or nothing wrong but the end, maybe within a
    character's bytes): cut off."""
    if isinstance(exc, Truncated):
        return True
    if isinstance(exc, UnicodeDecodeError):
        return exc.reason == "unexpected end of data"
    if not isinstance(exc, json.JSONDecodeError):
        return False
    return exc.msg.startswith("Unterminated string") or exc.pos >= len(exc.doc.rstrip())


def _retry_after(response: requests.Response) -> float:
    """The seconds a server asks to be left alone: Retry-After in seconds, or as an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(float(value or 0), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - clock.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):  # neither form: the backoff alone
        return 0.0


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
