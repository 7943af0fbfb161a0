"""CORS for browser clients on other origins, by allowlist (``Settings.cors_origins``, GATEWAY_CORS_ORIGINS).

- No origins configured (the default): same-origin only. No response ever carries
  ``Access-Control-Allow-Origin``; a cross-origin preflight is refused (403).
- An ``Origin`` on the list (compared case-insensitively, without a trailing slash; ``*`` allows any):
  responses carry ``Access-Control-Allow-Origin: <that origin>`` and ``Access-Control-Expose-Headers``;
  a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 here with the
  methods (GET, POST) and headers a GraphQL client sends (Authorization, Content-Type, Accept,
  Cache-Control, Pragma, X-Request-ID), cached by the browser for ``max_age`` seconds.
- Any other ``Origin``: the request goes through untouched, without CORS headers, so the browser
  withholds the answer from the page; its preflight is refused with 403 and a GraphQL error body
  (code ``ORIGIN_NOT_ALLOWED``).

Credentials (cookies) are never allowed: the gateway authenticates by the ``Authorization`` header the
page sets itself. With an allowlist, every response says ``Vary: Origin`` (caches must not mix them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = "GET, POST"
ALLOW_HEADERS = "Authorization, Content-Type, Accept, Cache-Control, Pragma, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID, Retry-After"


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class CORSMiddleware:
    """Pure ASGI middleware (it never buffers bodies): ``CORSMiddleware(app, origins=settings.cors_origins)``."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = (), max_age: int = 600) -> None:
        self.app = app
        origins = [normalize_origin(o) for o in origins if o.strip()]
        self.any_origin = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")
        self.enabled = self.any_origin or bool(self.origins)
        self.max_age = max_age

    def allowed(self, origin: str) -> bool:
        return self.enabled and (self.any_origin or normalize_origin(origin) in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self.preflight(origin)(scope, receive, send)
            return
        if not self.enabled:
            await self.app(scope, receive, send)
            return
        allow = origin is not None and self.allowed(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.add_vary_header("Origin")
                if allow:
                    h["Access-Control-Allow-Origin"] = origin
                    h["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def preflight(self, origin: str) -> Response:
        vary = {"Vary": "Origin"} if self.enabled else {}
        if not self.allowed(origin):
            body = {"errors": [{"message": f"Origin {origin!r} is not allowed to call this API from a browser.",
                                "extensions": {"code": "ORIGIN_NOT_ALLOWED"}}]}
            return Response(json.dumps(body), status_code=403, headers=vary,
                            media_type="application/json; charset=utf-8")
        return Response(status_code=204, headers={
            **vary,
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(self.max_age),
        })
