"""The per-caller request rate limit (``GATEWAY_RATE_LIMIT``), on the ``limits`` library's asyncio API.

What: each caller (the HMAC of its bearer token, as in the cache keys) may send so many GraphQL operations
per period ("20/second;600/minute": every rate holds); a batch costs its number of operations. Over it, the
view answers 429 ``RATE_LIMITED`` with ``retryAfter`` before anything is looked up or executed.

Why here: it protects the upstream and the other tenants from one caller's flood (CONTRACT, "Tenant
isolation") at the cheapest point, before any work. The counts live where the cache does: in this process
for ``memory://``, in Redis for ``redis://`` (keys under ``leads-gateway:ratelimit``, apart from the
cache's), so every instance sharing the Redis (and ``GATEWAY_CACHE_SECRET``) counts against one limit.

Redis unreachable: the limiter fails open. A rate limit must never turn a Redis outage into a gateway
outage, so the request is allowed (counted in ``failed_open``, a warning at most every 30 s), each Redis
call is bounded by a short timeout without retries, and after a failure Redis is left alone for a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import redis.asyncio as aioredis
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from gateway.config import Settings

log = logging.getLogger("gateway.ratelimit")

KEY_PREFIX = "leads-gateway:ratelimit"  # the cache's keys start with "lg1:"
REDIS_TIMEOUT = 0.25  # connect and per-command; a healthy Redis answers in about a millisecond
RETRY_REDIS_AFTER = 1.0  # seconds without asking Redis after it failed (those requests are allowed at once)
WARN_EVERY = 30.0


class RateLimiter:
    """``check(caller, cost)``: None when allowed, else the whole seconds after which the caller may retry.

    ``refused`` counts refused requests and ``failed_open`` the ones allowed unchecked (Redis unreachable).
    """

    def __init__(self, rates: list[RateLimitItem], storage: Storage,
                 pool: aioredis.ConnectionPool | None = None) -> None:
        self.rates = rates
        self.storage = storage
        # Moving window: exact (no burst of twice the rate across a window boundary, as a fixed window
        # allows) and its reset time, when the oldest counted request leaves the window, is an honest
        # Retry-After; it keeps one timestamp per allowed request, fine for request rates.
        self.strategy = MovingWindowRateLimiter(storage)
        self._pool = pool
        self.refused = 0
        self.failed_open = 0
        self._skip_until = 0.0  # monotonic: Redis failed, requests are allowed without asking it
        self._warned_at: float | None = None
        self._down = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """None when ``GATEWAY_RATE_LIMIT`` is empty (no limit)."""
        if not settings.rate_limit:
            return None
        rates = parse_many(settings.rate_limit)  # already validated by Settings.from_env
        if settings.cache_url.startswith("redis://"):
            # Our own pool: short timeouts, no retries (redis-py's default retries would make every request
            # wait on a dead Redis), and closed with the app.
            pool = aioredis.ConnectionPool.from_url(settings.cache_url, socket_connect_timeout=REDIS_TIMEOUT,
                                                    socket_timeout=REDIS_TIMEOUT)
            storage = RedisStorage(f"async+{settings.cache_url}", implementation="redispy", key_prefix=KEY_PREFIX,
                                   wrap_exceptions=True, connection_pool=pool)
            return cls(rates, storage, pool)
        return cls(rates, MemoryStorage())

    async def check(self, caller: str, cost: int = 1) -> int | None:
        if self._down and time.monotonic() < self._skip_until:
            self.failed_open += 1
            return None
        try:
            for rate in self.rates:
                # A batch larger than a whole period's allowance takes the whole allowance (never refused forever).
                if not await self.strategy.hit(rate, caller, cost=min(cost, rate.amount)):
                    reset_at, _ = await self.strategy.get_window_stats(rate, caller)
                    self.refused += 1
                    return max(1, math.ceil(reset_at - time.time()))
        except (StorageError, RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return None
        if self._down:
            self._down = False
            log.warning("rate limit storage reachable again: requests are counted again")
        return None

    def _failed(self, exc: Exception) -> None:
        self.failed_open += 1
        self._down = True
        now = time.monotonic()
        self._skip_until = now + RETRY_REDIS_AFTER
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            cause = getattr(exc, "storage_error", exc)
            log.warning("rate limit storage unreachable (%s: %s): requests are allowed unchecked (%d so far)",
                        type(cause).__name__, cause, self.failed_open)

    async def close(self) -> None:
        if self._pool is not None:
            try:
                await self._pool.disconnect()
            except Exception:  # closing a dead connection must not block shutdown
                pass
        else:
            await self.storage.reset()
