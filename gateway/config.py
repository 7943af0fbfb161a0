"""One immutable ``Settings`` read from the environment (the names are part of the public contract: README,
"Configuration")."""

from __future__ import annotations

import math
import os
from urllib.parse import urlparse
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_UPSTREAM_URL = "https://call.aiployees.com/api"


class ConfigError(ValueError):
    """An environment variable has a value the gateway cannot use."""


@dataclass(frozen=True)
class Settings:
    upstream_url: str = DEFAULT_UPSTREAM_URL
    cache_url: str = "memory://"
    cache_secret: str | None = None  # None: a random key per process (see datasource/cache/keys.py)
    cache_ttl: float = 30.0
    cache_swr: float = 0.0  # serve a page this long past its TTL while one background refresh renews it
    cache_stale_if_error: float = 300.0  # serve a page this long past its TTL when the upstream fails
    cache_max_leads: int = 20_000  # bound of the in-process cache, in leads held (oldest pages evicted)
    result_cache_bytes: int = 16 * 1024 * 1024  # in-process cache of whole answers, in bytes; 0: off
    document_cache_bytes: int = 1024 * 1024  # parsed and validated documents, bytes of their text; 0: off
    max_page_size: int = 100
    upstream_timeout: float = 10.0
    # Largest upstream answer read, in bytes: a page of 100 leads is about 100 kB; over it the answer is
    # refused (UPSTREAM_BAD_RESPONSE) and the connection dropped, never buffered whole.
    upstream_max_bytes: int = 8 * 1024 * 1024
    # How many upstream pages of 100 a by-id lookup may scan (no single-lead endpoint upstream).
    lookup_max_pages: int = 10
    # GraphiQL at GET /graphql; None: on unless the safelist is on (``allow_arbitrary_documents`` false).
    graphiql: bool | None = None
    # Token used for requests without one; set by ``serve --demo`` (GATEWAY_DEMO_TOKEN), never in production.
    demo_token: str | None = None
    # Upstream resilience.
    upstream_retries: int = 2  # extra attempts on connection errors, 502/503/504 and 429
    upstream_retry_after_max: float = 5.0  # longest Retry-After honoured before giving up on a retry
    upstream_concurrency: int = 32  # upstream requests in flight per instance; more wait in line
    # aiohttp's HTTP/1.1 stack under httpx (httpx-aiohttp) or httpx's own (httpcore): "aiohttp" | "httpx".
    upstream_transport: str = "aiohttp"
    request_timeout: float = 20.0  # deadline of one GraphQL operation, retries and waits included
    # Tenant isolation (README, "Operating it"). The upstream breaker opens when, over the last
    # ``breaker_window`` seconds, at least ``breaker_min_calls`` calls were made, ``breaker_failure_rate`` of
    # them failed, and the failures came from several callers (``breaker_min_callers``, or every active caller
    # when fewer were active); a caller's own breaker opens on that caller's failures alone.
    breaker_window: float = 10.0
    breaker_min_calls: int = 20  # Hystrix's 20 in 10 s
    breaker_failure_rate: float = 0.5  # resilience4j's and Hystrix's 50 %
    breaker_min_callers: int = 3
    breaker_cooldown: float = 5.0  # seconds a breaker stays open before one probe call
    caller_breaker_min_calls: int = 10
    # Share of the upstream concurrency one caller may hold (the rest stays free for the others).
    caller_share: float = 0.5
    upstream_queue_max: int = 100  # upstream calls one caller may have waiting for a slot; more: RATE_LIMITED
    upstream_queue_timeout: float = 5.0  # longest wait for an upstream slot; past it: RATE_LIMITED
    # Per-caller request rate limit in the ``limits`` library's notation ("20/second;600/minute"); empty: off.
    # Counted in the cache backend: with Redis, every instance shares the count.
    rate_limit: str = ""
    # Limits on what a client may send (checked before any upstream call).
    max_body_bytes: int = 100_000
    max_document_bytes: int = 20_000
    max_tokens: int = 2_000
    max_depth: int = 12
    max_aliases: int = 30
    max_cost: int = 2_500  # leads a query may ask for, page sizes multiplied through nested lists
    max_writes: int = 10  # mutation fields (leads created) per operation
    max_batch: int = 10  # operations in one batched request (a JSON array body)
    introspection: bool = True
    # The direct walk over plain objects (graphql/execution/): off, or on a strawberry/graphql-core the
    # compat check does not know, graphql-core's own executor runs every operation.
    fast_execution: bool = True
    cors_origins: tuple[str, ...] = ()  # allowed browser origins; empty: same-origin only
    # Shutdown.
    shutdown_grace: float = 20.0  # seconds in-flight requests get to finish after SIGTERM
    # Live data (subscriptions, datasource/live/): seconds between two upstream polls of one watched window.
    live_interval: float = 5.0
    live_max_per_connection: int = 25  # subscriptions one WebSocket connection may hold
    live_max_per_caller: int = 200  # subscriptions one caller may hold on one instance, all transports
    live_init_timeout: float = 10.0  # seconds a WebSocket may stay open without `connection_init`
    live_keepalive: float = 15.0  # seconds between keep-alive pings (WebSocket pings, SSE/multipart heartbeats)
    # Persisted documents (graphql/persisted.py): manifest files, Apollo's automatic persisted queries (APQ),
    # and the safelist (only manifest documents run).
    persisted_documents: tuple[str, ...] = ()
    apq: bool = True
    apq_cache_bytes: int = 4 * 1024 * 1024  # registered texts held in process (bytes of text, LRU)
    apq_ttl: float = 86_400.0  # how long a registration lives in a shared cache backend (Redis)
    allow_arbitrary_documents: bool = True

    @property
    def graphiql_on(self) -> bool:
        """GraphiQL is served: as set, else only while arbitrary documents may run (the safelist turns it off)."""
        return self.allow_arbitrary_documents if self.graphiql is None else self.graphiql

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        s = cls(
            upstream_url=env.get("GATEWAY_UPSTREAM_URL", DEFAULT_UPSTREAM_URL).rstrip("/"),
            cache_url=env.get("GATEWAY_CACHE_URL", "memory://"),
            cache_secret=env.get("GATEWAY_CACHE_SECRET") or None,
            cache_ttl=_number(env, "GATEWAY_CACHE_TTL", 30.0, minimum=0),
            cache_swr=_number(env, "GATEWAY_CACHE_SWR", 0.0, minimum=0),
            cache_stale_if_error=_number(env, "GATEWAY_CACHE_STALE_IF_ERROR", 300.0, minimum=0),
            cache_max_leads=int(_number(env, "GATEWAY_CACHE_MAX_LEADS", 20_000, minimum=100, integer=True)),
            result_cache_bytes=int(_number(env, "GATEWAY_RESULT_CACHE_BYTES", 16 * 1024 * 1024, minimum=0,
                                           integer=True)),
            document_cache_bytes=int(_number(env, "GATEWAY_DOCUMENT_CACHE_BYTES", 1024 * 1024, minimum=0,
                                             integer=True)),
            max_page_size=int(_number(env, "GATEWAY_MAX_PAGE_SIZE", 100, minimum=1, integer=True)),
            upstream_timeout=_number(env, "GATEWAY_UPSTREAM_TIMEOUT", 10.0, minimum=0.001),
            upstream_max_bytes=int(_number(env, "GATEWAY_UPSTREAM_MAX_BYTES", 8 * 1024 * 1024, minimum=1024,
                                           integer=True)),
            lookup_max_pages=int(_number(env, "GATEWAY_LOOKUP_MAX_PAGES", 10, minimum=1, integer=True)),
            graphiql=_flag(env, "GATEWAY_GRAPHIQL", None),
            demo_token=env.get("GATEWAY_DEMO_TOKEN") or None,
            upstream_retries=int(_number(env, "GATEWAY_UPSTREAM_RETRIES", 2, minimum=0, integer=True)),
            upstream_retry_after_max=_number(env, "GATEWAY_UPSTREAM_RETRY_AFTER_MAX", 5.0, minimum=0),
            upstream_concurrency=int(_number(env, "GATEWAY_UPSTREAM_CONCURRENCY", 32, minimum=1, integer=True)),
            upstream_transport=_choice(env, "GATEWAY_UPSTREAM_TRANSPORT", "aiohttp", ("aiohttp", "httpx")),
            request_timeout=_number(env, "GATEWAY_REQUEST_TIMEOUT", 20.0, minimum=0.01),
            breaker_window=_number(env, "GATEWAY_BREAKER_WINDOW", 10.0, minimum=0.1),
            breaker_min_calls=int(_number(env, "GATEWAY_BREAKER_MIN_CALLS", 20, minimum=1, integer=True)),
            breaker_failure_rate=_fraction(env, "GATEWAY_BREAKER_FAILURE_RATE", 0.5),
            breaker_min_callers=int(_number(env, "GATEWAY_BREAKER_MIN_CALLERS", 3, minimum=1, integer=True)),
            breaker_cooldown=_number(env, "GATEWAY_BREAKER_COOLDOWN", 5.0, minimum=0.01),
            caller_breaker_min_calls=int(_number(env, "GATEWAY_CALLER_BREAKER_MIN_CALLS", 10, minimum=1,
                                                 integer=True)),
            caller_share=_fraction(env, "GATEWAY_CALLER_SHARE", 0.5),
            upstream_queue_max=int(_number(env, "GATEWAY_UPSTREAM_QUEUE_MAX", 100, minimum=0, integer=True)),
            upstream_queue_timeout=_number(env, "GATEWAY_UPSTREAM_QUEUE_TIMEOUT", 5.0, minimum=0),
            rate_limit=env.get("GATEWAY_RATE_LIMIT", "").strip(),
            max_body_bytes=int(_number(env, "GATEWAY_MAX_BODY_BYTES", 100_000, minimum=256, integer=True)),
            max_document_bytes=int(_number(env, "GATEWAY_MAX_DOCUMENT_BYTES", 20_000, minimum=64, integer=True)),
            max_tokens=int(_number(env, "GATEWAY_MAX_TOKENS", 2_000, minimum=10, integer=True)),
            max_depth=int(_number(env, "GATEWAY_MAX_DEPTH", 12, minimum=2, integer=True)),
            max_aliases=int(_number(env, "GATEWAY_MAX_ALIASES", 30, minimum=1, integer=True)),
            max_writes=int(_number(env, "GATEWAY_MAX_WRITES", 10, minimum=1, integer=True)),
            max_cost=int(_number(env, "GATEWAY_MAX_COST", 2_500, minimum=1, integer=True)),
            max_batch=int(_number(env, "GATEWAY_MAX_BATCH", 10, minimum=0, integer=True)),
            introspection=_flag(env, "GATEWAY_INTROSPECTION", True),
            fast_execution=_flag(env, "GATEWAY_FAST_EXECUTION", True),
            cors_origins=tuple(o.strip() for o in env.get("GATEWAY_CORS_ORIGINS", "").split(",") if o.strip()),
            shutdown_grace=_number(env, "GATEWAY_SHUTDOWN_GRACE", 20.0, minimum=0),
            live_interval=_number(env, "GATEWAY_LIVE_INTERVAL", 5.0, minimum=1),
            live_max_per_connection=int(_number(env, "GATEWAY_LIVE_MAX_PER_CONNECTION", 25, minimum=1,
                                                integer=True)),
            live_max_per_caller=int(_number(env, "GATEWAY_LIVE_MAX_PER_CALLER", 200, minimum=1, integer=True)),
            live_init_timeout=_number(env, "GATEWAY_LIVE_INIT_TIMEOUT", 10.0, minimum=0.1),
            live_keepalive=_number(env, "GATEWAY_LIVE_KEEPALIVE", 15.0, minimum=1),
            persisted_documents=tuple(p.strip() for p in env.get("GATEWAY_PERSISTED_DOCUMENTS", "").split(",")
                                      if p.strip()),
            apq=_flag(env, "GATEWAY_APQ", True),
            apq_cache_bytes=int(_number(env, "GATEWAY_APQ_CACHE_BYTES", 4 * 1024 * 1024, minimum=0, integer=True)),
            apq_ttl=_number(env, "GATEWAY_APQ_TTL", 86_400.0, minimum=1),
            allow_arbitrary_documents=_flag(env, "GATEWAY_ALLOW_ARBITRARY_DOCUMENTS", True),
        )
        if not s.upstream_url.startswith(("http://", "https://")):
            raise ConfigError(f"GATEWAY_UPSTREAM_URL must be an http(s) URL, got {s.upstream_url!r}")
        if not _valid_cache_url(s.cache_url):
            raise ConfigError(f"GATEWAY_CACHE_URL must be memory:// or redis://host[:port][/db], got {s.cache_url!r}")
        if s.rate_limit:  # checked at start-up, not on the first request (http/ratelimit.py parses it again)
            from limits import parse_many

            try:
                rates = parse_many(s.rate_limit)
            except ValueError as e:
                raise ConfigError(f'GATEWAY_RATE_LIMIT must be rates like "20/second;600/minute" (the limits '
                                  f'library\'s notation), got {s.rate_limit!r}: {e}') from None
            if any(rate.amount < 1 for rate in rates):
                raise ConfigError(f"GATEWAY_RATE_LIMIT must allow at least 1 request per period, got {s.rate_limit!r}")
        return s

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


def _valid_cache_url(url: str) -> bool:
    if url == "memory://":
        return True
    parsed = urlparse(url)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        return False
    db = parsed.path.lstrip("/")
    return parsed.scheme == "redis" and bool(parsed.hostname) and port_ok and (db == "" or db.isdigit())


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, minimum=0)
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be a fraction in (0, 1], got {env.get(name)!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
