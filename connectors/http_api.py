"""HTTP JSON API source (requests): records from paged or cursor-paginated endpoints, one endpoint per stream.

    {"base_url": "https://api.example.gov.cn/v1", "auth": "bearer",
     "streams": {"licences": {"path": "/licences", "records_path": "data.items", "pagination": "cursor",
                              "next_cursor_path": "data.next", "cursor_param": "cursor",
                              "incremental_param": "updated_since", "columns": {"id": "integer", ...}}}}

Keys at the top of the config are defaults for every stream. Pagination ``page`` sends ``page_param`` (from
``first_page``) and ``size_param`` = ``page_size`` and stops at an empty page, a page shorter than the longest
before (a server may cap the size asked for) or a repeat of the previous page; ``cursor`` sends the value
found at ``next_cursor_path`` (a full URL is followed as it is) until it is missing or empty; ``none`` reads one
response. With ``--cursor FIELD`` and ``incremental_param``, the last published value of FIELD is sent as that
query parameter. Numbers are parsed as exact decimals. 5xx, 429, timeouts and dropped connections are retried
``max_retries`` times with exponential backoff, then raise RetriableError; 401/403 and other 4xx are ConfigErrors.
The token (bearer / header auth) or password (basic auth) lives in the encrypted secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import requests
from pydantic import field_validator, model_validator

from connectors.arrowconv import json_text
from connectors.base import ColumnInfo, Connector, ReadState, StreamSpec, TableInfo
from connectors.config import SourceConfig
from connectors.credentials import overlay
from connectors.tabular import (
    BatchBuilder,
    Column,
    Normalizer,
    check_parsing,
    declared_columns,
    flag,
    infer_type,
    zone,
)
from core.errors import ConfigError, RetriableError

STREAM_KEYS = ("path", "records_path", "params", "pagination", "page_param", "size_param", "page_size", "first_page",
               "cursor_param", "next_cursor_path", "incremental_param", "columns", "primary_key", "timezone",
               "max_pages", "null_values")
PAGINATIONS = ("page", "cursor", "none")
AUTHS = ("none", "bearer", "basic", "header")
RETRY_STATUSES = {408, 425, 429}
MAX_BACKOFF = 60.0
# A page is read into memory to parse it: a server that answers with gigabytes (a bug, a wrong page_size, a hostile
# peer) would take the worker's memory with it. Beyond this many bytes the read stops with a clear error.
MAX_PAGE_BYTES = 64 << 20


MISSING = object()


def dig(document: Any, path: str | None, default: Any = None) -> Any:
    """The value at a dotted path (``data.items``); the document itself for an empty path; default if absent."""
    for part in (path or "").split("."):
        if not part:
            continue
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return default
    return document


class HTTPConfig(SourceConfig):
    required = ("base_url",)
    # An Airflow Connection supplies credentials only (login, password, extra "token"); base_url stays in the config.
    airflow_fields: ClassVar[dict[str, str]] = {"username": "login"}

    base_url: str | None = None
    auth: str = "none"  # one of AUTHS
    username: str | None = None  # basic auth (the password goes in the secret)
    streams: dict[str, dict[str, Any] | None] | None = None  # per stream: STREAM_KEYS
    max_page_bytes: int | None = None  # default MAX_PAGE_BYTES

    @field_validator("base_url")
    @classmethod
    def _plain_http(cls, base_url: str | None) -> str | None:
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{base_url!r} must start with http:// or https://")
        if base_url and "@" in base_url.split("/")[2]:
            raise ValueError("must not carry a user or password; put the password or token in the secret")
        return base_url

    @field_validator("auth")
    @classmethod
    def _known_auth(cls, auth: str) -> str:
        if auth not in AUTHS:
            raise ValueError(f"{auth!r} must be one of {', '.join(AUTHS)}")
        return auth

    @model_validator(mode="after")
    def _streams(self) -> HTTPConfig:
        config = {**(self.model_extra or {}), **self.model_dump(exclude_unset=True)}
        if self.auth == "basic" and not self.username and not self.airflow_conn_id:
            raise ConfigError("basic auth needs username in the configuration (the password goes in the secret)")
        streams = self.streams or {}
        for name, settings in [("(defaults)", config), *streams.items()]:
            settings = settings or {}
            if name != "(defaults)" and (unknown := sorted(set(settings) - set(STREAM_KEYS))):
                raise ConfigError(f"stream {name!r}: unknown setting(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(STREAM_KEYS)}")
            if settings.get("pagination", "page") not in PAGINATIONS:
                raise ConfigError(f"stream {name!r}: pagination must be one of {', '.join(PAGINATIONS)}")
            declared_columns(settings.get("columns"))
            check_parsing(name, settings)
            zone(settings.get("timezone"))
        return self


class HTTPConnector(Connector):
    kind = "http"
    title = "HTTP JSON 接口"
    config_model = HTTPConfig
    secret_fields = ("token", "password")

    def describe(self) -> str:
        return str(self.config["base_url"])

    # --- requests ---------------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        config, secret = overlay(self.config, self.secret, source=self.name, mapping=self.config_model.airflow_fields)
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": "govshare"})
        session.headers.update({str(k): str(v) for k, v in (config.get("headers") or {}).items()})
        auth = config.get("auth") or ("bearer" if secret.get("token") else "none")
        if auth in ("bearer", "header") and not secret.get("token"):
            raise ConfigError(self.fail(f"{auth} auth needs a token in the source's secret (--token-env)"))
        if auth == "bearer":
            session.headers["Authorization"] = f"Bearer {secret['token']}"
        elif auth == "header":
            session.headers[str(config.get("auth_header") or "X-API-Key")] = str(secret["token"])
        elif auth == "basic":
            # UTF-8 (RFC 7617), not requests' default latin-1, so a Chinese password works
            session.auth = (str(config.get("username")).encode(), str(secret.get("password") or "").encode())
        session.verify = config.get("ca_bundle") or flag(config.get("verify_tls"), default=True)
        return session

    def _get(self, session: requests.Session, url: str, params: dict[str, Any] | None, *, retries: int) -> Any:
        """The JSON document at url, retrying transient failures with exponential backoff."""
        timeout = (float(self.config.get("connect_timeout", 10)), float(self.config.get("timeout", 30)))
        backoff = float(self.config.get("backoff_seconds", 1.0))
        problem = ""
        for attempt in range(retries + 1):
            wait = min(backoff * 2 ** attempt, MAX_BACKOFF)
            try:
                response = session.get(url, params=params, timeout=timeout, stream=True)
                body = self._body(response, url) if response.status_code < 300 else b""
            except requests.exceptions.SSLError as exc:
                raise ConfigError(self.fail(f"TLS verification of {url} failed: {exc.__class__.__name__}")) from None
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema) as exc:
                raise ConfigError(self.fail(f"invalid URL {url}: {exc}")) from None
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
                    wait = max(wait, min(_retry_after(response), MAX_BACKOFF))
                    response.close()  # streamed: its connection goes back to the pool unread
                elif status in (401, 403):
                    raise ConfigError(self.fail(f"认证被拒绝 / HTTP {status} from {url}: the token or password is "
                                                "wrong or lacks access"))
                elif status >= 400:
                    text = response.raw.read(4096, decode_content=True).decode("utf-8", "replace")
                    raise ConfigError(self.fail(f"HTTP {status} from {url}: {_excerpt(text)}"))
                else:
                    try:
                        return json.loads(body, parse_float=Decimal)
                    except ValueError:
                        text = body[:4096].decode("utf-8", "replace")
                        raise ConfigError(self.fail(f"{url} did not answer JSON: {_excerpt(text)}")) from None
                    finally:
                        response.close()
            if attempt < retries:
                time.sleep(wait)
        attempts = f" after {retries + 1} attempts" if retries else ""
        raise RetriableError(self.fail(f"{problem}{attempts}"))

    def _body(self, response: requests.Response, url: str) -> bytes:
        """The page's bytes, at most ``max_page_bytes`` (default MAX_PAGE_BYTES) of them."""
        limit = int(self.config.get("max_page_bytes") or MAX_PAGE_BYTES)
        declared = response.headers.get("Content-Length", "")
        too_big = ConfigError(self.fail(f"页面过大 / {url} answered a page larger than {limit:,} bytes; lower the "
                                        "stream's page_size, or raise the source's max_page_bytes"))
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise too_big
        chunks, total = [], 0
        for chunk in response.iter_content(chunk_size=1 << 16):
            total += len(chunk)
            if total > limit:
                response.close()
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    # --- streams ---------------------------------------------------------------------------------------------

    def settings(self, stream: str) -> dict[str, Any]:
        streams = self.config.get("streams") or {}
        if streams and stream not in streams and "path" not in self.config:
            raise ConfigError(self.fail(f"stream {stream!r} is not declared; declared streams: {', '.join(streams)}"))
        merged = {k: v for k, v in self.config.items() if k in STREAM_KEYS}
        merged.update(streams.get(stream) or {})
        merged.setdefault("path", f"/{stream}")
        return merged

    def _pages(self, session: requests.Session, settings: dict[str, Any], extra: dict[str, Any], *,
               retries: int, limit: int | None = None) -> Iterator[list[Any]]:
        """The records of each page, in order."""
        url = str(self.config["base_url"]).rstrip("/") + "/" + str(settings["path"]).lstrip("/")
        params = {**(settings.get("params") or {}), **extra}
        pagination = settings.get("pagination", "page")
        size = int(settings.get("page_size", 100))
        page = int(settings.get("first_page", 1))
        if pagination == "page":
            params[settings.get("size_param", "page_size")] = size
        seen_cursors: set[str] = set()
        largest, previous = 0, None
        for number in range(int(limit or settings.get("max_pages", 100_000))):
            request_params = dict(params)
            if pagination == "page":
                request_params[settings.get("page_param", "page")] = page + number
            document = self._get(session, url, request_params, retries=retries)
            records = dig(document, settings.get("records_path"), MISSING)
            if records is MISSING:  # a misspelt path would otherwise read as an empty source
                keys = ", ".join(document) if isinstance(document, dict) else type(document).__name__
                raise ConfigError(self.fail(f"records_path {settings.get('records_path')!r} is not in the answer "
                                            f"of {url} (its top-level keys: {keys})"))
            if records is None:
                records = []
            if not isinstance(records, list):
                raise ConfigError(self.fail(f"records_path {settings.get('records_path')!r} of {url} is not a list"))
            if pagination == "page":
                # A server may cap the page size below page_size (20 of 100 asked): a page shorter than asked
                # is not the last, one shorter than the longest seen is; and a server that answers a page past
                # the end with the last page again repeats it. Stopping at the first short page read only
                # the first page of a capped API, silently (and a full read took the rest for deleted).
                if records == previous and records:
                    if number == 1 and len(records) == size:  # a full first page again: the parameter is ignored
                        raise ConfigError(self.fail(
                            f"第2页与第1页相同 / page 2 of {url} answered the same {size} records as page 1: the "
                            f"server ignores {settings.get('page_param', 'page')!r}; set the stream's page_param "
                            "(and size_param) to the names the API documents"))
                    return
                yield records
                if not records:
                    return
                if len(records) < largest:
                    return
                largest, previous = max(largest, len(records)), records
                continue
            yield records
            if pagination == "none":
                return
            if pagination == "cursor":
                following = dig(document, settings.get("next_cursor_path", "next"))
                if following in (None, "") or not records:
                    return
                if str(following) in seen_cursors:
                    raise ConfigError(self.fail(f"next cursor {following!r} repeats; the pagination would loop"))
                seen_cursors.add(str(following))
                if str(following).startswith(("http://", "https://")):
                    url, params = str(following), {}
                else:
                    params[settings.get("cursor_param", "cursor")] = following
        raise ConfigError(self.fail(f"more than max_pages={settings.get('max_pages', 100_000)} pages"))

    def _columns(self, session: requests.Session, settings: dict[str, Any], *, retries: int) -> tuple[list[Column], bool]:
        """Declared columns, or inferred from the first page (read without the incremental filter)."""
        declared = declared_columns(settings.get("columns"))
        if declared:
            return declared, True
        records = next(self._pages(session, settings, {}, retries=retries, limit=1), [])
        names: list[str] = []
        for record in records:
            for key in record if isinstance(record, dict) else ():
                if key not in names:
                    names.append(key)
        if not names:
            raise ConfigError(self.fail(f"{settings['path']} returned no records to infer columns from; declare them"))
        columns = [Column(n, infer_type(r.get(n) if isinstance(r, dict) else None for r in records), n) for n in names]
        return columns, False

    # --- the protocol ------------------------------------------------------------------------------------------

    def check(self, stream: StreamSpec | None = None) -> None:
        streams = list(self.config.get("streams") or {})
        name = stream.label if stream else (streams[0] if streams else None)
        session = self._session()
        with session:
            if name is None:
                self._get(session, str(self.config["base_url"]), None, retries=0)
                return
            settings = self.settings(name)
            self._columns(session, settings, retries=0)
            next(self._pages(session, settings, {}, retries=0, limit=1))

    def discover(self) -> list[TableInfo]:
        tables = []
        with self._session() as session:
            for name in self.config.get("streams") or {}:
                settings = self.settings(name)
                columns, _ = self._columns(session, settings, retries=self._retries())
                tables.append(TableInfo(name=name, primary_key=list(settings.get("primary_key") or []),
                                        columns=[ColumnInfo(c.name, f"{c.header}: {c.type}", c.type) for c in columns]))
        return tables

    def _retries(self) -> int:
        return int(self.config.get("max_retries", 3))

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        settings = self.settings(stream.label)
        extra: dict[str, Any] = {}
        if stream.cursor_column and state.cursor_value is not None and settings.get("incremental_param"):
            # The API filters; it is expected to return records at or after the value (ties merged by key).
            extra[settings["incremental_param"]] = _api_text(state.cursor_value)
        with self._session() as session:
            columns, declared = self._columns(session, settings, retries=self._retries())
            known = {c.header for c in columns}
            normalizer = Normalizer(columns, null_values=settings.get("null_values") or (),
                                    timezone=settings.get("timezone"))
            builder = BatchBuilder(columns, batch_rows=stream.batch_rows, normalizer=normalizer)
            for page, records in enumerate(self._pages(session, settings, extra, retries=self._retries()), start=1):
                for index, record in enumerate(records, start=1):
                    row, problem = self._row(record, columns, known, declared, normalizer)
                    batch = builder.add(row, place=f"{settings['path']} page {page} record {index}", problem=problem)
                    if batch is not None:
                        yield batch
            last = builder.flush(always=True)
            if last is not None:
                yield last

    @staticmethod
    def _row(record: Any, columns: list[Column], known: set[str], declared: bool,
             normalizer: Normalizer) -> tuple[tuple, str | None]:
        if not isinstance(record, dict):
            text = _excerpt(json.dumps(record, ensure_ascii=False, default=str))
            return (None,) * len(columns), f"记录不是对象 / record is not a JSON object: {text}"
        values = []
        for column in columns:
            value = record[column.header] if column.header in record else dig(record, column.header)
            if isinstance(value, (dict, list, bool)) and pa.types.is_string(column.type):
                value = json_text(value)
            values.append(value)
        row, problem = normalizer.text(values)  # a JSON string may hold an escaped lone surrogate
        problems = [problem] if problem else []
        if not declared and (unknown := [k for k in record if k not in known]):
            text = _excerpt(json.dumps({k: record[k] for k in unknown}, ensure_ascii=False, default=str))
            problems.append(f"字段未声明 / field(s) {', '.join(unknown)} not in the columns inferred from the first "
                            f"page (declare the columns): {text}")
        return row, "; ".join(problems) or None


def _api_text(cursor: str) -> str:
    """A saved time cursor in ISO 8601 with a T (2026-03-01T08:00:00+00:00), the spelling APIs expect."""
    if ":" in cursor:
        try:
            return datetime.fromisoformat(cursor).isoformat()
        except ValueError:
            pass
    return cursor


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
