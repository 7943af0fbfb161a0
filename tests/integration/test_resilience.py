"""Upstream resilience over real HTTP: retries, deadline, circuit breaker, concurrency bound."""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.demo.data import dataset_for_token

Q = "{ leads(first: 3) { totalCount nodes { databaseId } } }"


def code(body: dict) -> str:
    return body["errors"][0]["extensions"]["code"]


def test_a_transient_503_is_retried(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_retries=2)
    body = gw.gql(Q, token="flaky-one")
    assert "errors" not in body
    assert body["data"]["leads"]["totalCount"] == len(dataset_for_token("flaky-one"))
    assert [c.status for c in fresh_upstream.calls("flaky-one")] == [503, 200]


def test_retries_stop_at_the_limit(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_retries=2)
    assert code(gw.gql(Q, token="fault-502")) == "UPSTREAM_UNAVAILABLE"
    assert len(fresh_upstream.calls("fault-502")) == 3
    stats = gw.server.server.config.app.state.stats
    assert stats.upstream_retries == 2


def test_what_is_never_retried(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_retries=3)
    for token, expected in (("fault-500", "UPSTREAM_UNAVAILABLE"), ("forbidden-x", "FORBIDDEN"),
                            ("revoked-x", "UNAUTHENTICATED"), ("fault-malformed", "UPSTREAM_BAD_RESPONSE")):
        assert code(gw.gql(Q, token=token)) == expected
        assert len(fresh_upstream.calls(token)) == 1, token


def test_429_is_retried_after_retry_after(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_retries=1, upstream_retry_after_max=5)
    fresh_upstream.options.retry_after = 1
    started = time.monotonic()
    body = gw.gql(Q, token="fault-429")
    assert code(body) == "RATE_LIMITED" and body["errors"][0]["extensions"]["retryAfter"] == 1
    assert len(fresh_upstream.calls("fault-429")) == 2
    assert time.monotonic() - started >= 1.0  # it waited as the upstream asked


