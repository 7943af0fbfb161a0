"""The page cache, piece by piece, with real objects: keys, codec, single flight, the in-process store,
``PageCache`` freshness rules (real ``asyncio.sleep`` over short TTLs), and ``LeadReader.window`` reusing
cached pages the way ``gateway/graphql/context.py`` wires it.

The network is a counting async ``fetch`` (or ``InMemoryUpstream`` from test_reader); nothing is mocked.
Property tests over random filters, tokens and JSON live in ``test_cache_properties.py``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import pickle
import secrets
import time
from datetime import date, timedelta

import pytest

from gateway.datasource.cache.codec import Entry, decode, encode
from gateway.datasource.cache.keys import LEADS_PATH, PREFIX, KeyMaker
from gateway.datasource.cache.page_cache import PageCache, Served
from gateway.datasource.cache.singleflight import SingleFlight
from gateway.datasource.cache.stores import MemoryStore
from gateway.demo.data import dataset_for_token
from gateway.errors import RateLimited, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.config import Settings
from gateway.datasource.source import LeadsSources
from gateway.leads.pagination import PageRef, encode_cursor, resolve_window
from gateway.observability.metrics import Stats
from gateway.leads.records import LeadPage
from gateway.datasource.parse import parse_page
from tests.unit.test_reader import InMemoryUpstream, make_records

TTL = 0.2  # short freshness lifetime for the timing tests
PAST_TTL = 0.25  # a sleep that takes an entry of age 0 past TTL


# --- helpers ---------------------------------------------------------------------------------------

def lead_page(version: int, n: int = 3, page: int = 1, per_page: int = 10) -> LeadPage:
    """A page whose ``total`` tells which fetch produced it (``version``)."""
    return LeadPage(page=page, per_page=per_page, total=1000 + version, last_page=100,
                    items=tuple(make_records(n, first_id=version * 100_000)))


class Fetch:
    """A counting upstream call: returns version ``base + k`` on its ``k``-th call, or raises ``error``.

    ``gate`` (an ``asyncio.Event``), when given, holds every call until it is set.
    """

    def __init__(self, *, delay: float = 0.01, error: Exception | None = None, gate: asyncio.Event | None = None,
                 n: int = 3, base: int = 0) -> None:
        self.calls = 0
        self.base = base
        self.delay = delay
        self.error = error
        self.gate = gate
        self.n = n
        self.started = asyncio.Event()

    async def __call__(self) -> LeadPage:
        self.calls += 1
        version = self.base + self.calls
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return lead_page(version, self.n)


class ExceptionCollector:
    """Installs a loop exception handler (what asyncio calls for "Task exception was never retrieved")."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.contexts: list[dict] = []
        self._old = None

    def __enter__(self) -> ExceptionCollector:
        self._old = self.loop.get_exception_handler()
        self.loop.set_exception_handler(lambda _loop, ctx: self.contexts.append(ctx))
        return self

    def __exit__(self, *exc) -> None:
        self.loop.set_exception_handler(self._old)

    @property
    def lost(self) -> list[dict]:
        return [c for c in self.contexts if "never retrieved" in c.get("message", "")]


def cancel(tasks) -> None:
    for task in tasks:
        task.cancel()


async def settle(rounds: int = 10) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def caches():
    """Builds ``PageCache``s over fresh ``MemoryStore``s; closes them (and their background tasks) after."""
    made: list[PageCache] = []

    def make(*, store: MemoryStore | None = None, max_leads: int = 100_000, **kw) -> PageCache:
        kw.setdefault("secret", "test-secret")
        kw.setdefault("stats", Stats())
        cache = PageCache(store if store is not None else MemoryStore(max_leads=max_leads), **kw)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


Q = ListFilter.build(status="completed")
REF = PageRef(1, 10)


# === 1. keys ========================================================================================

def test_equal_filters_built_any_way_share_a_group_key():
    km = KeyMaker("s")
    caller = km.caller("token")
    d1, d2 = date(2025, 1, 1), date(2025, 2, 1)
    variants = [
        ListFilter.build(status="completed", campaign_id=7, phone_number="+1555", date_from=d1, date_to=d2),
        ListFilter.build(date_to=d2, date_from=d1, phone_number="+1555", campaign_id=7, status="completed"),
        ListFilter.build(phone_number="  +1555\t", status="completed", date_to=d2, campaign_id=7, date_from=d1),
        ListFilter(status="completed", campaign_id=7, phone_number="+1555", date_from=d1, date_to=d2),
        ListFilter.build(status="completed", phone_number="+1555", date_from=d1, date_to=d2).with_campaign(7),
    ]
    assert len({km.group(caller, q) for q in variants}) == 1


@pytest.mark.parametrize("phone", ["", "   ", "\t\n", None])
def test_empty_phone_is_no_phone_in_the_key(phone):
    km = KeyMaker("s")
    caller = km.caller("t")
    assert km.group(caller, ListFilter.build(phone_number=phone)) == km.group(caller, ALL_LEADS)
    assert km.group(caller, ListFilter.build(status="created", phone_number=phone)) == \
        km.group(caller, ListFilter(status="created"))


def test_different_filters_give_different_group_keys():
    km = KeyMaker("s")
    caller = km.caller("t")
    d = date(2025, 3, 4)
    queries = [
        ALL_LEADS,
        ListFilter(status="created"), ListFilter(status="completed"),
        ListFilter(campaign_id=1), ListFilter(campaign_id=11), ListFilter(campaign_id=1, status="created"),
        ListFilter(phone_number="+1"), ListFilter(phone_number="+11"), ListFilter(phone_number="1"),
        ListFilter(phone_number="a&status=created"), ListFilter(phone_number="a", status="created"),
        ListFilter(phone_number="x#page=1&per_page=10"),
        ListFilter(date_from=d), ListFilter(date_to=d), ListFilter(date_from=d, date_to=d),
        ListFilter(date_from=d + timedelta(days=1)),
    ]
    keys = [km.group(caller, q) for q in queries]
    assert len(set(keys)) == len(queries)
    # A filter value can never make a group key look like another group's page key.
    page_keys = {km.page(k, REF) for k in keys}
    assert not page_keys & set(keys)


