"""GATEWAY_RATE_LIMIT over real HTTP: 429 RATE_LIMITED with Retry-After once a caller is over its rate,
before anything runs; other callers unaffected; batches count per operation; with Redis, one count across
instances."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

import httpx

Q = "query($first: Int) { leads(first: $first) { nodes { databaseId } } }"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def batch(gw, token: str, n: int) -> httpx.Response:
    body = json.dumps([{"query": Q, "variables": {"first": 1}}] * n)
    return gw.client.post("/graphql", content=body, headers=auth(token))


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    seconds = error["extensions"]["retryAfter"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": seconds, "reason": "RATE_LIMIT"}
    assert isinstance(seconds, int) and seconds >= 1
    assert response.headers["retry-after"] == str(seconds)
    return seconds


def test_over_its_rate_a_caller_gets_429_until_the_window_moves(make_gateway, upstream, token):
    gw = make_gateway(rate_limit="3/2 seconds", cache_ttl=0, result_cache_bytes=0)
    for _ in range(3):
        assert "errors" not in gw.gql(Q, {"first": 2}, token)
    refused = gw.post(Q, {"first": 2}, token, headers={"Accept": "application/graphql-response+json"})
    seconds = assert_rate_limited(refused)
    assert seconds <= 2
    assert refused.headers["content-type"].startswith("application/graphql-response+json")
    assert len(upstream.calls(token)) == 3  # refused before anything ran: the upstream never saw it
    other = f"tenant-{uuid.uuid4().hex[:8]}"
    assert "errors" not in gw.gql(Q, {"first": 2}, other)  # another caller is not affected
    assert gw.client.get("/graphql", params={"query": "{ __typename }"}, headers=auth(token)).status_code == 429
    assert 'leads_gateway_rejected_requests_total{reason="rate_limit"} 2.0' in gw.client.get("/metrics").text
    time.sleep(seconds + 0.05)
    assert "errors" not in gw.gql(Q, {"first": 2}, token)


def test_a_batch_costs_its_number_of_operations(make_gateway, token):
    gw = make_gateway(rate_limit="3/minute")
    first = batch(gw, token, 2)
    assert first.status_code == 200 and len(first.json()) == 2
    assert_rate_limited(batch(gw, token, 2))  # 2 + 2 > 3, refused whole
    assert "errors" not in gw.gql(Q, {"first": 1}, token)  # the third
    assert_rate_limited(gw.post(Q, {"first": 1}, token))


def test_answers_from_the_result_cache_count_too(make_gateway, token):
    gw = make_gateway(rate_limit="2/minute", cache_ttl=30)
    assert gw.gql(Q, {"first": 1}, token) == gw.gql(Q, {"first": 1}, token)  # the second: a result-cache hit
    assert_rate_limited(gw.post(Q, {"first": 1}, token))


def test_requests_without_a_token_and_graphiql_page_loads_are_not_counted(make_gateway, token):
    gw = make_gateway(rate_limit="1/minute")
    for _ in range(3):
        page = gw.client.get("/graphql", headers={"Accept": "text/html", "Authorization": f"Bearer {token}"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        anonymous = gw.post(Q, {"first": 1})
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "errors" not in gw.gql(Q, {"first": 1}, token)
    assert_rate_limited(gw.post(Q, {"first": 1}, token))


def test_instances_sharing_a_redis_count_against_one_limit(make_gateway, redis_url, token):
    secret = secrets.token_hex(16)  # the caller's key is an HMAC: instances must share the secret
    a = make_gateway(rate_limit="4/2 seconds", cache_url=redis_url, cache_secret=secret)
    b = make_gateway(rate_limit="4/2 seconds", cache_url=redis_url, cache_secret=secret)
    for gw in (a, b, a, b):
        assert "errors" not in gw.gql(Q, {"first": 1}, token)
    assert_rate_limited(a.post(Q, {"first": 1}, token))  # each has seen only 2, together 4
    seconds = assert_rate_limited(b.post(Q, {"first": 1}, token))
    other = f"tenant-{uuid.uuid4().hex[:8]}"
    assert "errors" not in b.gql(Q, {"first": 1}, other)
    time.sleep(seconds + 0.05)
    assert "errors" not in a.gql(Q, {"first": 1}, token)


def test_a_dead_redis_never_refuses_nor_slows_requests(make_gateway, private_redis, token):
    gw = make_gateway(rate_limit="2/minute", cache_url=private_redis.url, cache_secret=secrets.token_hex(16))
    assert "errors" not in gw.gql(Q, {"first": 1}, token)
    private_redis.stop()
    started = time.monotonic()
    for _ in range(5):  # over the rate, but nothing can count them: allowed (fail open)
        assert "errors" not in gw.gql(Q, {"first": 1}, token)
    assert time.monotonic() - started < 5
    app = gw.server.server.config.app
    view = next(route.endpoint for route in app.routes if getattr(route, "path", None) == "/graphql")
    assert view.rate_limiter.failed_open == 5 and view.rate_limiter.refused == 0


async def test_a_caller_resending_before_its_retry_after_is_held_and_nobody_else_waits(make_gateway, token):
    gw = make_gateway(rate_limit="1/minute", result_cache_bytes=0)
    impatient = f"impatient-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
        async def timed(who: str) -> tuple[float, httpx.Response]:
            started = time.monotonic()
            r = await client.post("/graphql", json={"query": Q, "variables": {"first": 1}}, headers=auth(who))
            return time.monotonic() - started, r

        assert (await timed(impatient))[1].status_code == 200
        elapsed, first_refusal = await timed(impatient)
        assert_rate_limited(first_refusal)
        assert elapsed < 0.5  # the first refusal: at once (fail fast)
        # Resent at once, ignoring retryAfter: refused all the same, but only after a hold of a second,
        # while another caller is answered at once.
        held = asyncio.ensure_future(timed(impatient))
        await asyncio.sleep(0.1)
        other_elapsed, other = await timed(token)
        assert other.status_code == 200 and other_elapsed < 0.5 and not held.done()
        elapsed, second_refusal = await held
    assert_rate_limited(second_refusal)
    assert 0.45 <= elapsed < 2.0  # held half a second to a second
    assert "leads_gateway_held_refusals_total 1.0" in gw.client.get("/metrics").text
