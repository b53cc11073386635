"""The FastAPI application: `govshare serve` runs it with uvicorn."""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from sqlalchemy.exc import DataError, OperationalError

from api.delivery import install as install_delivery
from api.origin import RequestOrigin
from api.routes import catalog, catalog_interop, datasets, exchange, people, sharing
from api.routes import quality as quality_routes
from api.web import for_people, http_error_page, invalid_request_page
from core.errors import AccessDenied, AuthenticationFailed, ConfigError, NotFound
from pipeline.changes_feed import FullCopyNeeded
from schemas.validation_text import summary_zh

log = logging.getLogger(__name__)

# Each capability's router; a new module in api/routes/ is added here.
# catalog_interop first: its fixed paths (/api/v1/catalog/search, ...) must win over any {code:path} route.
ROUTERS = [catalog_interop.router, people.router, sharing.router, datasets.router, exchange.router,
           catalog.router]
ROUTERS.append(quality_routes.router)  # tickets, data elements, duplicate-collection check
from api.routes import supervision as supervision_routes  # noqa: E402 - supervision
from api.routes import supervision_web  # noqa: E402

ROUTERS += [supervision_routes.router, supervision_web.router]  # an agency's standing and open items


def create_app() -> FastAPI:
    app = FastAPI(title="govshare 政务数据共享交换平台", version="0.1.0",
                  description="Catalogue, published versions and downloads of shared government data.")

    @app.exception_handler(AccessDenied)
    def _denied(_: Request, exc: AccessDenied) -> JSONResponse:
        status = 401 if isinstance(exc, AuthenticationFailed) else 403
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": exc.en, "detail_zh": exc.zh}, status_code=status, headers=headers)

    @app.exception_handler(NotFound)
    def _missing(_: Request, exc: NotFound) -> JSONResponse:
        # detail in English, detail_zh in Chinese: an error raised with both texts answers each in its own
        return JSONResponse({"detail": exc.en or str(exc), "detail_zh": exc.zh or exc.user_message()}, status_code=404)

    @app.exception_handler(FullCopyNeeded)
    def _whole_copy(_: Request, exc: FullCopyNeeded) -> JSONResponse:
        # on every route that offers changes (files?since=, links, /changes): 409 tells a client to download the
        # whole version, where a 400 said its request was wrong
        return JSONResponse({"detail": exc.en or str(exc), "detail_zh": exc.zh or exc.zh_advice}, status_code=409)

    @app.exception_handler(ConfigError)
    def _bad(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": exc.en or str(exc), "detail_zh": exc.zh or exc.user_message()},
                            status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if for_people(request):  # a person in a browser gets a Chinese page; programs keep the JSON answer
            return http_error_page(request, exc.status_code)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # A page's form post is a person's whatever its Accept header says: never FastAPI's JSON on a page.
        if for_people(request) or request.url.path.startswith("/web"):
            return invalid_request_page(request, list(exc.errors()))
        # FastAPI's machine-readable `detail` list as it was (clients read it), with which field is wrong and why
        # in Chinese beside it: `message`, and `detail_zh` as every other error of the API has.
        message = f"请求有误：{summary_zh(exc.errors())}"
        return JSONResponse({"detail": jsonable_encoder(exc.errors()), "message": message, "detail_zh": message},
                            status_code=422)

    @app.exception_handler(OSError)
    def _disk(request: Request, exc: OSError) -> Response:
        # A full disk is the operator's to fix, not a bug: say so (507) instead of a bare 500; anything else
        # goes on to the server's error handling (500, logged).
        if exc.errno != errno.ENOSPC:
            raise exc
        log.error("no space left on the hub's storage: %s", exc)
        if for_people(request):
            return http_error_page(request, 507)
        return JSONResponse({"detail": "the hub's storage is full; try again later (the operator has to free space)",
                             "detail_zh": "平台存储空间已满，请稍后再试（需由运维人员清理空间）"}, status_code=507)

    @app.exception_handler(OperationalError)
    def _registry_down(request: Request, exc: OperationalError) -> Response:
        # The registry database stopped answering (restarted, unreachable, dropped): the operator's to fix, and
        # the caller may retry; a bare 500 told neither. Logged in one line, without the driver's traceback.
        log.error("the registry database cannot be reached: %s", " ".join(str(exc.orig or exc).split())[:300])
        if for_people(request):
            from api.web import error_page

            return error_page(request, None, 503, title="平台暂时无法使用",
                              problem="平台的登记库暂时无法访问。请稍后再试；如持续出现，请告知平台运维人员。")
        return JSONResponse({"detail": "the hub's registry database cannot be reached; try again later",
                             "detail_zh": "平台登记库暂时无法访问，请稍后再试"}, status_code=503,
                            headers={"Retry-After": "30"})

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    def _out_of_range(_: Request, exc: Exception) -> JSONResponse:
        # An id or number beyond what the registry stores (SQLite and PostgreSQL hold 64-bit integers): no such
        # record can exist, so the request is wrong, not the server.
        return JSONResponse({"detail": "a number in the request is out of range: no such record",
                             "detail_zh": "请求中的数字超出范围，没有这样的记录"}, status_code=400)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        # Healthy means able to answer: the registry is asked too (unreachable: 503 by the handler above), so
        # the compose health check no longer calls a hub healthy while every request fails.
        from sqlalchemy import text

        from registry.db import get_engine

        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    install_delivery(app)  # interface, downloads, signed links, web pages
    # last, so outermost: every refusal below it, a middleware's too, knows the request's address and route
    app.add_middleware(RequestOrigin)
    return app
