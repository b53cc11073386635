"""The delivery channels plugged into the app in one call: interface, downloads, web pages, 429s."""

from __future__ import annotations

from fastapi import FastAPI

from api import web
from api.routes import downloads, interface
from api.web import sharing_pages


def install(app: FastAPI) -> None:
    from delivery.ratelimit import RateLimited

    from api.web.cross_site import CrossSiteGuard

    app.add_exception_handler(RateLimited, lambda _request, exc: interface.too_many(exc))
    app.add_middleware(CrossSiteGuard)  # a page's form posted from another site is refused (and audited)
    app.add_middleware(interface.FastLookup)  # answers keyed lookups that need no registry query itself
    app.include_router(interface.router)
    app.include_router(downloads.router)
    app.include_router(web.router)
    app.include_router(web.root_router)  # `/` leads to the catalogue (or the login page)
    app.include_router(sharing_pages.router)  # article 14: application and decision pages


def tune_gc() -> None:
    """For a serving process: the app's long-lived objects (routes, mappers, loaded indexes) leave the garbage
    collector's full passes, and young collections run less often. Without it a full pass over them stalls
    every request now and then (lookup p99 several times its p50)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def serving_app() -> FastAPI:
    """The app as `govshare serve` runs it (also the factory of its worker processes)."""
    from api.app import create_app

    app = create_app()
    tune_gc()
    return app
