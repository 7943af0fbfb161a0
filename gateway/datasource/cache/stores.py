"""Where cached pages live: in this process (bounded) or in Redis (shared by every instance).

Both stores sit on aiocache (``SimpleMemoryCache`` / ``RedisCache``) and index each caller+filter
group, so the planner can ask "which pages of this list are fresh?" and reuse them for any window.
Only the Redis store is ``shared``: it also holds the cross-instance leases and failure notes that
make a burst spread over several instances one upstream call.

Both also keep each caller's *generation* (a number in every key of that caller's cached data: a write
bumps it, and everything cached before is unreachable at once, on every instance sharing the store) and
*records* (small JSON values with an expiry: the idempotency records of writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from urllib.parse import urlparse

from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import NullSerializer
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockNotOwnedError, RedisError

from gateway.datasource.cache.codec import Entry, decode, encode
from gateway.datasource.cache.generations import BUMP, CHANNEL, GenerationWatch, generation_key

log = logging.getLogger("gateway.datasource.cache")

GENERATION_SECONDS = 24 * 3600  # a generation outlives every entry stored under it (minutes at most)
RECORDS_IN_MEMORY = 100_000  # records kept by the in-process store (oldest dropped first)


class MemoryStore:
    """In-process store: parsed pages kept as objects (no decoding on a hit), bounded by the number of
    leads they hold (``max_leads``, a proxy for bytes: pages range from 1 to 100 leads); the oldest
    stored pages are evicted first."""

    shared = False
    backend = "memory"
    state = "up"

    def __init__(self, max_leads: int) -> None:
        self.max_leads = max_leads
        self.leads = 0  # leads held now
        self._cache = SimpleMemoryCache(timeout=None)  # no per-call wait_for: these are dict operations
        self._order: OrderedDict[str, tuple[str, float, int]] = OrderedDict()  # key -> (group, expires, weight)
        self._groups: dict[str, set[str]] = {}
        self._generations: dict[str, int] = {}
        self._records: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # key -> (expires, value)

    def __len__(self) -> int:
        return len(self._order)

    async def get(self, key: str) -> Entry | None:
        meta = self._order.get(key)
        if meta is None:
            return None
        if meta[1] <= time.time():
            await self._drop(key)
            return None
        return await self._cache.get(key)

    async def put(self, key: str, group: str, entry: Entry, keep_for: float) -> None:
        if key in self._order:
            await self._drop(key)
        weight = max(1, len(entry.page.items))
        self._order[key] = (group, entry.fetched_at + keep_for, weight)
        self.leads += weight
        self._groups.setdefault(group, set()).add(key)
        await self._cache.set(key, entry)
        while self.leads > self.max_leads and len(self._order) > 1:
            await self._drop(next(iter(self._order)))

    async def group(self, group: str, since: float) -> list[Entry]:
        entries = []
        for key in list(self._groups.get(group, ())):
            entry = await self.get(key)
            if entry is not None and entry.fetched_at >= since:
                entries.append(entry)
        return entries

    async def _drop(self, key: str) -> None:
        group, _, weight = self._order.pop(key)
        self.leads -= weight
        keys = self._groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._groups[group]
        await self._cache.delete(key)

    async def generation(self, caller: str) -> int:
        return self._generations.get(caller, 0)

    async def bump(self, caller: str) -> int:
        generation = self._generations[caller] = self._generations.get(caller, 0) + 1
        return generation

    async def get_record(self, key: str) -> dict | None:
        hit = self._records.get(key)
        if hit is None:
            return None
        if hit[0] <= time.time():
            del self._records[key]
            return None
        return hit[1]

    async def put_record(self, key: str, value: dict, seconds: float) -> None:
        self._records.pop(key, None)
        self._records[key] = (time.time() + seconds, value)
        while len(self._records) > RECORDS_IN_MEMORY:
            self._records.popitem(last=False)

    async def delete_record(self, key: str) -> None:
        self._records.pop(key, None)

    async def close(self) -> None:
        await self._cache.clear()
        self._order.clear()
        self._groups.clear()
        self.leads = 0


class RedisStore:
    """Shared store on Redis: JSON values with an expiry, a sorted set per group (score: fetched_at),
    leases for cross-instance coalescing, and short-lived failure notes.

    A lease is redis-py's ``Lock`` on ``{key}@lease`` with the holder's ``owner`` as its token: only that
    owner renews or releases it, and one that expired (or was taken over) is simply gone. Held locks are
    kept by key (one per key: a new lease on a key replaces a stale one), each its own lock object, so
    ``thread_local=False``: every task of the event loop shares one thread, and thread-local storage
    would protect nothing.
    """

    shared = True
    backend = "redis"

    def __init__(self, url: str, op_timeout: float = 0.5) -> None:
        u = urlparse(url)
        db = int(u.path.lstrip("/") or 0)
        self._cache = RedisCache(endpoint=u.hostname or "127.0.0.1", port=u.port or 6379, db=db,
                                 password=u.password, timeout=op_timeout, create_connection_timeout=op_timeout,
                                 serializer=NullSerializer(encoding=None))  # values are codec.py's JSON
        self._redis = self._cache.client  # redis.asyncio.Redis, for the commands aiocache does not wrap
        self._leases: dict[str, tuple[str, Lock]] = {}  # key -> (owner, its lock), while held
        # Its own connection, without the operations' timeout (a subscription waits for messages), and without
        # redis-py's retries: the watch reconnects itself, and must learn of every break.
        self.generations = GenerationWatch(Redis(host=u.hostname or "127.0.0.1", port=u.port or 6379, db=db,
                                                 password=u.password, socket_connect_timeout=op_timeout,
                                                 retry=Retry(NoBackoff(), 0)))
        self._bump = self._redis.register_script(BUMP)

    async def ping(self) -> None:
        await self._cache.raw("ping")

    async def get(self, key: str) -> Entry | None:
        raw = await self._cache.get(key)
        return _decode_or_none(raw)

    async def put(self, key: str, group: str, entry: Entry, keep_for: float) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(key, encode(entry), px=max(1, int(keep_for * 1000)))
            pipe.zadd(group, {key: entry.fetched_at})
            pipe.zremrangebyscore(group, "-inf", time.time() - keep_for)
            pipe.pexpire(group, max(1, int(keep_for * 1000)))
            await pipe.execute()

    async def group(self, group: str, since: float) -> list[Entry]:
        keys = await self._redis.zrangebyscore(group, since, "+inf")
        if not keys:
            return []
        raws = await self._redis.mget(keys)
        return [e for raw in raws if (e := _decode_or_none(raw)) is not None and e.fetched_at >= since]

    async def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        lock = self._redis.lock(f"{key}@lease", timeout=seconds, blocking=False, thread_local=False)
        if not await lock.acquire(token=owner):
            return False
        self._leases[key] = (owner, lock)  # Redis had no holder, so any lock kept for this key is stale
        return True

    async def renew_lease(self, key: str, owner: str, seconds: float) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == owner:
            with contextlib.suppress(LockNotOwnedError):  # expired or taken over: nothing to renew
                await held[1].extend(seconds, replace_ttl=True)

    async def release_lease(self, key: str, owner: str) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == owner:
            del self._leases[key]
            with contextlib.suppress(LockNotOwnedError):  # expired or taken over: nothing to release
                await held[1].release()

    async def poll(self, key: str) -> tuple[Entry | None, dict | None, bool]:
        """One round trip: the entry, a failure note, and whether the lease is still held."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.get(f"{key}@failure")
            pipe.exists(f"{key}@lease")
            raw, failure, held = await pipe.execute()
        return _decode_or_none(raw), json.loads(failure) if failure else None, bool(held)

    async def put_failure(self, key: str, failure: dict, seconds: float) -> None:
        await self._redis.set(f"{key}@failure", json.dumps(failure), px=int(seconds * 1000))

    async def generation(self, caller: str) -> int:
        """The caller's generation: from this process's map while the subscription is up (no round trip),
        else from Redis (``generations.py``)."""
        watch = self.generations
        watch.start()
        if watch.live:
            await asyncio.sleep(0)  # a bump's message that arrived with this request is read first
            known = watch.known(caller)
            if known is not None:
                return known
        epoch = watch.epoch
        raw = await self._redis.get(generation_key(caller))
        try:
            generation = int(raw) if raw is not None else 0
        except ValueError:
            generation = 0
        watch.learn(caller, generation, epoch)
        return generation

    async def bump(self, caller: str) -> int:
        """A new generation for the caller, published; returns once this process has received it (so every
        subscriber has been sent it) or after a short wait."""
        watch = self.generations
        watch.start()
        epoch = watch.epoch
        expected = watch.expect(caller)
        try:
            generation = int(await self._bump(keys=[generation_key(caller)], args=[
                int(time.time() * 1000), GENERATION_SECONDS * 1000, CHANNEL, caller]))
        except BaseException:
            watch.forget(expected)
            raise
        watch.learn(caller, generation, epoch)  # this process knows at once, whatever the message does
        await watch.delivered(expected, generation)
        return generation

    async def get_record(self, key: str) -> dict | None:
        raw = await self._redis.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            log.warning("dropping an unreadable record")
            return None
        return value

    async def put_record(self, key: str, value: dict, seconds: float) -> None:
        await self._redis.set(key, json.dumps(value, separators=(",", ":")), px=max(1, int(seconds * 1000)))

    async def delete_record(self, key: str) -> None:
        await self._redis.delete(key)

    async def close(self) -> None:
        await self.generations.close()
        await self._redis.aclose()