def test_page_keys_differ_by_page_and_per_page():
    km = KeyMaker("s")
    group = km.group(km.caller("t"), ALL_LEADS)
    refs = [PageRef(p, s) for p in (1, 2, 10, 11) for s in (1, 10, 11, 100)]
    keys = [km.page(group, r) for r in refs]
    assert len(set(keys)) == len(refs)
    assert all(k.startswith(group + "#") for k in keys)
    assert km.page(group, PageRef(1, 11)) != km.page(group, PageRef(11, 1))


def test_key_layout_is_prefix_hmac_of_token_path_and_params():
    secret, token = "k3y", "tok-123"
    km = KeyMaker(secret)
    caller = km.caller(token)
    expected = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()[:32]
    assert caller == expected
    assert caller != hashlib.sha256(token.encode()).hexdigest()[:32]  # keyed: not a plain digest
    assert km.group(caller, ListFilter(status="created", campaign_id=3)) == \
        f"{PREFIX}:{expected}:{LEADS_PATH}?campaign_id=3&status=created"


@pytest.mark.parametrize("token", [
    "abc", "zq", "lg1x", "Bearer abc", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    secrets.token_urlsafe(48), secrets.token_hex(40), "jos\u00e9-\u00fcber-token",
])
def test_the_token_never_appears_in_a_key(token):
    # Fixed secrets, so a short token like "abc" gives the same digest on every run.
    for secret in ("s", "another-secret", "x" * 64):
        km = KeyMaker(secret)
        caller = km.caller(token)
        group = km.group(caller, ListFilter.build(status="created", phone_number="+15550001"))
        for key in (caller, group, km.page(group, PageRef(3, 25))):
            assert token not in key
            assert token.encode().hex() not in key
        assert len(caller) == 32 and set(caller) <= set("0123456789abcdef")


def test_same_secret_same_caller_across_instances():
    a, b = KeyMaker("shared-secret"), KeyMaker("shared-secret")
    assert a.caller("tok") == b.caller("tok")
    assert a.group(a.caller("tok"), Q) == b.group(b.caller("tok"), Q)
    assert a.caller("tok") != a.caller("tok2")


def test_different_secret_different_caller():
    assert KeyMaker("one").caller("tok") != KeyMaker("two").caller("tok")


@pytest.mark.parametrize("unset", [None, ""])
def test_unset_secret_is_random_per_instance_but_stable_within_one(unset):
    a, b = KeyMaker(unset), KeyMaker(unset)
    assert a.caller("tok") == a.caller("tok")
    assert a.caller("tok") != b.caller("tok")


async def test_two_gateways_with_one_secret_share_entries_and_other_secrets_do_not(caches):
    store = MemoryStore(max_leads=1000)
    first = caches(store=store, ttl=30, secret="shared")
    twin = caches(store=store, ttl=30, secret="shared")
    stranger = caches(store=store, ttl=30, secret="other")
    f1, f2, f3 = Fetch(), Fetch(), Fetch()
    await first.get_or_fetch(first.caller("tok"), Q, REF, f1)
    served = await twin.get_or_fetch(twin.caller("tok"), Q, REF, f2)
    assert served.page == lead_page(1) and f2.calls == 0
    await stranger.get_or_fetch(stranger.caller("tok"), Q, REF, f3)
    assert f3.calls == 1


# === 2. codec =======================================================================================

CODEC_TOKENS = ("demo", "tenant-a", "tenant-b", "\u00fcnic\u00f8de")


