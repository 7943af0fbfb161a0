"""``create_app(settings)``: the Starlette application (routes, lifespan, GraphQL view)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import __version__
from gateway.cache import build_page_cache
from gateway.config import Settings
from gateway.graphql.view import GatewayGraphQL
from gateway.stats import Stats
from gateway.upstream.client import LeadsAPI


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One pooled client per app: keep-alive connections to the upstream are reused by every request.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(limits=limits, headers={"User-Agent": f"leads-gateway/{__version__}"},
                                     follow_redirects=False) as client:
            app.state.api = LeadsAPI(client, settings.upstream_url, settings.upstream_timeout, stats=app.state.stats)
            app.state.cache = build_page_cache(settings, app.state.stats)
            app.state.ready = True
            try:
                yield
            finally:
                app.state.ready = False
                await app.state.cache.close()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        # A degraded cache (Redis unreachable) is reported but still ready: the gateway answers from its
        # in-process cache, and taking every instance out of rotation would turn a cache outage into an outage.
        state = request.app.state
        if not getattr(state, "ready", False):
            return JSONResponse({"status": "starting"}, status_code=503)
        store = state.cache.store
        if hasattr(store, "probe"):
            await store.probe()
        return JSONResponse({"status": "ready", "cache": {"backend": store.backend, "state": store.state}})

    graphql = GatewayGraphQL(settings)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stats = Stats()
    app.state.ready = False
    return app
