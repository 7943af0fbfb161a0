"""How the instances polling and the instances serving subscribers meet: who polls a group, and how its
changes reach every subscriber.

``LocalBus`` (``memory://`` cache): this process is alone, so it polls every group it serves.

``RedisBus`` (Redis cache): the poller of a group holds a lease on ``lg1:live:<group>:lease`` (redis-py's
``Lock``, renewed every half interval, expiring after ``1.5`` intervals, so a dead poller is replaced within
two intervals); each change is published on ``lg1:live:<group>`` and kept under ``lg1:live:<group>:last``,
where an instance that starts serving the group finds the current state without polling. One subscribed
connection per process listens to the channels of the groups it serves, and to ``lg1:generations``: a write
by a caller on any instance makes that caller's pollers poll at once.
While Redis is unreachable every instance polls the groups it serves itself (as the page cache falls back
to fetching on its own), and publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import urlparse

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError
from redis.asyncio.retry import Retry

from gateway.datasource.cache.generations import CHANNEL as GENERATIONS

log = logging.getLogger("gateway.datasource.live")

LAST_SECONDS = 3600  # a group's last state is kept this long after its last change
PING_SECONDS = 2.0
DOWN_SECONDS = 1.0  # after a failed operation, Redis is not asked again for this long
_REDIS_ERRORS = (RedisError, OSError, ConnectionError, asyncio.TimeoutError)

Deliver = Callable[[str, bytes], None]  # (group id, published state)
Poke = Callable[[str], None]  # (caller): it wrote


def channel(group: str) -> str:
    return f"lg1:live:{group}"


class LocalBus:
    """One process: it polls what it serves; a write pokes its pollers through the page cache."""

    shared = False

    def start(self, deliver: Deliver, poke: Poke) -> None:
        pass

    async def join(self, group: str) -> None:
        pass

    async def leave(self, group: str) -> None:
        pass

    async def hold(self, group: str, owner: str, seconds: float) -> bool:
        return True

    async def release(self, group: str, owner: str) -> None:
        pass

    async def last(self, group: str) -> bytes | None:
        return None

    async def publish(self, group: str, body: bytes, *, keep: bool = True) -> None:
        pass

    async def close(self) -> None:
        pass


class RedisBus:
    """Instances sharing a Redis: one poller per group cluster-wide, changes fanned out by pub/sub."""

    shared = True

    def __init__(self, url: str, op_timeout: float = 0.5) -> None:
        u = urlparse(url)
        options = dict(host=u.hostname or "127.0.0.1", port=u.port or 6379, db=int(u.path.lstrip("/") or 0),
                       password=u.password, socket_connect_timeout=op_timeout)
        # No retries: a failed operation means "Redis down", decided at once (see ``_usable``).
        self._redis = Redis(**options, socket_timeout=op_timeout, retry=Retry(NoBackoff(), 0))
        self._down_until = 0.0
        # Its own connection without a read timeout (it waits for messages) nor retries (it reconnects itself).
        self._subscriber = Redis(**options, retry=Retry(NoBackoff(), 0))
        self._groups: set[str] = set()
        self._locks: dict[tuple[str, str], Lock] = {}  # by (group, owner: one runner of it), while held
        self._pubsub = None
        self._task: asyncio.Task | None = None
        self._deliver: Deliver | None = None
        self._poke: Poke | None = None

    def start(self, deliver: Deliver, poke: Poke) -> None:
        self._deliver, self._poke = deliver, poke
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    def _usable(self) -> bool:
        """False for a second after an operation failed: while Redis is down, nothing waits for it."""
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._usable():
            log.warning("live data: Redis unreachable (%s); each instance polls what it serves", type(exc).__name__)
        self._down_until = time.monotonic() + DOWN_SECONDS

    # --- who polls ------------------------------------------------------------------------------------

    async def hold(self, group: str, owner: str, seconds: float) -> bool:
        """Take or keep the group's lease; True: this process polls it. Redis unreachable: True (each
        instance polls on its own rather than nobody)."""
        if not self._usable():
            return True
        lock = self._locks.get((group, owner))
        try:
            if lock is not None:
                try:
                    await lock.extend(seconds, replace_ttl=True)
                    return True
                except LockError:  # expired and perhaps taken over: try again like anyone else
                    self._locks.pop((group, owner), None)
            lock = self._redis.lock(f"lg1:live:{group}:lease", timeout=seconds, blocking=False, thread_local=False)
            if await lock.acquire(token=owner):
                self._locks[(group, owner)] = lock
                return True
            return False
        except _REDIS_ERRORS as exc:
            self._failed(exc)
            return True

    async def release(self, group: str, owner: str) -> None:
        lock = self._locks.pop((group, owner), None)
        if lock is not None:
            with contextlib.suppress(LockError, *_REDIS_ERRORS):
                await lock.release()

    # --- what changed -------------------------------------------------------------------------------

    async def last(self, group: str) -> bytes | None:
        if not self._usable():
            return None
        try:
            return await self._redis.get(f"lg1:live:{group}:last")
        except _REDIS_ERRORS as exc:
            self._failed(exc)
            return None

    async def publish(self, group: str, body: bytes, *, keep: bool = True) -> None:
        """Send a new state to every instance serving the group; ``keep``: also as its last state."""
        if not self._usable():
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if keep:
                    pipe.set(f"lg1:live:{group}:last", body, ex=LAST_SECONDS)
                else:
                    pipe.delete(f"lg1:live:{group}:last")
                pipe.publish(channel(group), body)
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            self._failed(exc)

    async def join(self, group: str) -> None:
        self._groups.add(group)
        if self._pubsub is not None:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._pubsub.subscribe(channel(group))

    async def leave(self, group: str) -> None:
        self._groups.discard(group)
        if self._pubsub is not None:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._pubsub.unsubscribe(channel(group))

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                self._pubsub = pubsub  # first: a group joining meanwhile subscribes on it too
                await pubsub.subscribe(GENERATIONS, *(channel(g) for g in self._groups))
                # What was published while the connection was down (or not yet up) is lost: read the last states.
                for group in list(self._groups):
                    if (body := await self.last(group)) is not None:
                        self._deliver(group, body)
                delay = 0.1
                pinged = pong = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=PING_SECONDS / 2)
                    now = time.monotonic()
                    if message is not None:
                        if message["type"] == "pong":
                            pong = now
                        elif message["type"] == "message":
                            self._on_message(message["channel"], message["data"])
                    if now - pinged >= PING_SECONDS:
                        await pubsub.ping()
                        pinged = now
                    if now - pong > 2.5 * PING_SECONDS:
                        raise ConnectionError("no pong on the live subscription")
            except asyncio.CancelledError:
                raise
            except _REDIS_ERRORS as exc:
                log.debug("live subscription: %s", type(exc).__name__)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _on_message(self, name: bytes, data: bytes) -> None:
        name = name.decode() if isinstance(name, bytes) else str(name)
        if name == GENERATIONS:
            caller = (data.decode() if isinstance(data, bytes) else str(data)).split(" ")[0]
            self._poke(caller)
        elif name.startswith("lg1:live:"):
            self._deliver(name[len("lg1:live:"):], data)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for group, owner in list(self._locks):
            await self.release(group, owner)
        with contextlib.suppress(Exception):
            await self._subscriber.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose()
