"""``create_app(settings)``: the Starlette application (routes, lifespan, GraphQL view)."""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import __version__
from gateway.datasource.cache import build_page_cache
from gateway.config import Settings
from gateway.http.graphiql.assets import asset_routes
from gateway.http.cors import CORSMiddleware
from gateway.http.view import GatewayGraphQL
from gateway.observability.metrics import CONTENT_TYPE, metrics_registry, render
from gateway.http.middleware import RequestMiddleware
from gateway.observability.stats import Stats
from gateway.datasource.client import LeadsAPI
from gateway.upstream.transport import LeanTransport
from gateway.datasource.resilience import CircuitBreaker

log = logging.getLogger("gateway.app")


class GraphQLFirst:
    """The innermost middleware: ``/graphql`` goes straight to its view, past Starlette's exception
    middleware, router and route (a sixth of the CPU of an answer from the result cache); the view
    answers every error itself. Every other path takes the normal way."""

    def __init__(self, app, *, view: GatewayGraphQL) -> None:
        self.app = app
        self.view = view

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path, root = scope["path"], scope.get("root_path", "")
            if (path[len(root):] if root and path.startswith(root) else path) == "/graphql":
                return await self.view(scope, receive, send)
        return await self.app(scope, receive, send)


def upstream_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The lean transport unless told otherwise or a proxy is configured (it speaks only directly)."""
    if settings.upstream_transport != "lean" or any(k in urllib.request.getproxies() for k in ("http", "https", "all")):
        return None  # httpx's own, with the client's limits
    return LeanTransport(max_connections=settings.upstream_concurrency)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    stats = Stats()
    breaker = CircuitBreaker(failures=settings.breaker_failures, cooldown=settings.breaker_cooldown)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One pooled client per app: keep-alive connections to the upstream are reused by every request.
        limits = httpx.Limits(max_connections=settings.upstream_concurrency,
                              max_keepalive_connections=settings.upstream_concurrency)
        async with httpx.AsyncClient(limits=limits, headers={"User-Agent": f"leads-gateway/{__version__}"},
                                     follow_redirects=False, transport=upstream_transport(settings)) as client:
            app.state.api = LeadsAPI(client, settings.upstream_url, settings.upstream_timeout, stats=stats,
                                     retries=settings.upstream_retries,
                                     retry_after_max=settings.upstream_retry_after_max,
                                     concurrency=settings.upstream_concurrency, breaker=breaker)
            app.state.cache = build_page_cache(settings, stats)
            app.state.metrics = metrics_registry(stats, breaker, app.state.cache)
            app.state.ready = True
            try:
                yield
            finally:
                app.state.ready = False
                await app.state.cache.close()
                log.info("stopped", extra={"fields": {"upstream_requests": dict(stats.upstream_requests)}})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        # A degraded cache (Redis unreachable) or an open breaker is reported but still ready (200): the
        # gateway keeps answering (in-process cache, stale pages, fast UPSTREAM_UNAVAILABLE), and taking
        # every instance out of rotation for a shared dependency would turn it into a full outage.
        state = request.app.state
        if not getattr(state, "ready", False):
            return JSONResponse({"status": "starting"}, status_code=503)
        store = state.cache.store
        if hasattr(store, "probe"):
            await store.probe()
        return JSONResponse({"status": "ready", "cache": {"backend": store.backend, "state": store.state},
                             "upstream": {"breaker": breaker.state}})

    async def metrics(request: Request) -> Response:
        if not getattr(request.app.state, "ready", False):
            return Response(b"", status_code=503)
        return Response(render(request.app.state.metrics), media_type=CONTENT_TYPE)

    graphql = GatewayGraphQL(settings)
    app = Starlette(
        routes=[
            Route("/graphql", graphql),  # every method: the view answers the ones it refuses (JSON 405)
            *asset_routes(settings.graphiql),  # GraphiQL's bundles, /graphql/assets/<name>
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        # CORS inside the request middleware, so preflights also get a request id and a log line.
        middleware=[Middleware(RequestMiddleware, stats=stats, request_timeout=settings.request_timeout),
                    Middleware(CORSMiddleware, origins=settings.cors_origins),
                    Middleware(GraphQLFirst, view=graphql)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stats = stats
    app.state.breaker = breaker
    app.state.ready = False
    return app
