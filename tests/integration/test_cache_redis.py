"""The page cache on a real Redis: expiry, tenant isolation, degradation and recovery, several instances."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis

from gateway.demo.data import dataset_for_token
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import encode_cursor

Q = "query($first: Int, $after: String) { leads(first: $first, after: $after) { totalCount nodes { databaseId } } }"


def ids(body: dict) -> list[int]:
    return [n["databaseId"] for n in body["data"]["leads"]["nodes"]]


def truth(token: str, n: int) -> list[int]:
    return [r["id"] for r in dataset_for_token(token)[:n]]


def test_pages_live_in_redis_under_hashed_keys_and_expire(make_gateway, fresh_upstream, redis_url, token):
    secret = secrets.token_hex(16)
    gw = make_gateway(cache_url=redis_url, cache_ttl=1, cache_stale_if_error=0, cache_secret=secret)
    assert ids(gw.gql(Q, {"first": 10}, token)) == truth(token, 10)
    gw.gql(Q, {"first": 10}, token)
    assert len(fresh_upstream.calls(token)) == 1
    caller = gw.server.server.config.app.state.sources.caller(token)
    r = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in r.keys(f"lg1:{caller}*")]
    assert keys and all(token not in k for k in keys)
    assert all(token.encode() not in (r.get(k) or b"") for k in keys if r.type(k) == b"string")
    time.sleep(1.3)
    gw.gql(Q, {"first": 10}, token)
    assert len(fresh_upstream.calls(token)) == 2


def test_two_callers_with_identical_queries_get_their_own_data(make_gateway, fresh_upstream, redis_url, token):
    gw = make_gateway(cache_url=redis_url, cache_ttl=30, cache_secret=secrets.token_hex(16))
    other = token + "-other"
    mine = gw.gql(Q, {"first": 10}, token)
    theirs = gw.gql(Q, {"first": 10}, other)
    assert ids(mine) == truth(token, 10) and ids(theirs) == truth(other, 10)
    assert len(fresh_upstream.calls(token)) == 1 and len(fresh_upstream.calls(other)) == 1
    # Both cached now, each served to its own caller only.
    assert ids(gw.gql(Q, {"first": 5}, other)) == truth(other, 5)
    assert ids(gw.gql(Q, {"first": 5}, token)) == truth(token, 5)
    assert len(fresh_upstream.calls()) == 2


def test_redis_going_away_degrades_and_recovers(make_gateway, fresh_upstream, private_redis, token):
    gw = make_gateway(cache_url=private_redis.url, cache_ttl=30, cache_secret=secrets.token_hex(16))
    assert gw.client.get("/readyz").json()["cache"] == {"backend": "redis", "state": "up"}
    assert ids(gw.gql(Q, {"first": 5}, token)) == truth(token, 5)
    r = redis.Redis(port=private_redis.port)
    assert r.dbsize() > 0

    private_redis.stop()
    started = time.monotonic()
    body = gw.gql(Q, {"first": 8}, token)  # no request fails because the cache failed
    assert ids(body) == truth(token, 8) and "errors" not in body
    assert time.monotonic() - started < 3
    ready = gw.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["cache"] == {"backend": "redis", "state": "degraded"}
    calls = len(fresh_upstream.calls(token))
    gw.gql(Q, {"first": 8}, token)  # the in-process fallback caches meanwhile
    assert len(fresh_upstream.calls(token)) == calls

    private_redis.start()  # empty: nothing persisted
    deadline = time.monotonic() + 10
    while gw.client.get("/readyz").json()["cache"]["state"] != "up":
        assert time.monotonic() < deadline, "the gateway did not return to Redis"
        time.sleep(0.3)
    gw.gql(Q, {"first": 12}, token)
    assert redis.Redis(port=private_redis.port).dbsize() > 0  # writing to Redis again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def three_instances(upstream, redis_url):
    """Three gateway processes sharing one Redis (same secret) and the demo upstream."""
    secret = secrets.token_hex(16)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
           "GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_CACHE_URL": redis_url,
           "GATEWAY_CACHE_SECRET": secret, "GATEWAY_CACHE_TTL": "30", "GATEWAY_UPSTREAM_RETRIES": "0"}
    ports = [_free_port() for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(p), "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        deadline = time.monotonic() + 30
        for p, proc in zip(ports, procs):
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, "a gateway process exited"
                assert time.monotonic() < deadline, "gateway processes did not start"
                time.sleep(0.1)
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_a_burst_over_three_instances_makes_one_upstream_call(three_instances, fresh_upstream, token):
    fresh_upstream.options.latency = 0.3  # long enough for the whole burst to arrive while the call runs
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=60)) as client:
        responses = await asyncio.gather(*(
            client.post(f"{three_instances[i % 3]}/graphql", json={"query": Q, "variables": {"first": 20}},
                        headers=headers) for i in range(60)))
        assert {r.status_code for r in responses} == {200}
        assert all(ids(r.json()) == truth(token, 20) for r in responses)
        assert len(fresh_upstream.calls(token)) == 1

        # A window inside that page, asked of each instance: served from the shared cache.
        after = encode_cursor(4, ListFilter().fingerprint, len(dataset_for_token(token)))
        for url in three_instances:
            r = await client.post(f"{url}/graphql", json={"query": Q, "variables": {"first": 5, "after": after}},
                                  headers=headers)
            assert ids(r.json()) == truth(token, 10)[5:10]
    assert len(fresh_upstream.calls(token)) == 1


async def test_a_failed_call_reaches_waiters_on_other_instances(three_instances, fresh_upstream):
    """The holder's failure is shared, so the other instances do not each retry the failing upstream."""
    fresh_upstream.options.latency = 0.3
    headers = {"Authorization": "Bearer fault-503"}
    async with httpx.AsyncClient(timeout=20) as client:
        responses = await asyncio.gather(*(
            client.post(f"{three_instances[i % 3]}/graphql", json={"query": Q, "variables": {"first": 3}},
                        headers=headers) for i in range(30)))
    codes = {r.json()["errors"][0]["extensions"]["code"] for r in responses}
    assert codes == {"UPSTREAM_UNAVAILABLE"}
    assert len(fresh_upstream.calls("fault-503")) == 1
