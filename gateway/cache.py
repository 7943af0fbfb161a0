"""``PageCache``: upstream pages kept fresh for a TTL and fetched once when asked for concurrently.

Keys are ``leads:<caller>:<canonical params>`` where ``<caller>`` is an HMAC of the bearer token under
a per-deployment secret (``GATEWAY_CACHE_SECRET``; random per process when unset), so one caller is
never served another's pages and the token itself never reaches a key, a value or a log.
The in-process backend stores the parsed ``LeadPage`` records as they are (no re-parsing on a hit).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiocache import SimpleMemoryCache

from gateway.upstream.client import PageRequest
from gateway.upstream.models import LeadPage

Fetch = Callable[[], Awaitable[LeadPage]]


class PageCache:
    def __init__(self, *, ttl: float, secret: str | None = None) -> None:
        self.ttl = ttl
        # Random per process when unset: still correct, but entries are not shareable across instances.
        self._secret = (secret or secrets.token_hex(32)).encode()
        self._store = SimpleMemoryCache()
        self._inflight: dict[str, asyncio.Task[LeadPage]] = {}

    def caller(self, token: str) -> str:
        """The caller's key part: a keyed hash of the token, never the token."""
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def key(caller: str, request: PageRequest) -> str:
        return f"leads:{caller}:{urlencode(request.params)}"

    async def get_or_fetch(self, caller: str, request: PageRequest, fetch: Fetch) -> LeadPage:
        """A fresh cached page, else the result of one shared call to ``fetch``.

        Concurrent callers with the same key await the same task; ``shield`` keeps one waiter's
        cancellation from cancelling the call the others wait on. A failure reaches every waiter and
        is not cached, so the next request tries again.
        """
        key = self.key(caller, request)
        if self.ttl > 0:
            hit = await self._store.get(key)
            if hit is not None:
                return hit
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fill(key, fetch))
            self._inflight[key] = task
            task.add_done_callback(lambda t, k=key: self._done(k, t))
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Task[LeadPage]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here so a call whose waiters all left is not reported as lost

    async def _fill(self, key: str, fetch: Fetch) -> LeadPage:
        page = await fetch()
        if self.ttl > 0:
            await self._store.set(key, page, ttl=self.ttl)
        return page

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self._store.clear()
