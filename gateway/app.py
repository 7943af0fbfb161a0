"""``create_app(settings)``: the composition root. It builds each layer once and hands it to the one above:
the data sources (upstream client, page cache) to the GraphQL context factory, that to the HTTP view;
the Starlette app routes requests and runs the lifespan that opens and closes the data sources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import Settings
from gateway.datasource.source import LeadsSources
from gateway.graphql.context import ContextFactory
from gateway.http.cors import CORSMiddleware
from gateway.http.graphiql.assets import asset_routes
from gateway.http.middleware import GraphQLFirst, RequestMiddleware
from gateway.http.view import GatewayGraphQL
from gateway.observability.metrics import CONTENT_TYPE, Stats, metrics_registry, render


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    stats = Stats()
    sources = LeadsSources(settings, stats)
    graphql = GatewayGraphQL(settings, ContextFactory(sources, max_page_size=settings.max_page_size), stats)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sources.start()
        app.state.metrics = metrics_registry(stats, sources.traffic, sources.cache, graphql.rate_limiter)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await sources.close()
            if graphql.rate_limiter is not None:
                await graphql.rate_limiter.close()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        # A degraded cache (Redis unreachable) or an open breaker is reported but still ready (200): the
        # gateway keeps answering (in-process cache, stale pages, fast UPSTREAM_UNAVAILABLE), and taking
        # every instance out of rotation for a shared dependency would turn it into a full outage.
        if not getattr(request.app.state, "ready", False):
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", **await sources.readiness()})

    async def metrics(request: Request) -> Response:
        if not getattr(request.app.state, "ready", False):
            return Response(b"", status_code=503)
        return Response(render(request.app.state.metrics), media_type=CONTENT_TYPE)

    app = Starlette(
        routes=[
            Route("/graphql", graphql),  # every method: the view answers the ones it refuses (JSON 405)
            *asset_routes(settings.graphiql),  # GraphiQL's bundles, /graphql/assets/<name>
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        # CORS inside the request middleware, so preflights also get a request id and a log line.
        middleware=[Middleware(RequestMiddleware, stats=stats),
                    Middleware(CORSMiddleware, origins=settings.cors_origins),
                    Middleware(GraphQLFirst, view=graphql)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stats = stats
    app.state.sources = sources
    app.state.ready = False
    return app
