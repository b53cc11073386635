"""An HTTP stream's settings and its pages of records.

Keys at the top of the source's config are defaults for every stream (STREAM_KEYS). Pagination ``page`` sends
``page_param`` (from ``first_page``) and ``size_param`` = ``page_size`` and stops at an empty page, a page shorter
than the longest before (a server may cap the size asked for) or a repeat of the previous page; ``cursor`` sends
the value found at ``next_cursor_path`` (a full URL is followed as it is, on base_url's host only: the
session carries the agency's credentials) until it is missing or empty or a page repeats the previous one (at
page 2: the server ignores ``cursor_param``, an error); ``none`` reads one response.

Apart from the HTTP source (connectors/http_api.py), which turns records into rows, and the transport
(connectors/http_fetch.py), because these rules decide which requests a read makes and where the records are
in each answer, whatever the request costs. ``pages`` takes ``get`` (the page at a URL with its query
parameters) and ``fail`` (Connector.fail) to name the source in its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from connectors.http_stream import MISSING, Page
from core.errors import ConfigError

STREAM_KEYS = ("path", "records_path", "params", "pagination", "page_param", "size_param", "page_size", "first_page",
               "cursor_param", "next_cursor_path", "incremental_param", "columns", "primary_key", "timezone",
               "max_pages", "null_values")
PAGINATIONS = ("page", "cursor", "none")


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of a URL, the port spelt out (https://a.gov.cn and https://a.gov.cn:443 are one)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is no number: no origin of base_url's
        return parts.scheme.lower(), parts.netloc.lower(), -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def stream_settings(config: dict[str, Any], stream: str, *, fail: Callable[[str], str]) -> dict[str, Any]:
    """The stream's settings: the source's defaults, then the stream's own, its path /<stream> unless set."""
    streams = config.get("streams") or {}
    if streams and stream not in streams and "path" not in config:
        raise ConfigError(fail(f"stream {stream!r} is not declared; declared streams: {', '.join(streams)}"))
    merged = {k: v for k, v in config.items() if k in STREAM_KEYS}
    merged.update(streams.get(stream) or {})
    merged.setdefault("path", f"/{stream}")
    return merged


def pages(get: Callable[[str, dict[str, Any]], Page], settings: dict[str, Any], extra: dict[str, Any], *,
          base_url: str, fail: Callable[[str], str], limit: int | None = None) -> Iterator[Page]:
    """Each page, in order: its records are iterated from the page kept on disk (connectors.http_stream), and
    pages are compared by their records' count and digest, never held in memory."""
    url = base_url.rstrip("/") + "/" + str(settings["path"]).lstrip("/")
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
        answer = get(url, request_params)
        if answer.found is MISSING:  # a misspelt path would otherwise read as an empty source
            answer.close()
            raise ConfigError(fail(f"records_path {settings.get('records_path')!r} is not in the answer "
                                   f"of {url} (its top-level keys: {answer.keys})"))
        if answer.found is not True and answer.found is not None:
            answer.close()
            raise ConfigError(fail(f"records_path {settings.get('records_path')!r} of {url} is not a list"))
        records = len(answer)
        same = answer.count > 0 and previous == (answer.count, answer.digest)
        if pagination == "page":
            # A server may cap the page size below page_size (20 of 100 asked): a page shorter than asked
            # is not the last, one shorter than the longest seen is; and a server that answers a page past
            # the end with the last page again repeats it. Stopping at the first short page read only
            # the first page of a capped API, silently (and a full read took the rest for deleted).
            if same:
                answer.close()
                if number == 1 and records == size:  # a full first page again: the parameter is ignored
                    raise _ignored(url, size, settings.get("page_param", "page"), "page_param (and size_param)",
                                   fail=fail)
                return
            yield answer
            if not records:
                return
            if records < largest:
                return
            largest, previous = max(largest, records), (answer.count, answer.digest)
            continue
        if pagination == "cursor" and same:
            answer.close()
            if number == 1:  # new cursors, the same first page: the parameter is ignored, it would never end
                raise _ignored(url, records, settings.get("cursor_param", "cursor"), "cursor_param", fail=fail)
            return  # a server answering past the end with the last page again
        previous = (answer.count, answer.digest)
        yield answer
        if pagination == "none":
            return
        if pagination == "cursor":
            following = answer.cursor
            if following in (None, "") or not records:
                return
            if str(following) in seen_cursors:
                raise ConfigError(fail(f"next cursor {following!r} repeats; the pagination would loop"))
            seen_cursors.add(str(following))
            if str(following).startswith(("http://", "https://")):
                if origin(str(following)) != origin(base_url):
                    # the session sends the agency's token with every request: a link elsewhere would hand it over
                    raise ConfigError(fail(
                        f"下一页链接指向其他主机 / the next link {following!r} of {url} points at another host "
                        f"({urlsplit(str(following)).netloc}) than base_url ({urlsplit(base_url).netloc}); the "
                        "agency's credentials go to base_url's host only, so the read stops: ask the provider "
                        "why its API links elsewhere, or register that host as a source of its own"))
                url, params = str(following), {}
            else:
                params[settings.get("cursor_param", "cursor")] = following
    raise ConfigError(fail(f"more than max_pages={settings.get('max_pages', 100_000)} pages"))


def _ignored(url: str, count: int, param: str, setting: str, *, fail: Callable[[str], str]) -> ConfigError:
    """Page 2 answered as page 1: the server ignores the parameter that moves through the pages."""
    return ConfigError(fail(f"第2页与第1页相同 / page 2 of {url} answered the same {count} records as page 1: the "
                            f"server ignores {param!r}; set the stream's {setting} to the names the API documents"))