def paginator_bodies(token: str, per_page: int) -> list[dict]:
    rows = list(dataset_for_token(token))
    total = len(rows)
    last_page = max(1, -(-total // per_page))
    bodies = []
    for page in range(1, last_page + 2):  # one past the end: an empty page
        data = rows[(page - 1) * per_page: page * per_page]
        bodies.append({
            "current_page": page, "data": data, "per_page": per_page, "total": total, "last_page": last_page,
            "from": (page - 1) * per_page + 1 if data else None, "to": (page - 1) * per_page + len(data) if data else None,
            "path": "https://example.test/user/leads", "first_page_url": "...", "last_page_url": "...",
            "next_page_url": None, "prev_page_url": None, "links": [],
        })
    return bodies


def realistic_pages() -> list[LeadPage]:
    return [parse_page(b) for token in CODEC_TOKENS for per_page in (100, 7) for b in paginator_bodies(token, per_page)]


def test_realistic_pages_cover_the_quirks():
    # The round trip below is only meaningful if the data really has the quirks.
    rows = [r for t in CODEC_TOKENS for r in dataset_for_token(t)]
    assert any(r["variables"] == [] for r in rows)
    assert any(r["campaign"] is None for r in rows)
    assert {len(r["secondary_contacts"]) for r in rows} == {0, 1, 2, 3}
    assert any(not json.dumps(r["variables"], ensure_ascii=False).isascii() for r in rows)
    assert any(not p.items for p in realistic_pages())


def test_round_trip_of_realistic_pages():
    pages = realistic_pages()
    for i, page in enumerate(pages):
        entry = Entry(page, time.time() - i * 0.123)
        raw = encode(entry)
        back = decode(raw)
        assert back == entry
        assert decode(raw.encode("utf-8")) == entry  # Redis hands back bytes
        for lead in back.page.items:
            for dt in (lead.created_at, lead.updated_at,
                       *(t for c in lead.secondary_contacts for t in (c.created_at, c.updated_at))):
                assert dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


def test_round_trip_keeps_the_quirky_fields():
    by_id = {p.id: p for page in realistic_pages() for p in page.items}
    rows = [r for t in CODEC_TOKENS for r in dataset_for_token(t)]
    empty_vars = next(r for r in rows if r["variables"] == [])
    no_campaign = next(r for r in rows if r["campaign"] is None)
    three = next(r for r in rows if len(r["secondary_contacts"]) == 3)
    accented = next(r for r in rows if not json.dumps(r["variables"], ensure_ascii=False).isascii())
    page = LeadPage(1, 4, 4, 1, tuple(by_id[r["id"]] for r in (empty_vars, no_campaign, three, accented)))
    back = decode(encode(Entry(page, 1.5))).page
    a, b, c, d = back.items
    assert a.variables == {}
    assert b.campaign is None and b.campaign_id is not None
    assert len(c.secondary_contacts) == 3 and c.secondary_contacts == by_id[three["id"]].secondary_contacts
    assert d.variables["customer_name"] == accented["variables"]["customer_name"]


def test_encoding_is_json_text_and_never_pickle(monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("the codec must not use pickle")

    monkeypatch.setattr(pickle, "dumps", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    page = realistic_pages()[0]
    raw = encode(Entry(page, 12.5))
    assert isinstance(raw, str)
    doc = json.loads(raw)
    assert isinstance(doc, dict) and doc["v"] == 1 and doc["at"] == 12.5
    assert len(doc["items"]) == len(page.items)
    name = next(r.variables["customer_name"] for r in page.items if "customer_name" in r.variables)
    assert name in raw  # readable text (ensure_ascii=False), not an opaque blob
    assert decode(raw) == Entry(page, 12.5)


@pytest.mark.parametrize("raw", [
    "", "not json", b"\xff\xfe\x00", "null", "[]", "1", '"x"', "{}", '{"v": 2}', '{"v": "1"}', '{"v": null}',
    '{"v": 1}', '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1, "items": [[1, 2]]}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1, "items": 5}',
    '{"v": 1, "at": "soon", "page": 1, "per_page": 1, "total": 1, "last_page": 1, "items": []}',
    '{"v": 1, "at": {}, "page": 1, "per_page": 1, "total": 1, "last_page": 1, "items": []}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1,'
    ' "items": [[1, 2, "+1", {}, "created", "yesterday", "2025-01-01T00:00:00+00:00", null, []]]}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1,'
    ' "items": [[1, 2, "+1", {}, "created", 5, "2025-01-01T00:00:00+00:00", null, []]]}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1,'
    ' "items": [[1, 2, "+1", {}, "created", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00", [3], []]]}',
    '{"v": 1, "at": 1, "page": 1, "per_page": 1, "total": 1, "last_page": 1,'
    ' "items": [[1, 2, "+1", {}, "created", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00", null, [[1]]]]}',
])
def test_malformed_or_other_version_input_is_a_value_error(raw):
    with pytest.raises(ValueError):
        decode(raw)


def test_a_pickled_entry_is_refused_as_a_value_error():
    entry = Entry(lead_page(1), 1.0)
    with pytest.raises(ValueError):
        decode(pickle.dumps(entry))


def test_an_encoded_entry_with_another_version_is_refused():
    doc = json.loads(encode(Entry(lead_page(1), 1.0)))
    for v in (0, 2, "1", None):
        doc["v"] = v
        with pytest.raises(ValueError):
            decode(json.dumps(doc))
    del doc["v"]
    with pytest.raises(ValueError):
        decode(json.dumps(doc))


def test_a_huge_fetched_at_is_a_value_error():
    doc = json.loads(encode(Entry(lead_page(1), 1.0)))
    doc["at"] = 10 ** 400  # valid JSON; float() of it overflows
    with pytest.raises(ValueError):
        decode(json.dumps(doc))


def test_deeply_nested_json_is_a_value_error():
    with pytest.raises(ValueError):
        decode("[" * 100_000 + "]" * 100_000)


# === 3. single flight ===============================================================================

async def test_fifty_concurrent_runs_share_one_call():
    sf: SingleFlight[str] = SingleFlight()
    calls = 0

    async def make() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return "result"

    results = await asyncio.gather(*(sf.run("k", make) for _ in range(50)))
    assert calls == 1
    assert results == ["result"] * 50
    assert len(sf) == 0


async def test_different_keys_are_separate_calls():
    sf: SingleFlight[str] = SingleFlight()
    calls: list[str] = []

    def maker(key: str):
        async def make() -> str:
            calls.append(key)
            await asyncio.sleep(0.01)
            return key.upper()
        return make

    results = await asyncio.gather(*(sf.run(k, maker(k)) for k in ("a", "b", "c", "a", "b", "a")))
    assert sorted(calls) == ["a", "b", "c"]
    assert results == ["A", "B", "C", "A", "B", "A"]


async def test_a_later_run_after_completion_calls_again():
    sf: SingleFlight[int] = SingleFlight()
    calls = 0

    async def make() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await sf.run("k", make) == 1
    assert await sf.run("k", make) == 2


async def test_cancelling_one_waiter_does_not_cancel_the_shared_call():
    sf: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()
    calls = 0
    finished = False

    async def make() -> str:
        nonlocal calls, finished
        calls += 1
        await gate.wait()
        finished = True
        return "shared"

    waiters = [asyncio.create_task(sf.run("k", make)) for _ in range(5)]
    await settle()
    waiters[0].cancel()
    await settle()
    assert waiters[0].cancelled()
    gate.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == ["shared"] * 4
    assert calls == 1 and finished


async def test_cancelling_every_waiter_still_lets_the_call_finish():
    sf: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()
    done = asyncio.Event()

    async def make() -> str:
        await gate.wait()
        done.set()
        return "x"

    waiters = [asyncio.create_task(sf.run("k", make)) for _ in range(3)]
    await settle()
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    gate.set()
    await asyncio.wait_for(done.wait(), 1)
    await settle()
    assert len(sf) == 0


async def test_a_failure_reaches_every_waiter_and_is_not_kept():
    sf: SingleFlight[str] = SingleFlight()
    calls = 0

    async def fail() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise UpstreamUnavailable(f"down #{calls}")

    results = await asyncio.gather(*(sf.run("k", fail) for _ in range(10)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, UpstreamUnavailable) and r.message == "down #1" for r in results)
    assert len(sf) == 0

    async def ok() -> str:
        nonlocal calls
        calls += 1
        return "fine"

    assert await sf.run("k", ok) == "fine"  # not the stored failure
    assert calls == 2


async def test_the_lost_exception_detector_works():
    # Control for the next test: an unretrieved task failure IS reported to the loop's handler.
    with ExceptionCollector(asyncio.get_running_loop()) as seen:
        async def fail():
            raise RuntimeError("lost")

        task = asyncio.get_running_loop().create_task(fail())
        await settle()
        assert task.done()
        del task
        gc.collect()
    assert len(seen.lost) == 1


async def test_no_lost_exception_when_every_waiter_left_and_the_call_fails():
    loop = asyncio.get_running_loop()
    with ExceptionCollector(loop) as seen:
        sf: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()
        finished = asyncio.Event()

        async def fail() -> str:
            try:
                await gate.wait()
                raise UpstreamTimeout("slow")
            finally:
                finished.set()

        waiters = [asyncio.create_task(sf.run("k", fail)) for _ in range(3)]
        await settle()
        cancel(waiters)  # (in a helper: a loop variable here would keep a waiter, and so the call, alive)
        await asyncio.gather(*waiters, return_exceptions=True)
        gate.set()
        await asyncio.wait_for(finished.wait(), 1)
        await settle()
        assert len(sf) == 0
        # Drop every reference, so the failed call's task is collected now: an unretrieved exception is
        # reported when a task is finalised. (A cancelled waiter's traceback holds the call's task.)
        del waiters, sf
        gc.collect()
        await settle()
    assert seen.lost == []


# === 4. MemoryStore =================================================================================

def entry_of(n: int, *, version: int = 1, fetched_at: float | None = None) -> Entry:
    return Entry(lead_page(version, n), time.time() if fetched_at is None else fetched_at)


async def test_store_stays_within_max_leads_and_evicts_the_oldest():
    store = MemoryStore(max_leads=50)
    sizes = [3, 7, 1, 0, 10, 5, 9, 2, 4, 8] * 5
    for i, n in enumerate(sizes):
        await store.put(f"k{i}", f"g{i % 3}", entry_of(n, version=i), keep_for=60)
        assert store.leads <= 50
    live = [i for i in range(len(sizes)) if await store.get(f"k{i}") is not None]
    # The survivors are exactly the newest puts, and nothing newer was dropped.
    assert live == list(range(live[0], len(sizes)))
    assert live[0] > 0
    assert store.leads == sum(max(1, sizes[i]) for i in live)
    assert len(store) == len(live)
    # The next older one did not fit next to them.
    assert store.leads + max(1, sizes[live[0] - 1]) > 50


async def test_an_empty_page_weighs_one_lead():
    store = MemoryStore(max_leads=5)
    for i in range(10):
        await store.put(f"k{i}", "g", entry_of(0), keep_for=60)
    assert store.leads == 5 and len(store) == 5
    assert [await store.get(f"k{i}") is not None for i in range(10)] == [False] * 5 + [True] * 5


async def test_group_index_forgets_evicted_keys():
    store = MemoryStore(max_leads=10)
    for i in range(3):
        await store.put(f"a{i}", "group-a", entry_of(4, version=i), keep_for=60)  # a0 is evicted by a2
    for i in range(3):
        await store.put(f"b{i}", "group-b", entry_of(4, version=10 + i), keep_for=60)  # evicts a1, a2, b0
    assert await store.group("group-a", 0) == []
    assert sorted(e.page.total for e in await store.group("group-b", 0)) == [1011, 1012]
    assert "group-a" not in store._groups  # no index entry left behind for an emptied group
    assert store._groups["group-b"] == {"b1", "b2"}


async def test_group_filters_by_fetched_at():
    store = MemoryStore(max_leads=100)
    now = time.time()
    await store.put("old", "g", entry_of(1, version=1, fetched_at=now - 10), keep_for=60)
    await store.put("new", "g", entry_of(1, version=2, fetched_at=now), keep_for=60)
    assert [e.page.total for e in await store.group("g", now - 5)] == [1002]
    assert len(await store.group("g", now - 20)) == 2
    assert await store.group("other", 0) == []


async def test_entries_past_keep_for_are_gone_on_read():
    store = MemoryStore(max_leads=100)
    await store.put("short", "g", entry_of(3), keep_for=0.05)
    await store.put("long", "g", entry_of(4), keep_for=60)
    await store.put("dead", "g", entry_of(2, fetched_at=time.time() - 10), keep_for=5)  # kept from fetch time
    assert await store.get("dead") is None
    assert await store.get("short") is not None
    await asyncio.sleep(0.08)
    assert await store.get("short") is None
    assert [e.page.items for e in await store.group("g", 0)] == [entry_of(4).page.items]
    assert store.leads == 4 and len(store) == 1
    assert store._groups["g"] == {"long"}


async def test_group_skips_entries_that_expired_unread():
    store = MemoryStore(max_leads=100)
    await store.put("short", "g", entry_of(3, version=1), keep_for=0.05)
    await store.put("long", "g", entry_of(4, version=2), keep_for=60)
    await asyncio.sleep(0.08)
    assert [e.page.total for e in await store.group("g", 0)] == [1002]  # no get() in between
    assert store.leads == 4 and len(store) == 1


async def test_reputting_a_key_replaces_it_without_double_counting():
    store = MemoryStore(max_leads=20)
    await store.put("k", "g", entry_of(3, version=1), keep_for=60)
    await store.put("k", "g", entry_of(3, version=2), keep_for=60)
    assert store.leads == 3 and len(store) == 1
    assert (await store.get("k")).page.total == 1002
    await store.put("k", "g", entry_of(8, version=3), keep_for=60)
    assert store.leads == 8 and len(store) == 1
    assert [e.page.total for e in await store.group("g", 0)] == [1003]


async def test_reputting_a_key_makes_it_the_newest():
    store = MemoryStore(max_leads=9)
    for k in ("a", "b", "c"):
        await store.put(k, "g", entry_of(3), keep_for=60)
    await store.put("a", "g", entry_of(3), keep_for=60)  # refreshed: now b is the oldest
    await store.put("d", "g", entry_of(3), keep_for=60)
    assert [k for k in "abcd" if await store.get(k) is not None] == ["a", "c", "d"]
    assert store.leads == 9


async def test_close_empties_the_store():
    store = MemoryStore(max_leads=100)
    await store.put("k", "g", entry_of(3), keep_for=60)
    await store.close()
    assert store.leads == 0 and len(store) == 0
    assert await store.get("k") is None and await store.group("g", 0) == []


# === 5. PageCache ===================================================================================

async def test_miss_fetches_then_a_fresh_hit_does_not(caches):
    cache = caches(ttl=TTL)
    caller, fetch = cache.caller("tok"), Fetch()
    first = await cache.get_or_fetch(caller, Q, REF, fetch)
    assert (first.page, first.stale) == (lead_page(1), None)
    assert fetch.calls == 1 and cache.stats.cache_misses == 1 and cache.stats.cache_hits == 0
    second = await cache.get_or_fetch(caller, Q, REF, fetch)
    assert second.page == lead_page(1) and second.stale is None
    assert fetch.calls == 1 and cache.stats.cache_hits == 1 and cache.stats.cache_misses == 1


async def test_entries_are_per_caller_filter_and_page(caches):
    cache = caches(ttl=30)
    fetch = Fetch()
    a, b = cache.caller("tenant-a"), cache.caller("tenant-b")
    await cache.get_or_fetch(a, Q, REF, fetch)
    for caller, query, ref in ((b, Q, REF), (a, ALL_LEADS, REF), (a, Q, PageRef(2, 10)), (a, Q, PageRef(1, 11))):
        served = await cache.get_or_fetch(caller, query, ref, fetch)
        assert served.page != lead_page(1)  # never another caller's, filter's or page's entry
    assert fetch.calls == 5 and cache.stats.cache_hits == 0


async def test_concurrent_callers_with_different_tokens_are_not_coalesced(caches):
    cache = caches(ttl=30)
    fa, fb = Fetch(), Fetch()
    ra, rb = await asyncio.gather(cache.get_or_fetch(cache.caller("a"), Q, REF, fa),
                                  cache.get_or_fetch(cache.caller("b"), Q, REF, fb))
    assert fa.calls == 1 and fb.calls == 1
    assert cache.stats.coalesced_waiters["process"] == 0


async def test_ttl_expiry_fetches_again(caches):
    cache = caches(ttl=TTL)
    caller, fetch = cache.caller("tok"), Fetch()
    await cache.get_or_fetch(caller, Q, REF, fetch)
    await asyncio.sleep(PAST_TTL)
    served = await cache.get_or_fetch(caller, Q, REF, fetch)
    assert (served.page, served.stale) == (lead_page(2), None)
    assert fetch.calls == 2 and cache.stats.cache_misses == 2 and cache.stats.cache_hits == 0


async def test_concurrent_misses_are_one_fetch(caches):
    cache = caches(ttl=30)
    caller, fetch = cache.caller("tok"), Fetch(delay=0.02)
    results = await asyncio.gather(*(cache.get_or_fetch(caller, Q, REF, fetch) for _ in range(20)))
    assert fetch.calls == 1
    assert {r.page.total for r in results} == {1001}
    assert cache.stats.coalesced_waiters["process"] == 19


async def test_a_caller_that_goes_away_does_not_waste_the_call(caches):
    cache = caches(ttl=30)
    caller, gate = cache.caller("tok"), asyncio.Event()
    fetch = Fetch(gate=gate)
    request = asyncio.create_task(cache.get_or_fetch(caller, Q, REF, fetch))
    await fetch.started.wait()
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    gate.set()
    await asyncio.sleep(0.05)
    later = Fetch(base=50)
    served = await cache.get_or_fetch(caller, Q, REF, later)
    assert served.page == lead_page(1)  # the abandoned call finished and was stored
    assert fetch.calls == 1 and later.calls == 0


async def test_one_caller_going_away_does_not_fail_the_others(caches):
    cache = caches(ttl=30)
    caller, gate = cache.caller("tok"), asyncio.Event()
    fetch = Fetch(gate=gate)
    requests = [asyncio.create_task(cache.get_or_fetch(caller, Q, REF, fetch)) for _ in range(3)]
    await fetch.started.wait()
    requests[0].cancel()
    await settle()
    gate.set()
    results = await asyncio.gather(*requests[1:])
    assert [r.page for r in results] == [lead_page(1)] * 2
    assert requests[0].cancelled() and fetch.calls == 1


async def test_bypass_skips_a_fresh_entry_stores_the_result_and_coalesces(caches):
    cache = caches(ttl=30)
    caller, fetch = cache.caller("tok"), Fetch(delay=0.02)
    await cache.get_or_fetch(caller, Q, REF, fetch)
    results = await asyncio.gather(*(cache.get_or_fetch(caller, Q, REF, fetch, bypass=True) for _ in range(3)))
    assert fetch.calls == 2  # the fresh entry was skipped, and the three bypassing calls made one fetch
    assert [r.page.total for r in results] == [1002] * 3
    assert cache.stats.coalesced_waiters["process"] == 2
    assert cache.stats.cache_hits == 0
    served = await cache.get_or_fetch(caller, Q, REF, fetch)  # the bypassing result was stored
    assert served.page.total == 1002 and fetch.calls == 2 and cache.stats.cache_hits == 1


async def test_bypass_joins_an_ordinary_miss_in_flight(caches):
    cache = caches(ttl=30)
    caller, fetch = cache.caller("tok"), Fetch(delay=0.02)
    plain, fresh = await asyncio.gather(cache.get_or_fetch(caller, Q, REF, fetch),
                                        cache.get_or_fetch(caller, Q, REF, fetch, bypass=True))
    assert fetch.calls == 1 and plain.page == fresh.page
    assert cache.stats.coalesced_waiters["process"] == 1


async def test_ttl_zero_stores_nothing_but_still_coalesces(caches):
    store = MemoryStore(max_leads=1000)
    cache = caches(store=store, ttl=0, swr=5, stale_if_error=5)
    caller, fetch = cache.caller("tok"), Fetch(delay=0.02)
    results = await asyncio.gather(*(cache.get_or_fetch(caller, Q, REF, fetch) for _ in range(10)))
    assert fetch.calls == 1 and {r.page.total for r in results} == {1001}
    assert cache.stats.coalesced_waiters["process"] == 9
    assert len(store) == 0 and store.leads == 0
    assert await cache.fresh_pages(caller, Q) == []
    again = await cache.get_or_fetch(caller, Q, REF, fetch)  # nothing kept: the next call fetches
    assert again.page.total == 1002 and fetch.calls == 2 and cache.stats.cache_hits == 0


async def test_ttl_zero_never_serves_stale_on_error(caches):
    cache = caches(ttl=0, stale_if_error=5)
    caller = cache.caller("tok")
    await cache.get_or_fetch(caller, Q, REF, Fetch())
    with pytest.raises(UpstreamUnavailable):
        await cache.get_or_fetch(caller, Q, REF, Fetch(error=UpstreamUnavailable("down")))


async def test_swr_serves_stale_at_once_and_revalidates_once(caches):
    cache = caches(ttl=TTL, swr=5)
    caller = cache.caller("tok")
    await cache.get_or_fetch(caller, Q, REF, Fetch())
    await asyncio.sleep(PAST_TTL)
    gate = asyncio.Event()
    refresh = Fetch(gate=gate, base=10)
    # The refresh is held at the gate: the stale reads must not wait for it.
    results = await asyncio.wait_for(
        asyncio.gather(*(cache.get_or_fetch(caller, Q, REF, refresh) for _ in range(10))), 0.5)
    assert all(r.stale == "revalidating" and r.page == lead_page(1) for r in results)
    assert all(r.age >= TTL for r in results)
    assert cache.stats.stale_served["revalidating"] == 10
    gate.set()
    await asyncio.sleep(0.1)
    assert refresh.calls == 1  # one background fetch for ten stale reads
    after = await cache.get_or_fetch(caller, Q, REF, Fetch())
    assert (after.page, after.stale) == (lead_page(11), None)  # the refreshed page, fresh again: no fetch
    assert cache.stats.cache_hits == 1


async def test_a_failed_background_refresh_is_not_lost_and_the_stale_page_stays(caches):
    loop = asyncio.get_running_loop()
    with ExceptionCollector(loop) as seen:
        cache = caches(ttl=TTL, swr=5)
        caller = cache.caller("tok")
        await cache.get_or_fetch(caller, Q, REF, Fetch())
        await asyncio.sleep(PAST_TTL)
        failing = Fetch(error=UpstreamUnavailable("down"))
        served = await cache.get_or_fetch(caller, Q, REF, failing)
        assert served.stale == "revalidating"
        await asyncio.sleep(0.05)
        assert failing.calls == 1
        again = await cache.get_or_fetch(caller, Q, REF, Fetch())
        assert again.stale == "revalidating" and again.page == lead_page(1)
        await asyncio.sleep(0.05)
        gc.collect()
    assert seen.lost == []


async def test_stale_if_error_serves_the_stale_page_on_5xx_and_timeouts(caches):
    cache = caches(ttl=TTL, stale_if_error=5)
    caller = cache.caller("tok")
    cases = [(PageRef(1, 10), UpstreamUnavailable("down")), (PageRef(2, 10), UpstreamTimeout("slow"))]
    for ref, _ in cases:
        await cache.get_or_fetch(caller, Q, ref, Fetch())
    await asyncio.sleep(PAST_TTL)  # one sleep for both cases
    for ref, error in cases:
        failing = Fetch(error=error)
        results = await asyncio.gather(*(cache.get_or_fetch(caller, Q, ref, failing) for _ in range(3)))
        assert failing.calls == 1
        for served in results:
            assert served.page == lead_page(1)
            assert served.stale == "upstream-error" and served.error_code == error.code
            assert TTL <= served.age < TTL + 5
    assert cache.stats.stale_served["upstream-error"] == 6
    assert cache.stats.stale_served["revalidating"] == 0


async def test_stale_if_error_does_not_cover_rate_limits_or_bad_responses(caches):
    cache = caches(ttl=TTL, stale_if_error=5)
    caller = cache.caller("tok")
    cases = [(PageRef(1, 10), RateLimited("slow down")), (PageRef(2, 10), UpstreamBadResponse("garbage"))]
    for ref, _ in cases:
        await cache.get_or_fetch(caller, Q, ref, Fetch())
    await asyncio.sleep(PAST_TTL)
    for ref, error in cases:
        with pytest.raises(type(error)):
            await cache.get_or_fetch(caller, Q, ref, Fetch(error=error))
    assert cache.stats.stale_served["upstream-error"] == 0


async def test_a_fresh_entry_is_not_needed_for_an_error_to_surface(caches):
    cache = caches(ttl=30, stale_if_error=5)
    with pytest.raises(UpstreamUnavailable):
        await cache.get_or_fetch(cache.caller("tok"), Q, REF, Fetch(error=UpstreamUnavailable("down")))


async def test_past_ttl_plus_stale_if_error_the_error_is_raised(caches):
    cache = caches(ttl=0.1, stale_if_error=0.15)
    caller = cache.caller("tok")
    await cache.get_or_fetch(caller, Q, REF, Fetch())
    await asyncio.sleep(0.3)
    with pytest.raises(UpstreamUnavailable):
        await cache.get_or_fetch(caller, Q, REF, Fetch(error=UpstreamUnavailable("down")))
    assert cache.stats.stale_served["upstream-error"] == 0


async def test_stale_if_error_window_is_checked_even_when_the_store_keeps_the_entry_longer(caches):
    # A shared store may hold an entry longer (another instance with a longer window put it there).
    store = MemoryStore(max_leads=1000)
    cache = caches(store=store, ttl=0.1, stale_if_error=0.2)
    caller = cache.caller("tok")
    group = cache.keys.group(caller, Q)
    await store.put(cache.keys.page(group, REF), group, Entry(lead_page(1), time.time() - 1.0), keep_for=60)
    with pytest.raises(UpstreamTimeout):
        await cache.get_or_fetch(caller, Q, REF, Fetch(error=UpstreamTimeout("slow")))
    await store.put(cache.keys.page(group, REF), group, Entry(lead_page(1), time.time() - 0.15), keep_for=60)
    served = await cache.get_or_fetch(caller, Q, REF, Fetch(error=UpstreamTimeout("slow")))
    assert served.stale == "upstream-error" and served.error_code == "UPSTREAM_TIMEOUT"


async def test_fresh_pages_are_this_callers_and_filters_newest_first(caches):
    cache = caches(ttl=TTL, stale_if_error=5)
    me, other = cache.caller("me"), cache.caller("other")
    other_filter = ListFilter.build(status="created")
    p1 = await cache.get_or_fetch(me, Q, PageRef(1, 10), Fetch(n=1))
    await asyncio.sleep(0.01)
    p2 = await cache.get_or_fetch(me, Q, PageRef(3, 7), Fetch(n=2))
    await asyncio.sleep(0.01)
    await cache.get_or_fetch(other, Q, PageRef(2, 10), Fetch(n=4))
    await cache.get_or_fetch(me, other_filter, PageRef(2, 10), Fetch(n=5))
    fresh = await cache.fresh_pages(me, Q)
    assert [p.page for p in fresh] == [p2.page, p1.page]
    assert [p.fetched_at for p in fresh] == [p2.fetched_at, p1.fetched_at]
    # Equal filters built another way find the same pages.
    assert await cache.fresh_pages(me, ListFilter.build(phone_number=" ", status="completed")) == fresh
    assert [len(p.page.items) for p in await cache.fresh_pages(other, Q)] == [4]
    assert [len(p.page.items) for p in await cache.fresh_pages(me, other_filter)] == [5]
    await asyncio.sleep(PAST_TTL)
    assert await cache.fresh_pages(me, Q) == []  # still stored (stale-if-error) but no longer fresh
    served = await cache.get_or_fetch(me, Q, PageRef(1, 10), Fetch(error=UpstreamUnavailable("down")))
    assert served.stale == "upstream-error"


# === 6. LeadsSource windows over the cache ==========================================================

class InMemoryAPI:
    """``LeadsAPI``'s one method, over ``InMemoryUpstream`` (the network is all that is faked)."""

    def __init__(self, upstream: InMemoryUpstream) -> None:
        self.upstream = upstream

    async def fetch_page(self, token: str, request, *, caller: str, deadline=None) -> LeadPage:
        return (await self.upstream.load(request.filter, request.page)).page


class Gateway:
    """A ``LeadsSource`` per request over one shared ``PageCache``, as the app wires them."""

    def __init__(self, cache: PageCache, upstream: InMemoryUpstream, token: str = "tok") -> None:
        self.cache = cache
        self.upstream = upstream
        self.token = token
        self.sources = LeadsSources(Settings(), cache.stats, api=InMemoryAPI(upstream), cache=cache)

    async def window(self, query=ALL_LEADS, *, first=None, after=None, last=None, before=None):
        total = len(self.upstream.records)
        fp = query.fingerprint
        request = resolve_window(first=first, last=last, fingerprint=fp, max_size=100,
                                 after=None if after is None else encode_cursor(after, fp, total),
                                 before=None if before is None else encode_cursor(before, fp, total))
        return await self.sources.open(self.token).window(query, request)


def ids(records) -> list[int]:
    return [r.id for r in records]


@pytest.fixture
def gateway(caches):
    def make(n: int, *, ttl: float = 30, token: str = "tok", cache: PageCache | None = None) -> Gateway:
        return Gateway(cache or caches(ttl=ttl), InMemoryUpstream(make_records(n)), token)
    return make


async def test_every_window_inside_a_cached_first_50_makes_no_call(gateway):
    gw = gateway(250)
    records = gw.upstream.records
    await gw.window(first=50)
    assert len(gw.upstream.calls) == 1
    gw.upstream.calls.clear()
    for start in range(50):
        for size in range(0, 51 - start):
            w = await gw.window(first=size, after=start - 1 if start else None)
            assert ids(w.leads) == ids(records[start:start + size]) and w.total == 250
            w = await gw.window(last=size, before=start + size)
            assert ids(w.leads) == ids(records[start:start + size])
            assert not gw.upstream.calls, (start, size)
    assert gw.cache.stats.cache_misses == 1


@pytest.mark.parametrize("kw, span", [
    ({"first": 10, "after": 19}, (20, 30)),
    ({"last": 5, "before": 30}, (25, 30)),
    ({"first": 50}, (0, 50)),
    ({"last": 50, "before": 50}, (0, 50)),
    ({"first": 3, "after": 46}, (47, 50)),
    ({"first": 0, "after": 10}, (11, 11)),
    ({"last": 20, "after": 2, "before": 45}, (25, 45)),
    ({"first": 30, "after": 5, "before": 16}, (6, 16)),
])
async def test_examples_of_windows_served_from_the_cache(gateway, kw, span):
    gw = gateway(250)
    await gw.window(first=50)
    gw.upstream.calls.clear()
    w = await gw.window(**kw)
    assert gw.upstream.calls == []
    assert ids(w.leads) == ids(gw.upstream.records[span[0]:span[1]])
    assert (w.start, w.total) == (span[0], 250)


async def test_the_cached_pages_are_not_used_for_another_filter_or_caller(gateway, caches):
    cache = caches(ttl=30)
    mine, theirs = gateway(250, cache=cache, token="me"), gateway(250, cache=cache, token="them")
    await mine.window(first=50)
    await mine.window(ListFilter.build(status="created"), first=10)
    assert len(mine.upstream.calls) == 2
    await theirs.window(first=10)
    assert len(theirs.upstream.calls) == 1


async def test_expired_pages_are_not_reused(gateway):
    gw = gateway(250, ttl=TTL)
    await gw.window(first=50)
    await asyncio.sleep(PAST_TTL)
    gw.upstream.calls.clear()
    await gw.window(first=10, after=19)
    assert len(gw.upstream.calls) == 1


async def test_last_alone_uses_the_cached_total_and_makes_no_probe(gateway):
    gw = gateway(250)
    await gw.window(first=50)
    gw.upstream.calls.clear()
    w = await gw.window(last=10)
    assert ids(w.leads) == ids(gw.upstream.records[240:250])
    assert not w.has_next and w.has_previous and w.total == 250
    assert len(gw.upstream.calls) == 1  # without the cache: a probe of (1, 100), then the tail
    (call,) = gw.upstream.calls
    assert call.page.start <= 240 and call.page.stop >= 250 and call.page != PageRef(1, 100)


async def test_last_alone_uses_the_newest_cached_total(gateway):
    gw = gateway(250)
    await gw.window(first=50)  # total 250
    gw.upstream.records.extend(make_records(10, first_id=900_000))
    await asyncio.sleep(0.01)
    await gw.window(first=10, after=99)  # fetched later: total 260
    gw.upstream.calls.clear()
    w = await gw.window(last=10)
    assert ids(w.leads) == ids(gw.upstream.records[250:260])
    assert w.total == 260 and not w.has_next
    assert len(gw.upstream.calls) == 1 and gw.upstream.calls[0].page != PageRef(1, 100)


async def test_last_alone_on_a_list_held_by_a_cached_page_makes_no_call(gateway):
    gw = gateway(40)
    await gw.window(first=50)
    gw.upstream.calls.clear()
    w = await gw.window(last=10)
    assert ids(w.leads) == ids(gw.upstream.records[30:40])
    assert gw.upstream.calls == []


async def test_last_alone_without_a_cached_page_still_probes(gateway):
    # Control for the two tests above: the same window on a cold cache needs the probe.
    gw = gateway(250)
    await gw.window(last=10)
    assert len(gw.upstream.calls) == 2 and gw.upstream.calls[0].page == PageRef(1, 100)


async def test_a_window_partly_covered_fetches_only_the_uncovered_part(gateway):
    gw = gateway(250)
    await gw.window(first=50)  # [0, 50)
    gw.upstream.calls.clear()
    w = await gw.window(first=20, after=39)  # [40, 60): [40, 50) is cached
    assert ids(w.leads) == ids(gw.upstream.records[40:60])
    (call,) = gw.upstream.calls
    assert call.page.start >= 50 and call.page.stop >= 60  # nothing below 50 asked for again


async def test_a_cached_page_saves_a_call_across_a_page_boundary(gateway):
    gw = gateway(300)
    await gw.window(first=100)  # [0, 100)
    gw.upstream.calls.clear()
    w = await gw.window(first=100, after=0)  # [1, 101): two calls on a cold cache
    assert ids(w.leads) == ids(gw.upstream.records[1:101])
    (call,) = gw.upstream.calls
    assert call.page.start >= 100 and call.page.stop >= 101


async def test_pages_fetched_for_one_window_serve_the_next(gateway):
    gw = gateway(250)
    await gw.window(first=20, after=39)  # [40, 60)
    await gw.window(first=20, after=59)  # [60, 80)
    gw.upstream.calls.clear()
    w = await gw.window(first=30, after=44)  # [45, 75): both halves cached
    assert ids(w.leads) == ids(gw.upstream.records[45:75])
    assert gw.upstream.calls == []


async def test_last_alone_with_an_outdated_cached_total_is_the_tail_or_warns(gateway):
    gw = gateway(250)
    await gw.window(first=50)  # total 250 cached (fresh for 30 s)
    gw.upstream.records.extend(make_records(10, first_id=900_000))  # ten leads created meanwhile
    w = await gw.window(last=10)
    assert w.total == 260
    tail = ids(w.leads) == ids(gw.upstream.records[250:260]) and not w.has_next
    assert tail or "LIST_CHANGED" in [x["code"] for x in w.warnings]