@contextlib.asynccontextmanager
async def holding(store, key: str, owner: str, seconds: float):
    """Around the work of a lease's holder (the lease on ``key`` already taken by ``owner``): renewed every
    third of ``seconds`` while the block runs, released when it ends, after whatever the block stored."""
    async def renew() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(seconds / 3)
                await store.renew_lease(key, owner, seconds)

    renewing = asyncio.get_running_loop().create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        await store.release_lease(key, owner)


class ResilientStore:
    """Redis, falling back to a process-local ``MemoryStore`` while Redis is unreachable.

    A cache failure never fails a request: the first error marks Redis down and every operation goes to
    the fallback; after ``retry_after`` seconds the next operation tries Redis again and, if it answers,
    the gateway is back on the shared store. While down the store is not ``shared`` (no leases).
    """

    backend = "redis"

    def __init__(self, redis: RedisStore, fallback: MemoryStore, retry_after: float = 1.0) -> None:
        self.redis = redis
        self.fallback = fallback
        self.retry_after = retry_after
        self.down_since: float | None = None
        self._next_try = 0.0
        # Callers who wrote while Redis was down: their shared generation is bumped once it is back, so the
        # pages Redis kept from before the write are not served again.
        self._owed_bumps: set[str] = set()

    @property
    def shared(self) -> bool:
        return self.down_since is None

    @property
    def state(self) -> str:
        return "up" if self.down_since is None else "degraded"

    async def _call(self, name: str, *args, fallback=None):
        if self.down_since is not None and time.monotonic() < self._next_try:
            return await fallback(*args) if fallback else None
        try:
            if self.down_since is not None and self._owed_bumps:
                await self._pay_bumps()  # first, so no read after the outage sees a generation from before a write
            result = await getattr(self.redis, name)(*args)
        except (OSError, asyncio.TimeoutError, ConnectionError, RedisError) as exc:
            if self.down_since is None:
                self.down_since = time.time()
                log.warning("Redis cache unreachable (%s); serving from the in-process cache", type(exc).__name__)
            self._next_try = time.monotonic() + self.retry_after
            return await fallback(*args) if fallback else None
        if self.down_since is not None:
            log.warning("Redis cache reachable again after %.1f s", time.time() - self.down_since)
            self.down_since = None
        return result

    async def _pay_bumps(self) -> None:
        """Bump in Redis the generation of every caller who wrote while it was down (raises while it still is)."""
        for caller in list(self._owed_bumps):
            await self.redis.bump(caller)
            self._owed_bumps.discard(caller)

    async def get(self, key: str) -> Entry | None:
        return await self._call("get", key, fallback=self.fallback.get)

    async def put(self, key: str, group: str, entry: Entry, keep_for: float) -> None:
        await self._call("put", key, group, entry, keep_for, fallback=self.fallback.put)

    async def group(self, group: str, since: float) -> list[Entry]:
        return await self._call("group", group, since, fallback=self.fallback.group)

    async def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        result = await self._call("try_lease", key, owner, seconds)
        return True if result is None else result  # Redis down: this process just fetches

    async def renew_lease(self, key: str, owner: str, seconds: float) -> None:
        await self._call("renew_lease", key, owner, seconds)

    async def release_lease(self, key: str, owner: str) -> None:
        await self._call("release_lease", key, owner)

    async def poll(self, key: str) -> tuple[Entry | None, dict | None, bool]:
        result = await self._call("poll", key)
        return (None, None, False) if result is None else result

    async def put_failure(self, key: str, failure: dict, seconds: float) -> None:
        await self._call("put_failure", key, failure, seconds)

    async def generation(self, caller: str) -> int:
        return await self._call("generation", caller, fallback=self.fallback.generation)

    async def bump(self, caller: str) -> int:
        generation = await self._call("bump", caller)
        if generation is None:  # Redis down: this process's fallback forgets now, Redis when it is back
            self._owed_bumps.add(caller)
            return await self.fallback.bump(caller)
        return generation

    async def get_record(self, key: str) -> dict | None:
        return await self._call("get_record", key, fallback=self.fallback.get_record)

    async def put_record(self, key: str, value: dict, seconds: float) -> None:
        await self._call("put_record", key, value, seconds, fallback=self.fallback.put_record)

    async def delete_record(self, key: str) -> None:
        await self._call("delete_record", key, fallback=self.fallback.delete_record)

    async def probe(self) -> None:
        """Ask Redis now (readiness checks); updates ``state``."""
        await self._call("ping")

    async def close(self) -> None:
        await self.fallback.close()
        try:
            await self.redis.close()
        except Exception:  # closing a dead connection must not block shutdown
            pass



def _decode_or_none(raw) -> Entry | None:
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValueError:
        log.warning("dropping an unreadable cache entry")  # no key: it carries the caller hash
        return None
