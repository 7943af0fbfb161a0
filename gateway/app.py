"""``create_app(settings)``: the composition root. It builds each layer once and hands it to the one above:
the data sources (upstream client, page cache) to the GraphQL context factory, that to the HTTP view;
the Starlette app routes requests and runs the lifespan that opens and closes the data sources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import ConfigError, Settings
from gateway.datasource.source import LeadsSources
from gateway.graphql.context import ContextFactory
from gateway.http.cors import CORSMiddleware
from gateway.http.graphiql.assets import asset_routes
from gateway.http.middleware import GraphQLFirst, RequestMiddleware
from gateway.http.view import GatewayGraphQL
from gateway.observability.metrics import CONTENT_TYPE, Stats, metrics_registry, render

log = logging.getLogger("gateway.app")


def _before_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on SIGTERM/SIGINT before the server's own handler (uvicorn's, which starts its
    graceful shutdown); returns what restores the handlers. Only the main thread has signals (servers run in
    a thread by tests call ``app.state.drain`` themselves: ``serving.RunningServer.stop``)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = previous[sig] = signal.getsignal(sig)

        def chained(number, frame, handler=handler):
            callback()
            if callable(handler):
                handler(number, frame)

        signal.signal(sig, chained)

    def restore() -> None:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)

    return restore


def _on_hangup(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on the event loop at each SIGHUP (main thread only); returns what removes it. Under
    ``--workers N`` uvicorn's supervisor takes SIGHUP itself and restarts the workers, which reload too."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop.add_signal_handler(signal.SIGHUP, callback)
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


def reload_manifests(graphql: GatewayGraphQL) -> None:
    """SIGHUP: the persisted-document manifests read again; a bad set is logged and the current one kept."""
    try:
        count = graphql.reload_manifests()
    except ConfigError as e:
        log.error("persisted documents not reloaded: %s", e)
        return
    log.info("persisted documents reloaded", extra={"fields": {"documents": count}})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    stats = Stats()
    sources = LeadsSources(settings, stats)
    graphql = GatewayGraphQL(settings, ContextFactory(sources, max_page_size=settings.max_page_size), stats)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sources.start()
        graphql.persisted.store = sources.documents  # APQ registrations live in the cache backend
        stats.persisted = graphql.persisted
        app.state.metrics = metrics_registry(stats, sources.traffic, sources.cache, graphql.rate_limiter)
        loop = asyncio.get_running_loop()
        # Shutdown begins: subscriptions end now, so that their streams close (WebSockets get uvicorn's 1012,
        # SSE and multipart a `complete`) instead of holding the server until its grace period runs out.
        def drain() -> None:
            with contextlib.suppress(RuntimeError):  # the server has stopped already: nothing left to end
                loop.call_soon_threadsafe(sources.live.drain)

        app.state.drain = drain
        restore = _before_signals(app.state.drain)
        unhook = _on_hangup(loop, lambda: reload_manifests(graphql))
        app.state.ready = True
        try:
            yield
        finally:
            restore()
            unhook()
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
            *asset_routes(settings.graphiql_on),  # GraphiQL's bundles, /graphql/assets/<name>
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
