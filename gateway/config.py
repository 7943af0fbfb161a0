"""One immutable ``Settings`` read from the environment (names fixed by CONTRACT.md)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_UPSTREAM_URL = "https://call.aiployees.com/api"
UPSTREAM_MAX_PER_PAGE = 100  # the upstream rejects per_page > 100 with a 422


class ConfigError(ValueError):
    """An environment variable has a value the gateway cannot use."""


@dataclass(frozen=True)
class Settings:
    upstream_url: str = DEFAULT_UPSTREAM_URL
    cache_url: str = "memory://"
    cache_secret: str | None = None  # None: a random key per process (see cache.py)
    cache_ttl: float = 30.0
    max_page_size: int = 100
    upstream_timeout: float = 10.0
    # How many upstream pages of 100 a by-id lookup may scan (no single-lead endpoint upstream).
    lookup_max_pages: int = 10
    graphiql: bool = True
    # Token used for requests without one; set by ``serve --demo`` (GATEWAY_DEMO_TOKEN), never in production.
    demo_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        s = cls(
            upstream_url=env.get("GATEWAY_UPSTREAM_URL", DEFAULT_UPSTREAM_URL).rstrip("/"),
            cache_url=env.get("GATEWAY_CACHE_URL", "memory://"),
            cache_secret=env.get("GATEWAY_CACHE_SECRET") or None,
            cache_ttl=_number(env, "GATEWAY_CACHE_TTL", 30.0, minimum=0),
            max_page_size=int(_number(env, "GATEWAY_MAX_PAGE_SIZE", 100, minimum=1, integer=True)),
            upstream_timeout=_number(env, "GATEWAY_UPSTREAM_TIMEOUT", 10.0, minimum=0.001),
            lookup_max_pages=int(_number(env, "GATEWAY_LOOKUP_MAX_PAGES", 10, minimum=1, integer=True)),
            graphiql=_flag(env, "GATEWAY_GRAPHIQL", True),
            demo_token=env.get("GATEWAY_DEMO_TOKEN") or None,
        )
        if not s.upstream_url.startswith(("http://", "https://")):
            raise ConfigError(f"GATEWAY_UPSTREAM_URL must be an http(s) URL, got {s.upstream_url!r}")
        if not s.cache_url.startswith("memory://"):
            raise ConfigError(f"GATEWAY_CACHE_URL: only memory:// is supported so far, got {s.cache_url!r}")
        return s

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


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


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
