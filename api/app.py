"""The FastAPI application: `govshare serve` runs it with uvicorn."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.routes import datasets
from core.errors import AccessDenied, AuthenticationFailed, ConfigError, NotFound

# Each capability's router; a new module in api/routes/ is added here.
ROUTERS = [datasets.router]


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
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConfigError)
    def _bad(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
