"""The page cache seen through the gateway's HTTP API (in-process cache)."""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.demo.data import dataset_for_token
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import encode_cursor

Q = "query($first: Int, $after: String, $last: Int) { leads(first: $first, after: $after, last: $last) " \
    "{ totalCount nodes { databaseId } } }"


def ids(body: dict) -> list[int]:
    return [n["databaseId"] for n in body["data"]["leads"]["nodes"]]


def cursor(token: str, position: int) -> str:
    return encode_cursor(position, ListFilter().fingerprint, len(dataset_for_token(token)))


async def test_a_hundred_concurrent_identical_queries_make_one_upstream_call(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    fresh_upstream.options.latency = 0.2
    async with httpx.AsyncClient(base_url=gw.url, timeout=20,
                                 limits=httpx.Limits(max_connections=100)) as client:
        responses = await asyncio.gather(*(
            client.post("/graphql", json={"query": Q, "variables": {"first": 10}},
                        headers={"Authorization": f"Bearer {token}"}) for _ in range(100)))
    assert {r.status_code for r in responses} == {200}
    assert all(ids(r.json()) == [x["id"] for x in dataset_for_token(token)[:10]] for r in responses)
    assert len(fresh_upstream.calls(token)) == 1
    stats = gw.server.server.config.app.state.stats
    assert stats.upstream_requests["ok"] == 1
    assert stats.coalesced_waiters["process"] >= 1


def test_windows_inside_a_cached_page_make_no_upstream_call(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    rows = [r["id"] for r in dataset_for_token(token)]
    assert ids(gw.gql(Q, {"first": 50}, token)) == rows[:50]
    assert len(fresh_upstream.calls(token)) == 1
    # Other sizes and directions, all inside positions 0..49: served from the cached page of 50.
    assert ids(gw.gql(Q, {"first": 10, "after": cursor(token, 19)}, token)) == rows[20:30]
    assert ids(gw.gql(Q, {"first": 7}, token)) == rows[:7]
    body = gw.gql("query($b: String) { leads(last: 5, before: $b) { nodes { databaseId } } }",
                  {"b": cursor(token, 30)}, token)
    assert ids(body) == rows[25:30]
    assert len(fresh_upstream.calls(token)) == 1
    # `last` alone learns the total from the cached page: only the tail is fetched, no probe.
    assert ids(gw.gql(Q, {"last": 3}, token)) == rows[-3:]
    calls = fresh_upstream.calls(token)
    assert len(calls) == 2 and calls[1].params["page"] != "1"
    # A window partly inside: only the uncovered part is asked for.
    assert ids(gw.gql(Q, {"first": 20, "after": cursor(token, 39)}, token)) == rows[40:60]
    last_call = fresh_upstream.calls(token)[-1]
    page, per_page = int(last_call.params["page"]), int(last_call.params["per_page"])
    assert (page - 1) * per_page <= 50 and page * per_page >= 60 and per_page <= 10


def test_no_cache_header_bypasses_cached_pages(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    gw.gql(Q, {"first": 5}, token)
    gw.gql(Q, {"first": 5}, token)
    assert len(fresh_upstream.calls(token)) == 1
    gw.gql(Q, {"first": 5}, token, headers={"Cache-Control": "no-cache"})
    assert len(fresh_upstream.calls(token)) == 2
    gw.gql(Q, {"first": 5}, token, headers={"Pragma": "no-cache"})
    assert len(fresh_upstream.calls(token)) == 3


async def test_no_cache_requests_still_coalesce(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=30)
    fresh_upstream.options.latency = 0.2
    headers = {"Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
        await asyncio.gather(*(client.post("/graphql", json={"query": Q, "variables": {"first": 5}}, headers=headers)
                               for _ in range(10)))
    assert len(fresh_upstream.calls(token)) == 1


def test_stale_if_error_serves_an_expired_page_and_says_so(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3, cache_stale_if_error=60)
    fresh = gw.gql(Q, {"first": 5}, token)
    time.sleep(0.5)
    fresh_upstream.options.fault = "503"
    stale = gw.gql(Q, {"first": 5}, token)
    assert ids(stale) == ids(fresh)
    warning = stale["extensions"]["warnings"][0]
    assert warning["code"] == "STALE_DATA" and warning["upstreamError"] == "UPSTREAM_UNAVAILABLE"
    assert warning["ageSeconds"] >= 0.3
    assert len(fresh_upstream.calls(token)) == 2
    # A failure that is not an outage (429) is not papered over.
    fresh_upstream.options.fault = "429"
    limited = gw.gql(Q, {"first": 5}, token)
    assert limited["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_stale_if_error_can_be_turned_off(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=0.3, cache_stale_if_error=0)
    gw.gql(Q, {"first": 5}, token)
    time.sleep(0.5)
    fresh_upstream.options.fault = "503"
    assert gw.gql(Q, {"first": 5}, token)["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_stale_while_revalidate_answers_at_once_and_refreshes_once(make_gateway, fresh_upstream, token):
    gw = make_gateway(cache_ttl=1.0, cache_swr=30)
    gw.gql(Q, {"first": 5}, token)
    time.sleep(1.2)
    fresh_upstream.options.latency = 0.5
    started = time.monotonic()
    for _ in range(5):
        assert ids(gw.gql(Q, {"first": 5}, token)) == [r["id"] for r in dataset_for_token(token)[:5]]
    assert time.monotonic() - started < 0.45  # none of the five waited for the slow upstream
    time.sleep(0.7)  # the one background refresh has completed; its page is fresh for another second
    assert len(fresh_upstream.calls(token)) == 2
    fresh_upstream.options.latency = 0
    gw.gql(Q, {"first": 5}, token)
    assert len(fresh_upstream.calls(token)) == 2