def test_a_retry_after_beyond_the_cap_is_not_waited_for(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_retries=2, upstream_retry_after_max=5)
    fresh_upstream.options.retry_after = 60
    started = time.monotonic()
    body = gw.gql(Q, token="fault-429")
    assert body["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 60}
    assert len(fresh_upstream.calls("fault-429")) == 1 and time.monotonic() - started < 1


def test_connection_failures_are_retried(make_gateway):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = make_gateway(cache_ttl=0, upstream_retries=2, upstream_url=f"http://127.0.0.1:{port}")
    assert code(gw.gql(Q, token="someone")) == "UPSTREAM_UNAVAILABLE"
    assert gw.server.server.config.app.state.stats.upstream_retries == 2


def test_the_request_deadline_bounds_a_slow_upstream(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, upstream_timeout=30, request_timeout=1.0, upstream_retries=2)
    fresh_upstream.options.slow_seconds = 5
    started = time.monotonic()
    body = gw.gql(Q, token="fault-slow")
    elapsed = time.monotonic() - started
    assert code(body) == "UPSTREAM_TIMEOUT"
    assert 0.9 <= elapsed < 2.0


def test_the_deadline_also_bounds_retry_waits(make_gateway, fresh_upstream):
    gw = make_gateway(cache_ttl=0, request_timeout=1.0, upstream_retries=3, upstream_retry_after_max=10)
    fresh_upstream.options.retry_after = 3  # within the cap, but beyond the deadline
    started = time.monotonic()
    assert code(gw.gql(Q, token="fault-429")) == "RATE_LIMITED"
    assert time.monotonic() - started < 1.0
    assert len(fresh_upstream.calls("fault-429")) == 1


def test_the_breaker_opens_fails_fast_and_closes_after_a_probe(make_gateway, fresh_upstream, token):
    # Several callers' calls fail with 503 (an outage, spread over callers): the upstream's breaker opens.
    gw = make_gateway(cache_ttl=0, breaker_min_calls=4, breaker_min_callers=2, breaker_cooldown=0.5)
    fresh_upstream.options.fault = "503"
    for caller in ("down-a", "down-b", "down-a", "down-b"):
        assert code(gw.gql(Q, token=caller)) == "UPSTREAM_UNAVAILABLE"
    assert len(fresh_upstream.calls()) == 4
    fresh_upstream.options.fault = None
    assert gw.client.get("/readyz").json()["upstream"]["breaker"] == "open"
    # Open: every caller fails fast, with no upstream call, and is told when to come back.
    started = time.monotonic()
    fast = gw.gql(Q, token=token)
    assert time.monotonic() - started < 0.5
    assert fast["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 1,
                                               "reason": "BREAKER_OPEN"}
    assert "circuit open" in fast["errors"][0]["message"]
    assert fresh_upstream.calls(token) == []
    metrics = gw.client.get("/metrics").text
    assert 'leads_gateway_breaker_state{state="open"} 1.0' in metrics
    assert 'leads_gateway_rejected_requests_total{reason="breaker_open"} 1.0' in metrics
    assert 'leads_gateway_breaker_transitions_total{scope="upstream",state="open"} 1.0' in metrics
    time.sleep(0.6)
    # Half-open: one probe goes through; it succeeds, so the breaker closes.
    assert "errors" not in gw.gql(Q, token=token)
    assert gw.client.get("/readyz").json()["upstream"]["breaker"] == "closed"
    assert "errors" not in gw.gql(Q, token=token)
    assert len(fresh_upstream.calls(token)) == 2


def test_an_open_breaker_is_never_retried_into_a_slow_failure(make_gateway, fresh_upstream, token):
    # Retries on, and a cooldown shorter than GATEWAY_UPSTREAM_RETRY_AFTER_MAX: the refusal still comes at once.
    gw = make_gateway(cache_ttl=0, upstream_retries=2, upstream_retry_after_max=5, breaker_min_calls=4,
                      breaker_min_callers=2, breaker_cooldown=3)
    fresh_upstream.options.fault = "502"
    for caller in ("down-a", "down-b"):
        gw.gql(Q, token=caller)  # three attempts each
    fresh_upstream.options.fault = None
    started = time.monotonic()
    assert code(gw.gql(Q, token=token)) == "UPSTREAM_UNAVAILABLE"
    assert time.monotonic() - started < 0.5 and fresh_upstream.calls(token) == []


def test_an_open_breaker_serves_stale_pages_where_the_cache_allows(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3, cache_stale_if_error=60, breaker_min_calls=2, breaker_min_callers=2,
                      breaker_cooldown=30)
    cached = gw.gql(Q, token=token)
    fresh_upstream.options.fault = "503"
    for caller in ("down-a", "down-b"):
        gw.gql(Q, token=caller)
    fresh_upstream.options.fault = None
    time.sleep(0.4)
    stale = gw.gql(Q, token=token)
    assert stale["data"] == cached["data"]
    assert stale["extensions"]["warnings"][0]["code"] == "STALE_DATA"
    assert stale["extensions"]["warnings"][0]["upstreamError"] == "UPSTREAM_UNAVAILABLE"
    assert len(fresh_upstream.calls(token)) == 1  # the breaker answered, not the upstream


async def test_concurrent_upstream_requests_are_bounded(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0, upstream_concurrency=2, caller_share=1.0)
    fresh_upstream.options.latency = 0.3
    queries = [f"{{ leads(first: {n}) {{ totalCount }} }}" for n in range(1, 7)]  # six different pages
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
        responses = await asyncio.gather(*(client.post("/graphql", json={"query": q},
                                                       headers={"Authorization": f"Bearer {token}"})
                                           for q in queries))
    elapsed = time.monotonic() - started
    assert all("errors" not in r.json() for r in responses)
    assert len(fresh_upstream.calls(token)) == 6
    assert elapsed >= 0.85  # three rounds of two: the other four queued in the gateway


def test_a_host_that_never_accepts_is_unreachable_and_retried(make_gateway, monkeypatch):
    import socket

    from gateway.datasource import http_client

    monkeypatch.setattr(http_client, "CONNECT_TIMEOUT", 0.2)
    with socket.socket() as listener:  # its accept queue full: further SYNs are dropped, as by a dead host
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            gw = make_gateway(cache_ttl=0, upstream_retries=1, upstream_url=f"http://127.0.0.1:{port}")
            body = gw.gql(Q, token="someone")
        finally:
            for filler in fillers:
                filler.close()
    assert code(body) == "UPSTREAM_UNAVAILABLE" and "connect timeout" in body["errors"][0]["message"]
    stats = gw.server.server.config.app.state.stats
    assert stats.upstream_retries == 1 and stats.upstream_outcomes["unreachable"] == 2
