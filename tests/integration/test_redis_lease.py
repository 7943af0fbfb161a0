"""Cross-instance leases on a real Redis: only the owner renews or releases, a lease expires, and a
lost lease is harmless to release (and never marks Redis down). Each store stands for one instance."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from gateway.datasource.cache.stores import MemoryStore, RedisStore, ResilientStore


@pytest.fixture
async def stores(redis_url):
    made: list[RedisStore] = []

    def make() -> RedisStore:
        made.append(RedisStore(redis_url))
        return made[-1]

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def key() -> str:
    return f"lease-test:{secrets.token_hex(8)}"


async def pttl(store: RedisStore, key: str) -> int:
    return await store._redis.pttl(f"{key}@lease")


async def test_one_owner_at_a_time_and_the_lease_is_visible(stores, key):
    a, b = stores(), stores()
    assert await a.try_lease(key, "owner-a", 5)
    assert not await b.try_lease(key, "owner-b", 5)
    assert not await a.try_lease(key, "owner-c", 5)  # the same instance, another fetch: not either
    assert await b._redis.get(f"{key}@lease") == b"owner-a"
    assert 4000 < await pttl(b, key) <= 5000
    assert (await b.poll(key))[2] is True
    await a.release_lease(key, "owner-a")
    assert (await b.poll(key))[2] is False
    assert await b.try_lease(key, "owner-b", 5)
    await b.release_lease(key, "owner-b")


async def test_only_the_owner_renews(stores, key):
    a, b = stores(), stores()
    assert await a.try_lease(key, "owner-a", 1)
    await b.renew_lease(key, "owner-a", 30)  # another instance, even with the token: it holds no lease
    await a.renew_lease(key, "owner-x", 30)  # this instance, another owner
    assert await pttl(a, key) <= 1000
    await a.renew_lease(key, "owner-a", 30)
    assert 29000 < await pttl(a, key) <= 30000  # the TTL is replaced, not added to
    await a.renew_lease(key, "owner-a", 2)
    assert await pttl(a, key) <= 2000
    await a.release_lease(key, "owner-a")


async def test_only_the_owner_releases(stores, key):
    a, b = stores(), stores()
    assert await a.try_lease(key, "owner-a", 5)
    await b.release_lease(key, "owner-a")
    await a.release_lease(key, "owner-b")
    assert (await a.poll(key))[2] is True
    await a.release_lease(key, "owner-a")
    assert (await a.poll(key))[2] is False


async def test_an_expired_lease_is_taken_over_and_its_old_owner_cannot_touch_the_new_one(stores, key):
    a, b = stores(), stores()
    assert await a.try_lease(key, "owner-a", 0.2)
    await asyncio.sleep(0.35)
    assert (await b.poll(key))[2] is False  # expired
    await a.renew_lease(key, "owner-a", 5)  # too late: renews nothing, raises nothing
    assert (await b.poll(key))[2] is False
    assert await b.try_lease(key, "owner-b", 5)
    await a.renew_lease(key, "owner-a", 30)
    await a.release_lease(key, "owner-a")  # too late: releases nothing, raises nothing
    assert await b._redis.get(f"{key}@lease") == b"owner-b" and await pttl(b, key) <= 5000
    await b.release_lease(key, "owner-b")
    assert (await b.poll(key))[2] is False


async def test_a_lease_retaken_on_the_same_instance_belongs_to_the_new_owner(stores, key):
    a = stores()
    assert await a.try_lease(key, "first", 0.2)
    await asyncio.sleep(0.35)
    assert await a.try_lease(key, "second", 5)
    await a.release_lease(key, "first")
    await a.renew_lease(key, "first", 30)
    assert await a._redis.get(f"{key}@lease") == b"second" and await pttl(a, key) <= 5000
    await a.release_lease(key, "second")
    assert (await a.poll(key))[2] is False


async def test_a_lost_lease_does_not_mark_redis_down(stores, key):
    store = ResilientStore(stores(), MemoryStore(max_leads=100))
    assert await store.try_lease(key, "owner-a", 0.2)
    await asyncio.sleep(0.35)
    await store.renew_lease(key, "owner-a", 5)
    await store.release_lease(key, "owner-a")
    assert store.state == "up" and store.shared


async def test_many_concurrent_leases_on_one_store_stay_apart(stores, key):
    a, b = stores(), stores()
    keys = [f"{key}:{i}" for i in range(20)]
    assert all(await asyncio.gather(*(a.try_lease(k, f"owner-{i}", 5) for i, k in enumerate(keys))))
    assert not any(await asyncio.gather(*(b.try_lease(k, "other", 5) for k in keys)))
    await asyncio.gather(*(a.renew_lease(k, f"owner-{i}", 30) for i, k in enumerate(keys)))
    assert all(29000 < t for t in await asyncio.gather(*(pttl(a, k) for k in keys)))
    await asyncio.gather(*(a.release_lease(k, f"owner-{i}") for i, k in enumerate(keys[:10])))
    held = [(await a.poll(k))[2] for k in keys]
    assert held == [False] * 10 + [True] * 10
    await asyncio.gather(*(a.release_lease(k, f"owner-{i + 10}") for i, k in enumerate(keys[10:])))
