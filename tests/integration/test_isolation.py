"""Tenant isolation over real HTTP against the demo upstream: one caller's failures, slow queries and floods
never reach another caller; a real outage opens the breaker for everyone and fails fast; a 429 slows down
the caller it answered. Faults and latency target one token (the demo's per-token options)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
import uuid

import httpx

Q = "{ leads(first: 3) { totalCount nodes { databaseId } } }"


def code(body: dict) -> str:
    return body["errors"][0]["extensions"]["code"]


def tenant(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def distinct(n: int) -> str:
    """A query needing its own upstream call (page size n)."""
    return f"{{ leads(first: {n}) {{ totalCount nodes {{ databaseId }} }} }}"


def refused(gw, query: str, token: str) -> dict:
    """A request refused whole before it runs: HTTP 429, ``Retry-After`` as in the error; its extensions."""
    r = gw.post(query, token=token)
    assert r.status_code == 429, r.text
    extensions = r.json()["errors"][0]["extensions"]
    assert extensions["code"] == "RATE_LIMITED" and r.headers["retry-after"] == str(extensions["retryAfter"])
    return extensions


def breaker_state(gw) -> str:
    return gw.client.get("/readyz").json()["upstream"]["breaker"]


def test_one_callers_500s_pause_that_caller_only(make_gateway, fresh_upstream, token, caplog):
    gw = make_gateway(cache_ttl=0, breaker_min_calls=10, caller_breaker_min_calls=5, breaker_cooldown=30)
    noisy = tenant("noisy")
    fresh_upstream.options.token_faults[noisy] = "500"
    with caplog.at_level("INFO", logger="gateway.datasource"):
        for n in range(1, 6):
            assert code(gw.gql(distinct(n), token=noisy)) == "UPSTREAM_UNAVAILABLE"  # the upstream's own 500s
            assert "errors" not in gw.gql(distinct(n), token=token)
    # Logs carry the one classification and the caller's HMAC prefix, never the token.
    prefix = gw.server.server.config.app.state.sources.caller(noisy)[:8]
    failed = [r.fields for r in caplog.records if r.getMessage() == "upstream call failed"]
    assert failed == [{"outcome": "caller_failure", "kind": "caller-failure", "status": "500", "caller": prefix}] * 5
    paused = [r.fields for r in caplog.records if r.getMessage() == "caller paused"]
    assert paused == [{"caller": prefix, "calls": 5, "failures": 5}]
    assert noisy not in caplog.text
    assert len(fresh_upstream.calls(noisy)) == 5
    # Its own breaker is open: it fails fast, told to come back later, and no longer reaches the upstream.
    started = time.monotonic()
    paused = refused(gw, distinct(6), noisy)
    assert time.monotonic() - started < 0.5
    assert paused == {"code": "RATE_LIMITED", "retryAfter": 30, "reason": "CALLER_PAUSED"}
    assert len(fresh_upstream.calls(noisy)) == 5
    # Refused before its request is even parsed (it costs no execution): a 429, even for a broken document.
    r = gw.client.post("/graphql", json={"query": "{ leads("}, headers={"Authorization": f"Bearer {noisy}"})
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.json()["errors"][0]["extensions"]["reason"] == "CALLER_PAUSED"
    r = gw.client.post("/graphql", json={"query": "{ leads("}, headers={"Authorization": f"Bearer {token}"})
    assert code(r.json()) == "GRAPHQL_PARSE_FAILED"  # another caller's broken document is its own
    # Everyone else is untouched: the upstream's breaker never opened, though 5 of 10 calls failed.
    for n in range(6, 16):
        assert "errors" not in gw.gql(distinct(n), token=token)
    ready = gw.client.get("/readyz").json()["upstream"]
    assert ready["breaker"] == "closed" and ready["pausedCallers"] == 1
    assert 'leads_gateway_upstream_outcomes_total{kind="caller-failure",outcome="caller_failure"} 5.0' in \
        gw.client.get("/metrics").text


def test_one_callers_timeouts_leave_another_caller_untouched(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, upstream_timeout=0.3, breaker_min_calls=6, caller_breaker_min_calls=4)
    noisy = tenant("slow")
    fresh_upstream.options.token_faults[noisy] = "slow"
    fresh_upstream.options.slow_seconds = 5
    for n in range(1, 5):
        assert code(gw.gql(distinct(n), token=noisy)) == "UPSTREAM_TIMEOUT"
        started = time.monotonic()
        assert "errors" not in gw.gql(distinct(n), token=token)
        assert time.monotonic() - started < 0.3
    assert breaker_state(gw) == "closed"
    assert refused(gw, Q, noisy)["reason"] == "CALLER_PAUSED"
    concurrency = gw.client.get("/readyz").json()["upstream"]["concurrency"]
    assert concurrency["limit"] == 32  # one caller's slow queries do not shrink everyone's concurrency


async def test_a_flood_of_slow_queries_does_not_slow_another_caller(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, upstream_concurrency=8, upstream_queue_max=10, upstream_queue_timeout=10)
    noisy = tenant("flood")
    fresh_upstream.options.token_latency[noisy] = 1.5  # a phone-number search over a large list, say
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        async def ask(who: str, n: int) -> tuple[float, dict]:
            started = time.monotonic()
            r = await client.post("/graphql", json={"query": distinct(n)}, headers={"Authorization": f"Bearer {who}"})
            return time.monotonic() - started, r.json()

        baseline = [(await ask(token, n))[0] for n in range(1, 6)]
        flood = [asyncio.ensure_future(ask(noisy, n)) for n in range(1, 41)]  # 40 distinct slow queries at once
        await asyncio.sleep(0.2)
        during = []
        for n in range(6, 16):
            elapsed, body = await ask(token, n)
            assert "errors" not in body
            during.append(elapsed)
        noisy_results = [body for _, body in await asyncio.gather(*flood)]
    # The quiet caller never waited for the flood's slow calls: a slot of its own was free at once.
    assert max(during) < 0.5, (baseline, during)
    assert statistics.median(during) < 0.1 + statistics.median(baseline) * 3
    # The noisy caller held at most its share (4 of 8 slots), queued 10 and was refused the rest at once.
    ok = sum(1 for b in noisy_results if "errors" not in b)
    refused = [b["errors"][0]["extensions"] for b in noisy_results if "errors" in b]
    assert ok == 14 and len(refused) == 26
    assert all(e["code"] == "RATE_LIMITED" and e["reason"] == "QUEUE_FULL" and e["retryAfter"] >= 1 for e in refused)
    assert 'leads_gateway_rejected_requests_total{reason="queue_full"} 26.0' in gw.client.get("/metrics").text


def test_a_real_outage_opens_the_breaker_for_everyone_and_fails_fast(make_gateway):
    with socket.socket() as s:  # a port nobody listens on: every connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = make_gateway(cache_ttl=0, upstream_url=f"http://127.0.0.1:{port}", breaker_min_calls=6, breaker_cooldown=30)
    stats = gw.server.server.config.app.state.stats
    for i in range(6):
        assert code(gw.gql(Q, token=f"caller-{i % 2}")) == "UPSTREAM_UNAVAILABLE"
    assert breaker_state(gw) == "open"
    attempts = stats.upstream_requests.total()
    timings = []
    for i in range(20):
        started = time.monotonic()
        body = gw.gql(distinct(i + 1), token=f"someone-{i}")
        timings.append(time.monotonic() - started)
        assert body["errors"][0]["extensions"]["reason"] == "BREAKER_OPEN"
    assert stats.upstream_requests.total() == attempts  # no upstream attempt while open
    assert statistics.median(timings) < 0.05


def test_a_429_slows_down_the_caller_it_answered(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, upstream_retry_after_max=5)
    throttled = tenant("throttled")
    fresh_upstream.options.token_faults[throttled] = "429"
    fresh_upstream.options.retry_after = 30
    first = gw.gql(Q, token=throttled)
    assert first["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 30}  # the upstream's
    extensions = refused(gw, distinct(5), throttled)
    assert extensions["reason"] == "UPSTREAM_SLOW_DOWN" and 28 <= extensions["retryAfter"] <= 30
    assert len(fresh_upstream.calls(throttled)) == 1  # the pause was kept without asking the upstream again
    assert "errors" not in gw.gql(Q, token=token)  # one caller's 429 is that caller's
