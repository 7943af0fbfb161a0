"""``ResultCache`` and ``result_key``: keys, expiry, the byte bound."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, Settings
from gateway.http.result_cache import ENTRY_OVERHEAD, ResultCache, result_key

CT = "application/json; charset=utf-8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(caller="c1", query="{ a }", variables=None, op=None, ext=None, media="application/json") -> str:
    return result_key(caller, query, variables, op, ext, media)


def test_keys_differ_by_every_part_and_never_hold_the_query_in_clear():
    base = key()
    others = [key(caller="c2"), key(query="{ a  }"), key(variables={"x": 1}), key(op="A"), key(ext={"e": 1}),
              key(media="application/graphql-response+json")]
    assert len({base, *others}) == 1 + len(others)
    assert base.startswith("c1:") and "{ a }" not in base


def test_variables_are_canonical():
    assert key(variables={"a": 1, "b": [1, 2]}) == key(variables={"b": [1, 2], "a": 1})
    assert key(variables={}) == key(variables=None)
    assert key(variables={"a": 1}) != key(variables={"a": "1"})


def test_get_put_and_expiry():
    clock = Clock()
    cache = ResultCache(max_bytes=10_000, ttl=30, clock=clock)
    assert cache.get("k") is None
    assert cache.put("k", b"body", 200, CT, "Op", fresh_from=clock.now - 5)
    hit = cache.get("k")
    assert (hit.body, hit.status, hit.content_type, hit.operation) == (b"body", 200, CT, "Op")
    clock.now += 24.9
    assert cache.get("k") is not None
    clock.now += 0.1  # started + ttl: expired
    assert cache.get("k") is None and len(cache) == 0 and cache.bytes == 0


def test_an_answer_already_expired_is_not_stored():
    clock = Clock()
    cache = ResultCache(max_bytes=10_000, ttl=1, clock=clock)
    assert not cache.put("k", b"x", 200, CT, None, fresh_from=clock.now - 2)
    assert len(cache) == 0


@pytest.mark.parametrize("max_bytes,ttl", [(0, 30), (10_000, 0)])
def test_off(max_bytes, ttl):
    cache = ResultCache(max_bytes=max_bytes, ttl=ttl)
    assert not cache.enabled
    assert not cache.put("k", b"x", 200, CT, None, fresh_from=cache.clock())
    assert cache.get("k") is None


def test_the_byte_bound_evicts_the_least_recently_used():
    clock = Clock()
    per_entry = 100 + ENTRY_OVERHEAD + 2  # body, overhead, key "kN"
    cache = ResultCache(max_bytes=3 * per_entry, ttl=30, clock=clock)
    for k in ("k1", "k2", "k3"):
        cache.put(k, b"x" * 100, 200, CT, None, clock.now)
    assert cache.bytes == 3 * per_entry
    cache.get("k1")  # k2 is now the least recently used
    cache.put("k4", b"x" * 100, 200, CT, None, clock.now)
    assert cache.get("k2") is None
    assert all(cache.get(k) is not None for k in ("k1", "k3", "k4"))
    assert cache.bytes == 3 * per_entry


def test_replacing_an_entry_keeps_the_byte_count_right():
    cache = ResultCache(max_bytes=10_000, ttl=30)
    cache.put("k", b"x" * 100, 200, CT, None, cache.clock())
    cache.put("k", b"x" * 10, 200, CT, None, cache.clock())
    assert len(cache) == 1 and cache.bytes == 10 + ENTRY_OVERHEAD + 1


def test_an_answer_larger_than_the_bound_is_not_stored_and_evicts_nothing():
    cache = ResultCache(max_bytes=1_000, ttl=30)
    cache.put("small", b"x", 200, CT, None, cache.clock())
    assert not cache.put("big", b"x" * 2_000, 200, CT, None, cache.clock())
    assert cache.get("small") is not None and cache.get("big") is None


def test_setting():
    assert Settings.from_env({}).result_cache_bytes == 16 * 1024 * 1024
    assert Settings.from_env({"GATEWAY_RESULT_CACHE_BYTES": "0"}).result_cache_bytes == 0
    with pytest.raises(ConfigError):
        Settings.from_env({"GATEWAY_RESULT_CACHE_BYTES": "-1"})
