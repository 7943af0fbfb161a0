"""Callers' generations on a real Redis (``cache/generations.py``): known in each process through the
``lg1:generations`` subscription, so reading one costs no round trip; a broken subscription falls back to
reading Redis; generations only grow, even across an expired key."""

from __future__ import annotations

import asyncio
import time

import redis

from gateway.datasource.cache.generations import generation_key
from gateway.datasource.cache.stores import RedisStore


def gets(url: str) -> int:
    """GET commands the server has run (its own count, ``INFO commandstats``)."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def until_generation(store: RedisStore, caller: str, expected: int, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while (seen := await store.generation(caller)) != expected:
        assert time.monotonic() < deadline, f"still {seen}, not {expected}"
        await asyncio.sleep(0.01)


def test_a_bump_reaches_every_process_and_known_generations_cost_no_round_trip(private_redis):
    async def run():
        a, b = RedisStore(private_redis.url), RedisStore(private_redis.url)
        try:
            await b.generation("caller")  # starts the subscription
            await until(lambda: b.generations.live)
            assert await b.generation("caller") == 0  # read from Redis once, then known
            before = gets(private_redis.url)
            for _ in range(20):
                assert await b.generation("caller") == 0
            assert gets(private_redis.url) == before  # all from the map
            bumped = await a.bump("caller")
            assert bumped >= int(time.time() * 1000) - 60_000  # never below the time in ms
            # b learns it from the subscription, without a GET. Delivery to b's own connection is asynchronous:
            # under load (CI) its reader may need a few loop passes, so b is given up to 2 s.
            await until_generation(b, "caller", bumped)
            assert await a.generation("caller") == bumped  # the bumping process knows at once
            assert gets(private_redis.url) == before
            again = await a.bump("caller")
            assert again > bumped
            await until_generation(b, "caller", again)
            assert gets(private_redis.url) == before
            assert await b.generation("other") == 0  # other callers: their own value
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())


def test_a_broken_subscription_falls_back_to_reading_redis_and_comes_back(private_redis):
    async def run():
        store = RedisStore(private_redis.url)
        try:
            await store.generation("caller")
            await until(lambda: store.generations.live)
            assert await store.generation("caller") == 0
            admin = redis.Redis.from_url(private_redis.url)
            epoch = store.generations.epoch
            # The connection breaks, and meanwhile another process bumps (its message lost to this one).
            admin.client_kill_filter(_type="pubsub")
            admin.incr(generation_key("caller"))
            await until(lambda: store.generations.epoch != epoch and store.generations.live)  # subscribed again
            before = gets(private_redis.url)
            assert await store.generation("caller") == 1  # the map started afresh: read from Redis
            assert gets(private_redis.url) == before + 1
            assert await store.generation("caller") == 1  # and known again
            assert gets(private_redis.url) == before + 1
            # Redis gone for good: no subscription, nothing trusted.
            private_redis.stop()
            await until(lambda: not store.generations.live)
        finally:
            await store.close()

    asyncio.run(run())


def test_generations_only_grow_even_when_the_key_expired(private_redis):
    async def run():
        a, b = RedisStore(private_redis.url), RedisStore(private_redis.url)
        try:
            await b.generation("caller")  # starts its subscription
            await until(lambda: b.generations.live)
            first = await a.bump("caller")
            assert await b.generation("caller") == first
            redis.Redis.from_url(private_redis.url).delete(generation_key("caller"))  # as if expired
            second = await a.bump("caller")
            assert second > first
            assert await b.generation("caller") == second
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())
