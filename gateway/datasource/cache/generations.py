"""Callers' generations on Redis, known in this process without a round trip per request.

A caller's generation (``page_cache.py``: part of every key of its cached data) lives in Redis under
``lg1:<caller>:generation``; a write bumps it there and publishes the new value on ``lg1:generations``.
Every process subscribes (``GenerationWatch``) and keeps the values it has learned, from those messages and
from its own reads, in a bounded map. While the subscription is up, a known value is exact: every later bump
reaches this process as a message. When it breaks, the map is dropped and every read goes to Redis until
the subscription is back.

A broken connection is re-established by redis-py itself, which subscribes again: each subscription
confirmation starts the map afresh, since messages sent while the connection was down are lost. Between
the break and that confirmation (milliseconds when Redis answers; when it does not, the other operations
fail too and the gateway falls back to its in-process store) the map is still trusted: a bump made on
another instance in that window, read here in that window, is the one case this leaves open.

Ordering, so that a query arriving right after a write on another instance never uses the old value:
- the writer answers only once its own subscription has received the bump's message (``expect`` before
  the bump, ``delivered`` after):
  Redis has by then sent that message to every subscriber, before the client even has its answer;
- a reader yields to the event loop once before it trusts the map (``RedisStore.generation``), so a message
  that arrived together with the request is read first.
Generations only grow: a bump sets ``max(INCR, now in ms)``, so a key that expired (24 h after the last
bump) comes back larger than any value a process may still hold, and the map keeps the larger of what it
learns. Redis's own lock and pub/sub, nothing hand-made on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("gateway.datasource.cache")

CHANNEL = "lg1:generations"
KNOWN_MAX = 100_000  # callers whose generation a process remembers (least recently used dropped)
PING_SECONDS = 2.0  # the subscription is checked this often; no pong within twice that: it is down
DELIVERY_WAIT = 0.2  # longest wait of a writer for its own message before it answers anyway

# INCR, but never below the time in ms (generations grow even across an expired key), keep 24 h, publish.
BUMP = """
local g = redis.call('INCR', KEYS[1])
local now = tonumber(ARGV[1])
if g < now then redis.call('SET', KEYS[1], now); g = now end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. g)
return g
"""


def generation_key(caller: str) -> str:
    return f"lg1:{caller}:generation"


@dataclass(eq=False, slots=True)
class _Expected:
    """A writer waiting for its own bump's message: what arrived for its caller since it asked."""

    caller: str
    future: asyncio.Future
    seen: int = -1
    wanted: int | None = None


class GenerationWatch:
    """This process's view of callers' generations, fed by the ``lg1:generations`` subscription."""

    def __init__(self, subscriber: Redis) -> None:
        self._subscriber = subscriber  # its own connection: a subscribed connection can do nothing else
        self._known: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[_Expected]] = {}
        self.live = False  # subscribed: what the map holds is exact
        self.epoch = 0  # bumped when the subscription breaks: reads from before may not be learned
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def known(self, caller: str) -> int | None:
        if not self.live:
            return None
        value = self._known.get(caller)
        if value is not None:
            self._known.move_to_end(caller)
        return value

    def learn(self, caller: str, generation: int, epoch: int) -> None:
        """Keep a value read from Redis, unless the subscription broke since the read began."""
        if self.live and epoch == self.epoch:
            self._set(caller, generation)

    def expect(self, caller: str) -> _Expected:
        """Before a bump: from now on, note the generations this process receives for ``caller``."""
        expected = _Expected(caller, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(caller, []).append(expected)
        return expected

    async def delivered(self, expected: _Expected, generation: int) -> bool:
        """Wait (briefly) until this process's subscription has received the bump to ``generation``."""
        try:
            if not self.live:
                return False
            expected.wanted = generation
            if expected.seen >= generation:
                return True
            try:
                await asyncio.wait_for(asyncio.shield(expected.future), DELIVERY_WAIT)
                return True
            except TimeoutError:
                return False
        finally:
            self.forget(expected)

    def forget(self, expected: _Expected) -> None:
        waiting = [w for w in self._waiters.get(expected.caller, ()) if w is not expected]
        if waiting:
            self._waiters[expected.caller] = waiting
        else:
            self._waiters.pop(expected.caller, None)

    def _set(self, caller: str, generation: int) -> None:
        current = self._known.get(caller)
        self._known[caller] = generation if current is None else max(current, generation)
        self._known.move_to_end(caller)
        while len(self._known) > KNOWN_MAX:
            self._known.popitem(last=False)

    def _down(self, closing: bool = False) -> None:
        if self.live and not closing:
            log.warning("generation subscription lost; reading callers' generations from Redis until it is back")
        self.live = False
        self.epoch += 1
        self._known.clear()

    async def _watch(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                pinged = pong = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=PING_SECONDS / 2)
                    now = time.monotonic()
                    if message is not None:
                        kind = message["type"]
                        if kind == "subscribe":  # also after redis-py reconnected on its own: start afresh
                            self._known.clear()
                            self.epoch += 1
                            self.live, delay = True, 0.1
                        elif kind == "pong":
                            pong = now
                        elif kind == "message":
                            self._on_message(message["data"])
                    if now - pinged >= PING_SECONDS:
                        await pubsub.ping()
                        pinged = now
                    if now - pong > 2 * PING_SECONDS + PING_SECONDS / 2:
                        raise ConnectionError("no pong on the generation subscription")
            except asyncio.CancelledError:
                self._down(closing=True)
                raise
            except (RedisError, OSError, ConnectionError, asyncio.TimeoutError) as exc:
                log.debug("generation subscription: %s", type(exc).__name__)
            finally:
                self._down()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _on_message(self, data) -> None:
        try:
            caller, text = (data.decode() if isinstance(data, bytes) else str(data)).split(" ")
            generation = int(text)
        except ValueError:
            log.warning("ignoring a malformed generation message")
            return
        self._set(caller, generation)
        for expected in self._waiters.get(caller, ()):
            expected.seen = max(expected.seen, generation)
            if expected.wanted is not None and expected.seen >= expected.wanted and not expected.future.done():
                expected.future.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._subscriber.aclose()
