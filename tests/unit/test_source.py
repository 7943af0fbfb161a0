"""``LeadsSource``: one caller's request over the shared page cache, with only the network faked.

What it returns carries its freshness and warnings, and the source keeps the request's totals of both
(the oldest page, every warning) for the layers above: nothing is left in a context variable.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import Settings
from gateway.datasource.cache import build_page_cache
from gateway.datasource.cache.codec import Entry
from gateway.datasource.client import PageRequest
from gateway.datasource.source import LeadsSources
from gateway.errors import Unauthenticated, UpstreamUnavailable
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.pagination import PageRef, resolve_window
from gateway.leads.records import LeadPage
from gateway.observability import scope as request_scope
from gateway.observability.metrics import Stats
from tests.unit.test_reader import InMemoryUpstream, make_records


class CountingAPI:
    """``LeadsAPI.fetch_page`` over an in-memory list; counts calls, can fail, remembers deadlines."""

    def __init__(self, n: int) -> None:
        self.upstream = InMemoryUpstream(make_records(n))
        self.deadlines: list[float | None] = []
        self.callers: list[str] = []
        self.failing = False

    @property
    def calls(self):
        return self.upstream.calls

    async def fetch_page(self, token: str, request, *, caller: str, deadline=None) -> LeadPage:
        self.deadlines.append(deadline)
        self.callers.append(caller)
        if self.failing:
            raise UpstreamUnavailable("down")
        await asyncio.sleep(0.01)  # concurrent askers overlap, as with real I/O
        return (await self.upstream.load(request.filter, request.page)).page


def sources(n: int = 250, **settings) -> tuple[LeadsSources, CountingAPI]:
    s = Settings(**{"cache_ttl": 30.0, **settings})
    api = CountingAPI(n)
    stats = Stats()
    return LeadsSources(s, stats, api=api, cache=build_page_cache(s, stats)), api


def window_request(lead_filter: ListFilter = ALL_LEADS, **kw):
    return resolve_window(first=kw.get("first"), last=kw.get("last"), after=None, before=None,
                          fingerprint=lead_filter.fingerprint, max_size=100)


async def test_a_page_asked_for_twice_in_one_request_is_loaded_once():
    shared, api = sources(cache_ttl=0)  # no page cache: only the request's own dedup can save the call
    source = shared.open("tok")
    a, b = await asyncio.gather(source.load(ALL_LEADS, PageRef(1, 15)), source.load(ALL_LEADS, PageRef(1, 15)))
    assert a is b and len(api.calls) == 1
    await source.load(ALL_LEADS, PageRef(1, 15))
    assert len(api.calls) == 1
    await shared.open("tok").load(ALL_LEADS, PageRef(1, 15))  # another request: its own load
    assert len(api.calls) == 2


async def test_one_askers_cancellation_does_not_cancel_the_load_others_wait_for():
    shared, api = sources(cache_ttl=0)
    source = shared.open("tok")
    first = asyncio.ensure_future(source.load(ALL_LEADS, PageRef(1, 15)))
    second = asyncio.ensure_future(source.load(ALL_LEADS, PageRef(1, 15)))
    await asyncio.sleep(0)
    first.cancel()
    served = await second
    assert len(served.page.items) == 15 and len(api.calls) == 1


async def test_the_source_keeps_the_oldest_fetch_time_of_what_it_returned():
    shared, api = sources()
    source = shared.open("tok")
    assert source.fetched_at is None  # nothing returned yet
    before = time.time()
    window = await source.window(ALL_LEADS, window_request(first=10))
    assert before <= window.fetched_at <= time.time()
    assert source.fetched_at == window.fetched_at
    # An older page of the same caller in the cache: a later window built from it makes the request older.
    old = time.time() - 20
    cache = shared.cache
    group = cache.keys.group(await cache.scope(source.caller), ListFilter.build(status="completed"))
    await cache.store.put(cache.keys.page(group, PageRef(1, 100)), group,
                          Entry(await api.fetch_page("tok", _request(ListFilter.build(status="completed")), caller="-"), old), 60)
    window = await source.window(ListFilter.build(status="completed"), window_request(first=5))
    assert window.fetched_at == old and source.fetched_at == old


def _request(lead_filter):
    return PageRequest(lead_filter, PageRef(1, 100))


async def test_windows_and_lookups_return_their_warnings_and_the_source_collects_them():
    shared, api = sources(n=2000, lookup_max_pages=2)
    source = shared.open("tok")
    result = await source.leads_by_id([123456789])  # not there, and the list is longer than the scan
    assert [w["code"] for w in result.warnings] == ["LOOKUP_TRUNCATED"]
    assert source.warnings == list(result.warnings)
    assert result.fetched_at is not None and source.fetched_at == result.fetched_at


async def test_stale_pages_served_on_an_upstream_failure_are_a_warning_and_old():
    shared, api = sources(cache_ttl=0.05, cache_stale_if_error=60)
    await shared.open("tok").window(ALL_LEADS, window_request(first=10))
    await asyncio.sleep(0.1)
    api.failing = True
    source = shared.open("tok")
    window = await source.window(ALL_LEADS, window_request(first=10))
    assert len(window.leads) == 10
    (warning,) = source.warnings
    assert warning["code"] == "STALE_DATA" and warning["upstreamError"] == "UPSTREAM_UNAVAILABLE"
    assert source.fetched_at < time.time() - 0.05  # past its TTL: an answer from it is not stored


async def test_no_cache_reads_no_cached_page_and_still_stores_what_it_fetched():
    shared, api = sources()
    await shared.open("tok").window(ALL_LEADS, window_request(first=10))
    fresh = shared.open("tok", fresh=True)
    assert await fresh.cached(ALL_LEADS) == [] and fresh.seen([r.id for r in api.upstream.records[:3]]) == {}
    await fresh.window(ALL_LEADS, window_request(first=10))
    assert len(api.calls) == 2
    await shared.open("tok").window(ALL_LEADS, window_request(first=10))
    assert len(api.calls) == 2  # the fresh request's page was stored


async def test_callers_never_share_pages_and_the_deadline_and_caller_reach_the_client():
    shared, api = sources()
    await shared.open("alice", deadline=123.0).window(ALL_LEADS, window_request(first=10))
    await shared.open("bob", deadline=456.0).window(ALL_LEADS, window_request(first=10))
    assert len(api.calls) == 2 and api.deadlines == [123.0, 456.0]
    # The client gets the caller's HMAC (its unit of fairness and of the breakers), never the token.
    assert api.callers == [shared.caller("alice"), shared.caller("bob")]
    assert shared.caller("alice") != shared.caller("bob") and "alice" not in shared.caller("alice")


async def test_without_a_token_every_read_is_unauthenticated_and_nothing_is_called():
    shared, api = sources()
    source = shared.open(None)
    with pytest.raises(Unauthenticated):
        await source.window(ALL_LEADS, window_request(first=10))
    with pytest.raises(Unauthenticated):
        await source.leads_by_id([1])
    assert api.calls == []


async def test_reused_cached_pages_count_as_hits_for_the_request_log():
    shared, api = sources()
    await shared.open("tok").window(ALL_LEADS, window_request(first=50))
    scope = request_scope.RequestScope(request_id="r1")
    token = request_scope.enter(scope)
    try:
        window = await shared.open("tok").window(ALL_LEADS, window_request(first=10))
    finally:
        request_scope.leave(token)
    assert window.reused == 1 and scope.cache_hits == 1 and len(api.calls) == 1
