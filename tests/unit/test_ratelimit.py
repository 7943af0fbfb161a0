"""The per-caller rate limit (gateway/http/ratelimit.py): its setting, its counting in memory and in Redis,
and failing open, quickly, when Redis is unreachable."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid

import pytest
import redis.asyncio as aioredis

from gateway.config import ConfigError, Settings
from gateway.http import ratelimit
from gateway.http.ratelimit import KEY_PREFIX, RateLimiter


def limiter(rate: str, cache_url: str = "memory://") -> RateLimiter:
    found = RateLimiter.from_settings(Settings.from_env({"GATEWAY_RATE_LIMIT": rate, "GATEWAY_CACHE_URL": cache_url}))
    assert found is not None
    return found


def caller() -> str:
    return f"caller-{uuid.uuid4().hex}"  # a fresh key space per test (Redis is shared)


# --- the setting -------------------------------------------------------------------------------------


def test_no_setting_no_limiter():
    assert Settings.from_env({}).rate_limit == ""
    assert RateLimiter.from_settings(Settings.from_env({})) is None
    assert RateLimiter.from_settings(Settings.from_env({"GATEWAY_RATE_LIMIT": "  "})) is None


@pytest.mark.parametrize("value", ["20/second;600/minute", "20 per second, 600/minute", "1/2 seconds", " 3/second "])
def test_valid_settings_are_read(value):
    assert Settings.from_env({"GATEWAY_RATE_LIMIT": value}).rate_limit == value.strip()


@pytest.mark.parametrize("value", ["abc", "20/fortnight", "20/second;;", "20", "second/20", "0/second",
                                   "5/second;0/minute"])
def test_invalid_settings_are_config_errors_at_start_up(value):
    with pytest.raises(ConfigError, match="GATEWAY_RATE_LIMIT") as err:
        Settings.from_env({"GATEWAY_RATE_LIMIT": value})
    assert repr(value.strip()) in str(err.value)


# --- counting (in memory) ----------------------------------------------------------------------------


async def test_allows_the_rate_then_refuses_with_the_time_to_wait():
    rl, who = limiter("3/minute"), caller()
    assert [await rl.check(who) for _ in range(3)] == [None, None, None]
    wait = await rl.check(who)
    assert wait is not None and 58 <= wait <= 60  # the oldest of the three leaves the window in a minute
    assert await rl.check(who) is not None
    assert rl.refused == 2 and rl.failed_open == 0


async def test_the_caller_is_allowed_again_once_the_window_has_moved():
    rl, who = limiter("2/second"), caller()
    assert [await rl.check(who) for _ in range(3)] == [None, None, 1.0]  # at least 1 s
    await asyncio.sleep(1.05)
    assert await rl.check(who) is None


async def test_callers_are_counted_apart():
    rl, greedy, other = limiter("2/minute"), caller(), caller()
    for _ in range(2):
        assert await rl.check(greedy) is None
    assert await rl.check(greedy) is not None
    assert await rl.check(other) is None and await rl.check(other) is None
    assert await rl.check(other) is not None


async def test_a_batch_costs_its_operations():
    rl, who = limiter("5/minute"), caller()
    assert await rl.check(who, cost=3) is None
    assert await rl.check(who, cost=3) is not None  # 3 + 3 > 5: refused whole, nothing counted
    assert await rl.check(who, cost=2) is None
    assert await rl.check(who) is not None


async def test_a_batch_larger_than_the_allowance_takes_all_of_it_but_is_not_refused_forever():
    rl, who = limiter("3/minute"), caller()
    assert await rl.check(who, cost=10) is None
    assert await rl.check(who) is not None


async def test_every_rate_holds():
    rl, who = limiter("100/second;4/minute"), caller()
    assert [await rl.check(who) for _ in range(4)] == [None] * 4
    wait = await rl.check(who)
    assert wait is not None and wait > 50  # the minute's rate refused it, with the minute's wait


# --- Redis -------------------------------------------------------------------------------------------


async def test_instances_sharing_a_redis_share_the_count_under_their_own_prefix(redis_url):
    a, b, who = limiter("3/minute", redis_url), limiter("3/minute", redis_url), caller()
    try:
        assert await a.check(who) is None
        assert await b.check(who) is None
        assert await a.check(who) is None
        assert await b.check(who) is not None and await a.check(who) is not None
        assert a.failed_open == b.failed_open == 0
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k.decode() async for k in client.scan_iter(match=f"*{who}*")]
        finally:
            await client.aclose()
        assert keys and all(k.startswith(f"{KEY_PREFIX}:") for k in keys), keys
    finally:
        await a.close()
        await b.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed


async def test_a_dead_redis_fails_open_fast_and_warns_once(caplog, monkeypatch):
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_AFTER", 0.0)  # ask the dead Redis on every request
    rl, who = limiter("1/minute", f"redis://127.0.0.1:{closed_port()}/0"), caller()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
            results = [await rl.check(who) for _ in range(20)]
        assert results == [None] * 20  # over the rate, but allowed: nothing counts them
        assert time.monotonic() - started < 2
        assert rl.failed_open == 20 and rl.refused == 0
        warnings = [r for r in caplog.records if r.name == "gateway.ratelimit"]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    finally:
        await rl.close()


async def test_a_hung_redis_costs_one_short_timeout_then_is_left_alone(monkeypatch):
    with socket.socket() as server:  # accepts connections (the kernel's backlog) and never answers
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        rl, who = limiter("1/minute", f"redis://127.0.0.1:{server.getsockname()[1]}/0"), caller()
        try:
            started = time.monotonic()
            assert await rl.check(who) is None
            first = time.monotonic() - started
            assert first < 1  # the socket timeout (0.25 s), not redis-py's retries
            started = time.monotonic()
            assert [await rl.check(who) for _ in range(50)] == [None] * 50
            assert time.monotonic() - started < 0.1  # within RETRY_REDIS_AFTER: Redis is not asked
            assert rl.failed_open == 51
        finally:
            await rl.close()


async def test_counting_resumes_when_redis_is_back(private_redis, monkeypatch):
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_AFTER", 0.2)
    rl, who = limiter("2/minute", private_redis.url), caller()
    try:
        assert await rl.check(who) is None
        private_redis.stop()
        assert [await rl.check(who) for _ in range(5)] == [None] * 5
        assert rl.failed_open == 5
        private_redis.start()
        await asyncio.sleep(0.25)
        # The restarted Redis forgot the first request (no persistence): two more are allowed, not three.
        assert [await rl.check(who) for _ in range(3)] == [None, None, 60.0]
        assert rl.refused == 1
    finally:
        await rl.close()
