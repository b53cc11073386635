"""HTTP JSON API source (requests): records from paged or cursor-paginated endpoints, one endpoint per stream.

    {"base_url": "https://api.example.gov.cn/v1", "auth": "bearer",
     "streams": {"licences": {"path": "/licences", "records_path": "data.items", "pagination": "cursor",
                              "next_cursor_path": "data.next", "cursor_param": "cursor",
                              "incremental_param": "updated_since", "columns": {"id": "integer", ...}}}}

Keys at the top of the config are defaults for every stream. Pagination ``page`` sends ``page_param`` (from
``first_page``) and ``size_param`` = ``page_size`` and stops at an empty page, a page shorter than the longest
before (a server may cap the size asked for) or a repeat of the previous page; ``cursor`` sends the value
found at ``next_cursor_path`` (a full URL is followed as it is, on base_url's host only) until it is missing or
empty or a page repeats the previous one (at page 2 an error: the cursor parameter is ignored); ``none``
reads one response. With ``--cursor FIELD`` and ``incremental_param``, the last published value of FIELD is sent as that
query parameter. Numbers are parsed as exact decimals. 5xx, 429, timeouts and dropped connections are retried
``max_retries`` times with exponential backoff, then raise RetriableError; 401/403 and other 4xx are ConfigErrors.
The token (bearer / header auth) or password (basic auth) lives in the encrypted secret.

Parts beside it: the transport, one JSON document per request with its retries and limits
(connectors/http_fetch.py), and a stream's settings and pagination (connectors/http_pages.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import requests
from pydantic import field_validator, model_validator

from connectors.arrowconv import json_text
from connectors.base import ColumnInfo, Connector, ReadState, StreamSpec, TableInfo
from connectors.config import SourceConfig
from connectors.credentials import overlay
from connectors.http_fetch import excerpt, get_json, get_page, open_session
from connectors.http_pages import PAGINATIONS, STREAM_KEYS, pages, stream_settings
from connectors.http_stream import Page, dig
from connectors.inference import Inference
from connectors.tabular import (
    BatchBuilder,
    Column,
    Normalizer,
    check_parsing,
    declared_columns,
    zone,
)
from core.errors import ConfigError

AUTHS = ("none", "bearer", "basic", "header")


class HTTPConfig(SourceConfig):
    required = ("base_url",)
    # An Airflow Connection supplies credentials only (login, password, extra "token"); base_url stays in the config.
    airflow_fields: ClassVar[dict[str, str]] = {"username": "login"}

    base_url: str | None = None
    auth: str = "none"  # one of AUTHS
    username: str | None = None  # basic auth (the password goes in the secret)
    streams: dict[str, dict[str, Any] | None] | None = None  # per stream: STREAM_KEYS
    max_page_bytes: int | None = None  # default connectors.http_fetch.MAX_PAGE_BYTES

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
        return open_session(config, secret, fail=self.fail)

    # --- streams ---------------------------------------------------------------------------------------------

    def settings(self, stream: str) -> dict[str, Any]:
        return stream_settings(self.config, stream, fail=self.fail)

    def _pages(self, session: requests.Session, settings: dict[str, Any], extra: dict[str, Any], *,
               retries: int, limit: int | None = None) -> Iterator[Page]:
        """Each page, in order (connectors.http_pages), each fetched with the retries given; its records are
        iterated from disk (connectors.http_stream)."""
        cursor_path = settings.get("next_cursor_path", "next") if settings.get("pagination") == "cursor" else None

        def get(url: str, params: dict[str, Any]) -> Page:
            return get_page(session, url, params, retries=retries, config=self.config, fail=self.fail,
                            records_path=settings.get("records_path"), cursor_path=cursor_path)
        yield from pages(get, settings, extra, base_url=str(self.config["base_url"]), fail=self.fail, limit=limit)

    def _columns(self, session: requests.Session, settings: dict[str, Any], *, retries: int) -> tuple[list[Column], bool]:
        """Declared columns, or inferred from the first page (read without the incremental filter), one record
        at a time."""
        declared = declared_columns(settings.get("columns"))
        if declared:
            return declared, True
        samples: dict[str, Inference] = {}  # in the order the fields first appear
        for record in next(self._pages(session, settings, {}, retries=retries, limit=1), ()):
            for key, value in record.items() if isinstance(record, dict) else ():
                samples.setdefault(key, Inference()).add(value)
        if not samples:
            raise ConfigError(self.fail(f"{settings['path']} returned no records to infer columns from; declare them"))
        return [Column(name, sample.type(), name) for name, sample in samples.items()], False

    # --- the protocol ------------------------------------------------------------------------------------------

    def check(self, stream: StreamSpec | None = None) -> None:
        streams = list(self.config.get("streams") or {})
        name = stream.label if stream else (streams[0] if streams else None)
        session = self._session()
        with session:
            if name is None:
                get_json(session, str(self.config["base_url"]), None, retries=0, config=self.config, fail=self.fail)
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
        with self._session() as session:
            columns, declared = self._columns(session, settings, retries=self._retries())
            if stream.cursor_column and state.cursor_value is not None and settings.get("incremental_param"):
                # The API filters; it is expected to return records at or after the value (ties merged by key).
                extra[settings["incremental_param"]] = _api_text(state.cursor_value, columns, stream.cursor_column)
            known = {c.header for c in columns}
            normalizer = Normalizer(columns, null_values=settings.get("null_values") or (),
                                    timezone=settings.get("timezone"))
            builder = BatchBuilder(columns, batch_rows=stream.batch_rows, normalizer=normalizer)
            for page, records in enumerate(self._pages(session, settings, extra, retries=self._retries()), start=1):
                with closing(records):  # its spooled file, removed once its records are read
                    for index, record in enumerate(records, start=1):
                        row, problem = self._row(record, columns, known, declared, normalizer)
                        batch = builder.add(row, place=f"{settings['path']} page {page} record {index}",
                                            problem=problem)
                        if batch is not None:
                            yield batch
            last = builder.flush(always=True)
            if last is not None:
                yield last

    @staticmethod
    def _row(record: Any, columns: list[Column], known: set[str], declared: bool,
             normalizer: Normalizer) -> tuple[tuple, str | None]:
        if not isinstance(record, dict):
            text = _escaped(excerpt(json.dumps(record, ensure_ascii=False, default=str)))
            return (None,) * len(columns), f"记录不是对象 / record is not a JSON object: {text}"
        values, problems = [], []
        for column in columns:
            value = record[column.header] if column.header in record else dig(record, column.header)
            if isinstance(value, (dict, list, bool)) and pa.types.is_string(column.type):
                value = json_text(value)
            if (escaped := _lone_surrogates(value)) is not None:
                problems.append(f"{column.name}={escaped!r}: 孤立的代理项不是字符 / a lone surrogate escaped in the "
                                "JSON (half of an emoji's UTF-16 pair, cut by the provider's system) is no "
                                "character; have the provider send the whole character")
                value = escaped  # as the JSON wrote it, for the quarantine: the row is not published
            values.append(value)
        row, problem = normalizer.text(values)
        problems += [problem] if problem else []
        if not declared and (unknown := [k for k in record if k not in known]):
            text = excerpt(json.dumps({k: record[k] for k in unknown}, ensure_ascii=False, default=str))
            problems.append(f"字段未声明 / field(s) {', '.join(unknown)} not in the columns inferred from the first "
                            f"page (declare the columns): {text}")
        return row, _escaped("; ".join(problems)) or None  # an unknown field's excerpt may hold one too


SURROGATE = re.compile(r"[\ud800-\udfff]")  # json.loads keeps an escaped half of a UTF-16 pair as one


def _lone_surrogates(value: Any) -> str | None:
    """A value holding a lone surrogate (nested values too) as text, each one written as the JSON escaped it
    (\\ud83d); None if it holds none. UTF-8 has no form for one: Arrow's conversion failed the whole read."""
    text = value if isinstance(value, str) else json_text(value) if isinstance(value, (dict, list)) else ""
    return _escaped(text) if SURROGATE.search(text) else None


def _escaped(text: str) -> str:
    return SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _api_text(cursor: str, columns: list[Column], name: str) -> str:
    """A saved time cursor in ISO 8601 with a T (2026-03-01T08:00:00+00:00), the spelling APIs expect; a text
    cursor as the API wrote it (re-spelt with a T, 2026-03-01 09:30:00 sorted before it as text: skipped)."""
    if any(c.name == name and pa.types.is_timestamp(c.type) for c in columns) and ":" in cursor:
        try:
            return datetime.fromisoformat(cursor).isoformat()
        except ValueError:
            pass
    return cursor
