"""CORS for browser clients on other origins, by allowlist (``Settings.cors_origins``, GATEWAY_CORS_ORIGINS).

- No origins configured (the default): same-origin only. Responses pass untouched (no CORS headers,
  no ``Vary``); a cross-origin preflight is refused (403).
- An ``Origin`` on the list (compared case-insensitively, without a trailing slash; ``*`` allows any):
  responses carry ``Access-Control-Allow-Origin`` (that origin; ``*`` when any is allowed) and
  ``Access-Control-Expose-Headers``; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
  answered 204 here with the methods (GET, POST) and headers a GraphQL client sends (Authorization,
  Content-Type, Accept, Cache-Control, Pragma, X-Request-ID), cached by the browser for ``max_age`` seconds.
- Any other ``Origin``: the request is served without ``Access-Control-Allow-Origin``, so the browser
  withholds the answer from the page; its preflight is refused with 403 and a GraphQL error body
  (code ``ORIGIN_NOT_ALLOWED``).

Credentials (cookies) are never allowed: the gateway authenticates by the ``Authorization`` header the
page sets itself. With an allowlist, every response says ``Vary: Origin`` (caches must not mix them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware import cors
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Send

ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Accept", "Cache-Control", "Pragma", "X-Request-ID")
EXPOSE_HEADERS = ("X-Request-ID", "Retry-After")


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class CORSMiddleware(cors.CORSMiddleware):
    """Starlette's, as ``CORSMiddleware(app, origins=settings.cors_origins)``, where the gateway differs:

    - origins are compared normalized: the library compares exact strings, so ``https://App.example.com/``
      in the settings would never match the ``https://app.example.com`` browsers send;
    - a refused preflight is a 403 with a GraphQL error body, the shape of every other error the gateway
      answers (the library: 400, text ``Disallowed CORS origin``);
    - an allowed origin's preflight is a 204 with the lists, whatever it asks for: the browser then checks
      method and headers itself and names the missing one in its console (the library answers 400
      ``Disallowed CORS headers``, which the browser reports only as a failed preflight);
    - with no allowlist it adds nothing (the library adds ``Vary: Origin`` and
      ``Access-Control-Expose-Headers`` to every response).

    With an allowlist, the library's ``Access-Control-Expose-Headers`` on responses to other origins is
    kept: without ``Access-Control-Allow-Origin`` a browser ignores it.
    """

    def __init__(self, app: ASGIApp, origins: Iterable[str] = (), max_age: int = 600) -> None:
        allowed = frozenset(normalize_origin(o) for o in origins if o.strip())
        super().__init__(app, allow_origins=allowed, allow_methods=ALLOW_METHODS, allow_headers=ALLOW_HEADERS,
                         expose_headers=EXPOSE_HEADERS, max_age=max_age)
        self.enabled = bool(allowed)

    async def __call__(self, scope, receive, send) -> None:
        if not self.enabled and (scope["type"] != "http" or scope["method"] != "OPTIONS"):
            await self.app(scope, receive, send)  # no allowlist: nothing to add, and not a preflight to refuse
            return
        await super().__call__(scope, receive, send)

    def is_allowed_origin(self, origin: str) -> bool:
        return super().is_allowed_origin(normalize_origin(origin))

    def preflight_response(self, request_headers: Headers) -> Response:
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin):
            body = {"errors": [{"message": f"Origin {origin!r} is not allowed to call this API from a browser.",
                                "extensions": {"code": "ORIGIN_NOT_ALLOWED"}}]}
            return Response(json.dumps(body), status_code=403, headers={"Vary": "Origin"} if self.enabled else {},
                            media_type="application/json; charset=utf-8")
        headers = dict(self.preflight_headers)  # Vary, methods, headers, max age (and "*" when any is allowed)
        if self.preflight_explicit_allow_origin:
            headers["Access-Control-Allow-Origin"] = origin
        return Response(status_code=204, headers=headers)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        if self.enabled:
            await super().send(message, send, request_headers)
        else:
            await send(message)
