"""Interface exchange (接口交换): keyed lookups, paged and filtered records, bulk Arrow IPC or Parquet streams."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import ReadUseDep, SessionDep, TokenDep, bearer
from api.schemas import LookupPublic, PagePublic, Problem
from delivery import decisions, interface
from delivery.access import ReadUse, apply_use, audit_read, refusals_audited
from delivery.audit_batch import group_audit
from delivery.ratelimit import consumer_key, limiter

LIMITED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 429: {"model": Problem}}
router = APIRouter(tags=["interface exchange"])


async def presented_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str | None:
    # async: no thread hop for what is only a header read (lookups are the hot path)
    return credentials.credentials if credentials else None


FastTokenDep = Annotated[str | None, Depends(presented_token)]


async def audit_rate_refusal(*, token: str | None, resource_code: str, channel: str,
                             action: str = "data.read") -> None:
    """A request turned away by the rate limit, recorded as the consumer whose token it presented (or as an
    anonymous refusal: no token, or one the hub does not accept); its repeats folded before any database work
    (the registry is only asked for the first of each interval, off the event loop)."""
    from starlette.concurrency import run_in_threadpool

    from delivery.ratelimit import record_refusal, refusal_count

    if (count := refusal_count(token=token, action=action)) is not None:
        await run_in_threadpool(lambda: record_refusal(token=token, action=action, resource_code=resource_code,
                                                       channel=channel, count=count))


def rate_limit(channel: str, action: str = "data.read"):  # noqa: ANN201 - a FastAPI dependency
    async def rate_limited(request: Request, token: FastTokenDep) -> None:
        """Per-consumer limit, checked before any database work; 429 with Retry-After when exceeded."""
        from delivery.ratelimit import RateLimited

        try:
            limiter().check(consumer_key(token, request.client.host if request.client else None))
        except RateLimited:
            await audit_rate_refusal(token=token, resource_code=request.path_params.get("code", ""),
                                     channel=channel, action=action)
            raise

    return rate_limited


RateLimitDep = Annotated[None, Depends(rate_limit("interface"))]


def _fields(fields: str | None) -> list[str] | None:
    return [f.strip() for f in fields.split(",") if f.strip()] if fields else None


@router.get("/api/v1/resources/{code:path}/lookup", response_model=LookupPublic, responses=LIMITED)
def lookup(code: str, token: FastTokenDep, _: RateLimitDep, use: ReadUseDep,
           column: Annotated[str, Query(description="key column, e.g. uscc (统一社会信用代码)")],
           value: Annotated[str, Query(description="key value to look up")],
           fields: Annotated[str | None, Query(description="comma-separated data items; default all granted")] = None,
           version: Annotated[int | None, Query(description="a given version; default the latest")] = None,
           ) -> JSONResponse:
    """Records whose key column equals value (e.g. an enterprise by its USCC), only granted columns and rows.
    A lookup that needs no registry query is answered by FastLookup in front of the app, the same way."""
    return _lookup(code, token, column, value, fields, version, use)


def _lookup(code: str, token: str | None, column: str, value: str, fields: str | None,
            version: int | None, use: ReadUse) -> JSONResponse:
    from registry.db import session_scope

    # No registry session unless needed: a recent decision is reused, and the latest version comes with it.
    decision = decisions.cached_authorize(None, token=token, resource_code=code, channel="interface")
    if use.purpose is not None or use.onward_to is not None:
        with session_scope() as session:
            decision = apply_use(session, decision, use)
    if version is None or version == decision.version.number:
        chosen = decision.version
    else:
        with session_scope() as session:
            chosen = interface.version_for(session, decision, version)
    with refusals_audited(decision):  # a column outside the grant or masked: refused, and recorded
        found = interface.lookup(decision, chosen, column=column, value=value, fields=_fields(fields))
    group_audit().record(decision=dataclasses.replace(decision, version=chosen), rows=found.num_rows,
                         fmt="json")  # committed before the answer; the version answered, not always the latest
    return _answer(chosen, found)


def _answer(version, found: pa.Table) -> JSONResponse:
    return JSONResponse({"version": version.number, "manifest_sha256": version.manifest_sha256,
                         "records": interface.json_rows(found)})


@router.get("/api/v1/resources/{code:path}/records", response_model=PagePublic, responses=LIMITED)
def records(code: str, session: SessionDep, token: TokenDep, _: RateLimitDep, use: ReadUseDep,
            fields: Annotated[str | None, Query(description="comma-separated data items; default all granted")] = None,
            where: Annotated[list[str] | None, Query(description="column:value, repeatable (AND)")] = None,
            limit: Annotated[int, Query(ge=1, le=interface.MAX_PAGE)] = 100,
            cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
            version: Annotated[int | None, Query(description="a given version; default the latest")] = None,
            fmt: Annotated[Literal["json", "arrow", "parquet"], Query(alias="format")] = "json",
            ) -> JSONResponse | StreamingResponse:
    """A page of records in key order with a stable cursor (JSON), or every granted row streamed as Arrow IPC
    (`format=arrow`) or Parquet (`format=parquet`)."""
    decision = apply_use(session, decisions.cached_authorize(session, token=token, resource_code=code,
                                                             channel="interface"), use)
    start, order_by = 0, None
    if cursor:
        version, order_by, start = interface.decode_cursor(cursor, reader=interface.cursor_reader(decision))
    chosen = interface.version_for(session, decision, version)
    with refusals_audited(decision):  # a filter or field outside the grant or masked: refused, and recorded
        condition = interface.parse_where(decision, chosen, where or [])
        if fmt != "json":
            return _bulk(session, decision, chosen, condition, _fields(fields), fmt)
        order_by = interface.cursor_order(decision, chosen, order_by)
        result = interface.page(decision, chosen, order_by=order_by, start=start, limit=limit, where=condition,
                                fields=_fields(fields))
    group_audit().record(decision=dataclasses.replace(decision, version=chosen), rows=result.rows.num_rows,
                         fmt="json")
    return JSONResponse({"version": result.version, "manifest_sha256": chosen.manifest_sha256,
                         "records": interface.json_rows(result.rows), "next_cursor": result.next_cursor})


def _bulk(session, decision, version, condition, fields, fmt) -> StreamingResponse:
    schema, batches = interface.bulk_batches(decision, version, where=condition, fields=fields)
    media = "application/vnd.apache.arrow.stream" if fmt == "arrow" else "application/vnd.apache.parquet"
    headers = {"X-Govshare-Version": str(version.number), "X-Govshare-Manifest-SHA256": version.manifest_sha256}
    return StreamingResponse(_encode_audited(schema, batches, fmt, dataclasses.replace(decision, version=version)),
                             media_type=media, headers=headers)


def _encode_audited(schema: pa.Schema, batches: Iterator[pa.RecordBatch], fmt: str, decision) -> Iterator[bytes]:
    """The stream, audited when it ends (completed or cut off) with the rows actually sent."""
    from registry.db import session_scope

    sent = [0]

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sent[0] += batch.num_rows
            yield batch

    try:
        yield from _encode(schema, counted(), fmt)
    finally:
        with session_scope() as session:
            audit_read(session, decision=decision, rows=sent[0], fmt=fmt)


def _encode(schema: pa.Schema, batches: Iterator[pa.RecordBatch], fmt: str) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    from delivery.files import _ChunkSink

    sink = _ChunkSink()
    writer = pa.ipc.new_stream(sink, schema) if fmt == "arrow" else pq.ParquetWriter(sink, schema)
    for batch in batches:
        writer.write_batch(batch)
        if chunk := sink.drain():
            yield chunk
    writer.close()
    if chunk := sink.drain():
        yield chunk


class FastLookup:
    """The keyed lookup's hot path as a thin ASGI layer in front of the app (a busy consumer system sends
    hundreds a second, and FastAPI's routing, dependencies and middleware cost more than the lookup itself).

    A request is answered here only when nothing needs the registry or a file: a bearer token with a granted
    decision of the last second (delivery.decisions), the latest version, no declared purpose or onward
    recipient, lookup structures already loaded. It goes through the same steps as the route: rate limit,
    interface.lookup (grant, columns, rows, masking), the audit record committed before the answer, the same
    JSON. Anything else, an error included, goes to the route unchanged, which decides, refuses and audits
    as always (a request refused there may have taken one more rate-limit token here)."""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "GET" and path.startswith(_PREFIX) \
                and path.endswith(_SUFFIX):
            answer = await _fast_answer(scope, path[len(_PREFIX):-len(_SUFFIX)])
            if answer is not None:
                return await answer(scope, receive, send)
        return await self.app(scope, receive, send)


_PREFIX, _SUFFIX = "/api/v1/resources/", "/lookup"


async def _fast_answer(scope, code: str) -> JSONResponse | None:  # noqa: ANN001 - ASGI scope
    from urllib.parse import parse_qs

    from delivery.ratelimit import RateLimited

    headers = dict(scope["headers"])
    credentials = headers.get(b"authorization", b"")
    if credentials[:7].lower() != b"bearer " or b"x-govshare-purpose" in headers \
            or b"x-govshare-onward-to" in headers:
        return None
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if any(len(values) != 1 for values in query.values()) or "column" not in query or "value" not in query:
        return None
    token, column = credentials[7:].decode("latin-1").strip(), query["column"][0]
    decision = decisions.cached_decision(token=token, resource_code=code, channel="interface")
    version = query.get("version", [None])[0]
    if decision is None or version not in (None, str(decision.version.number)) \
            or not interface.lookup_ready(decision, column):
        return None
    client = scope.get("client")
    try:
        limiter().check(consumer_key(token, client[0] if client else None))
        found = interface.lookup(decision, decision.version, column=column, value=query["value"][0],
                                 fields=_fields(query.get("fields", [None])[0]))
    except RateLimited as exc:
        await audit_rate_refusal(token=token, resource_code=code, channel="interface")
        return too_many(exc)
    except Exception:  # noqa: BLE001 - the route answers it (and refuses, audits or reports it) as always
        return None
    await group_audit().record_async(decision=decision, rows=found.num_rows, fmt="json")  # committed first
    return _answer(decision.version, found)


def too_many(exc) -> JSONResponse:
    return JSONResponse({"detail": exc.en, "detail_zh": exc.zh}, status_code=429,
                        headers={"Retry-After": str(exc.retry_after)})
