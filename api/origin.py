"""Which client address and route a request comes from, for the audit log's anonymous refusals
(registry/audit/probes.py: a flood of requests without credentials is folded into counted records)."""

from __future__ import annotations

from typing import Any

from registry.audit import probes


class RequestOrigin:
    """Outermost ASGI layer: marks each HTTP request's client address and, once routed, its route template."""

    def __init__(self, app: Any) -> None:  # noqa: ANN401 - an ASGI app
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:  # noqa: ANN401 - ASGI
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")

        def route() -> str:
            # the router adds the matched route to this same scope; a path parameter is then the same probe
            return getattr(scope.get("route"), "path", None) or scope.get("path", "")

        token = probes.serving(address=client[0] if client else "", route=route)
        try:
            return await self.app(scope, receive, send)
        finally:
            probes.done(token)
