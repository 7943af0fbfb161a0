"""The gateway's own ASGI middleware: request ids, in-flight counts and one structured log line per request
(``RequestMiddleware``), and the shortcut that hands ``/graphql`` straight to its view (``GraphQLFirst``)."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time

from gateway.observability import scope as request_scope
from gateway.observability.logs import RequestLog
from gateway.observability.scope import RequestScope
from gateway.observability.metrics import Stats

log = logging.getLogger("gateway.request")
request_log = RequestLog(log)  # the line of every request, by its fast path when logging is configured as usual
_ID_PREFIX = secrets.token_hex(8)  # request ids: unique per process start, then a counter (no entropy per request)
_ids = itertools.count(1)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's X-Request-ID is echoed, so keep it harmless


class RequestMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it would buffer streaming bodies and break contextvars)."""

    def __init__(self, app, *, stats: Stats, quiet_paths=("/healthz", "/readyz", "/metrics")):
        self.app = app
        self.stats = stats
        self.quiet_paths = frozenset(quiet_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_ID.match(incoming) else f"{_ID_PREFIX}{next(_ids):016x}"
        rs = RequestScope(request_id=request_id)
        token = request_scope.enter(rs)
        started = time.perf_counter()
        status = 500
        finished = False
        self.stats.inflight += 1

        def finish() -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            self.stats.inflight -= 1
            duration = time.perf_counter() - started
            if rs.executed:
                self.stats.graphql_latency.observe(duration)
                self.stats.count_operation(rs.operation, rs.error_codes[0] if rs.error_codes else "ok")
            path = scope.get("path", "")
            if path not in self.quiet_paths:
                request_log.info({
                    "request_id": request_id, "method": scope.get("method"), "path": path, "status": status,
                    "operation": rs.operation, "duration_ms": round(duration * 1000, 2),
                    "upstream_calls": rs.upstream_calls, "cache_hits": rs.cache_hits,
                    "error_codes": sorted(set(rs.error_codes)) if rs.error_codes else [],
                })

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()  # logged before the last bytes leave, so the line exists when the client has its answer
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            finish()  # a request that ended without a complete response is logged too
            request_scope.leave(token)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return value.decode("latin-1").strip()
            except UnicodeDecodeError:
                return None
    return None


class GraphQLFirst:
    """The innermost middleware: ``/graphql`` goes straight to its view, past Starlette's exception
    middleware, router and route (a sixth of the CPU of an answer from the result cache); the view
    answers every error itself; a WebSocket to ``/graphql`` is a subscription connection (``live.py``).
    Every other path takes the normal way."""

    def __init__(self, app, *, view) -> None:
        self.app = app
        self.view = view

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            path, root = scope["path"], scope.get("root_path", "")
            if (path[len(root):] if root and path.startswith(root) else path) == "/graphql":
                return await self.view(scope, receive, send)
        return await self.app(scope, receive, send)
