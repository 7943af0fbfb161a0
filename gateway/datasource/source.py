"""``LeadsSource``: one caller's leads for one request, the only way from GraphQL to data.

Modelled on apollo's RESTDataSource: one object per caller and request, whose policy lives in one
place each:
- keys: every cache, coalescing and lease key holds ``caller``, an HMAC of the token, and the caller's
  generation (together its *scope*, ``cache/keys.py``), read once per request;
- writes: ``create_lead`` goes through the shared ``LeadWriter`` (``writes.py``: no duplicates, idempotency
  keys) and comes back with the caller's new scope, which the rest of the request reads under;
- dedup within the request: a page asked for twice in one request is one load (``load``);
- coalescing across requests and instances, freshness (TTL, stale-while-revalidate, stale-if-error):
  the shared ``PageCache``;
- errors: the upstream client classifies every outcome into the gateway's error family;
- what callers need back is *returned*: every page comes with its ``fetched_at``, every window and
  lookup with its warnings and the age of its oldest page. The source also keeps the request's
  totals of what it returned (``fetched_at``, ``warnings``): the oldest data and every warning of
  the answer, which the result cache and the response read once the operation is done.

``LeadsSources`` is the per-process part that every request's source shares: the upstream client and
the page cache, opened by ``start()`` and closed by ``close()`` (the app's lifespan); ``open(token, ...)``
makes a request's source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from gateway.config import Settings
from gateway.datasource.cache import PageCache, Served, build_page_cache
from gateway.datasource.cache.documents import DocumentStore
from gateway.datasource.client import LeadsAPI, PageRequest
from gateway.datasource.http_client import build_client
from gateway.datasource.live import LiveHub, build_bus
from gateway.datasource.traffic import TrafficControl
from gateway.datasource.reader import LeadReader, LookupResult, Placed, Window
from gateway.datasource.writes import LeadWriter, WriteResult
from gateway.errors import GatewayError, Unauthenticated
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.pagination import PageRef, WindowRequest
from gateway.leads.records import LeadPage, LeadRecord
from gateway.leads.writes import NewLead
from gateway.observability.metrics import Stats

UPSTREAM_MAX_PER_PAGE = 100  # the upstream rejects per_page > 100 with a 422

log = logging.getLogger("gateway.datasource")


class LeadsSources:
    """What every request's ``LeadsSource`` shares: the upstream client, the page cache, traffic control."""

    def __init__(self, settings: Settings, stats: Stats, *, api: LeadsAPI | None = None,
                 cache: PageCache | None = None) -> None:
        """``api`` and ``cache`` are made by ``start()`` from ``settings`` unless given (tests give them)."""
        self.settings = settings
        self.stats = stats
        self.traffic = TrafficControl(settings, stats)
        self.lookup_max_pages = settings.lookup_max_pages
        self.api = api
        self.cache = cache
        self.writer: LeadWriter | None = None
        self.live: LiveHub | None = None
        self.documents: DocumentStore | None = None  # APQ registrations, in the cache backend

    async def start(self) -> None:
        """Open the pooled upstream client (keep-alive connections shared by every request) and the cache."""
        s = self.settings
        if self.api is None:
            self.api = LeadsAPI(build_client(s), s.upstream_url, s.upstream_timeout, stats=self.stats,
                                retries=s.upstream_retries, retry_after_max=s.upstream_retry_after_max,
                                traffic=self.traffic, max_bytes=s.upstream_max_bytes)
        if self.cache is None:
            self.cache = build_page_cache(s, self.stats)
        self.writer = LeadWriter(self.api, self.cache, self.stats)
        self.documents = DocumentStore(self.cache.store, self.cache.keys, max_bytes=s.apq_cache_bytes, ttl=s.apq_ttl)
        bus = build_bus(s)
        self.live = LiveHub(self, interval=s.live_interval, max_per_caller=s.live_max_per_caller, bus=bus,
                            stats=self.stats)
        self.stats.live = self.live
        if not bus.shared:  # with Redis, writes reach the hub from the generations channel, on every instance
            self.cache.listeners.append(self.live.poke)
        self.live.start()

    async def close(self) -> None:
        if self.live is not None:
            await self.live.close()
        if self.writer is not None:
            await self.writer.close(grace=self.settings.upstream_timeout)
        if self.cache is not None:
            await self.cache.close()
        if self.api is not None:
            await self.api.close()
        log.info("stopped", extra={"fields": {"upstream_requests": dict(self.stats.upstream_requests)}})

    async def readiness(self) -> dict:
        """The cache backend's state (asked now) and traffic control's (breakers, concurrency, paused callers):
        reported, never a reason to stop serving."""
        store = self.cache.store
        if hasattr(store, "probe"):
            await store.probe()
        return {"cache": {"backend": store.backend, "state": store.state}, "upstream": self.traffic.readiness()}

    def caller(self, token: str) -> str:
        """The caller's key part: an HMAC of the token (never the token itself)."""
        return self.cache.caller(token)

    async def scope(self, caller: str) -> str:
        """The caller's scope now (its HMAC and generation): the key part of all its cached data, which a
        write changes everywhere at once (``PageCache.invalidate``)."""
        return await self.cache.scope(caller)

    def refusal(self, caller: str) -> GatewayError | None:
        """The refusal ``caller`` would get for its next upstream call for reasons of its own
        (``TrafficControl.refusal``), or None: asked before a request is executed."""
        return self.traffic.refusal(caller)

    def open(self, token: str | None, *, fresh: bool = False, deadline: float | None = None,
             scope: str | None = None) -> LeadsSource:
        """A source for one request by the holder of ``token`` (None: every read is ``UNAUTHENTICATED``).

        ``fresh``: the request said ``Cache-Control: no-cache`` (no cached page is used, fetched ones are
        still stored); ``deadline``: ``time.monotonic()`` by which the upstream must have answered;
        ``scope``: the caller's scope when the request already read it (else read at the first use).
        """
        return LeadsSource(self, token, fresh=fresh, deadline=deadline, scope=scope)


class LeadsSource:
    """One caller's leads for one request (made by ``LeadsSources.open``)."""

    def __init__(self, shared: LeadsSources, token: str | None, *, fresh: bool, deadline: float | None,
                 scope: str | None = None) -> None:
        self._shared = shared
        self._token = token
        self._caller: str | None = None
        self._scope = scope
        self._before_write: str | None = None  # the scope before this request's write, for its cached totals
        self.fresh = fresh
        self.deadline = deadline
        self._loads: dict[PageRequest, asyncio.Task[Served]] = {}
        # What this request was given: its answer is as old as the oldest, and carries every warning.
        self.fetched_at: float | None = None
        self.warnings: list[dict] = []

    @property
    def caller(self) -> str:
        """The caller's key part; no token, no data."""
        if self._token is None:
            raise Unauthenticated("A bearer token is required: send `Authorization: Bearer <token>`.")
        if self._caller is None:
            self._caller = self._shared.caller(self._token)
        return self._caller

    @property
    def _reader(self) -> LeadReader:
        # Made per use, not kept: a reader kept here would make a reference cycle (source -> reader ->
        # source), and a request's pages would then wait for the cyclic collector instead of going when
        # the request ends (the collector's pauses under load: docs/ISOLATION.md).
        return LeadReader(self, max_per_page=UPSTREAM_MAX_PER_PAGE, lookup_max_pages=self._shared.lookup_max_pages)

    async def _ready(self) -> None:
        """The caller's scope, read once per request before the first cache access."""
        if self._scope is None:
            self._scope = await self._shared.scope(self.caller)

    # --- what the GraphQL layer asks for ------------------------------------------------------------

    async def create_lead(self, lead: NewLead, idempotency_key: str | None) -> WriteResult:
        """Create a lead (``LeadWriter``); afterwards this request, like every later one, reads afresh."""
        caller = self.caller  # UNAUTHENTICATED without a token, before anything is sent
        await self._ready()
        before = self._scope
        result = await self._shared.writer.create(self._token, caller, lead, idempotency_key, deadline=self.deadline)
        if result.lead is not None:
            self._scope = result.scope
            self._loads = {}  # pages this request read before the write are not what it reads after
            if before != result.scope:
                self._before_write = before
        return result

    async def place(self, lead_id: int) -> Placed:
        """Where a lead stands in the caller's unfiltered list (for the edge of a created lead); the list's
        length cached from before the write, if any, lets both pages it needs be read at once."""
        await self._ready()
        hint = None
        if self._before_write is not None and not self.fresh:
            cached = await self._shared.cache.fresh_pages(self._before_write, ALL_LEADS)
            hint = cached[0].page.total if cached else None
        return await self._reader.place(lead_id, hint)

    async def window(self, lead_filter: ListFilter, request: WindowRequest) -> Window:
        """The leads of a validated Relay window over this filter."""
        await self._ready()
        window = await self._reader.window(lead_filter, request)
        if window.reused:
            self._shared.cache.count_reuse(window.reused)
        self.warnings.extend(window.warnings)
        return window

    async def leads_by_id(self, ids: Sequence[int]) -> LookupResult:
        """Leads by upstream id (a bounded scan of the list: the upstream has no by-id call)."""
        await self._ready()
        result = await self._reader.find(ids)
        self.warnings.extend(result.warnings)
        return result

    async def campaign_page(self, campaign_id: int) -> LeadPage:
        """The first page of a campaign's leads (the campaign's name comes from them)."""
        await self._ready()
        served = await self._reader.campaign_leads_page(campaign_id)
        return served.page

    # --- the reader's PageSource ----------------------------------------------------------------------

    def release(self) -> None:
        """Drop the pages this request loaded, once its answer is built: the request's objects may sit in
        reference cycles (graphql-core's execution state does), and its pages and records would then
        wait for the cyclic collector's next full pass instead of going now, making that pass long
        (docs/ISOLATION.md). Loads still running finish for the page cache and are not awaited."""
        self._loads = {}

    async def load(self, lead_filter: ListFilter, ref: PageRef) -> Served:
        """One page, loaded once per request however often it is asked for (shared by concurrent askers:
        one asker's cancellation does not cancel the others')."""
        request = PageRequest(lead_filter, ref)
        task = self._loads.get(request)
        if task is None:
            task = self._loads[request] = asyncio.ensure_future(self._fetch(request))
            task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def cached(self, lead_filter: ListFilter) -> list[Served]:
        if self.fresh:
            return []
        await self._ready()
        pages = await self._shared.cache.fresh_pages(self._scope, lead_filter)
        self._took(min((p.fetched_at for p in pages), default=None))
        return pages

    def seen(self, ids: Iterable[int]) -> dict[int, tuple[LeadRecord, float]]:
        if self.fresh or self._scope is None:  # asked before any read: nothing remembered to trust yet
            return {}
        hits = self._shared.cache.seen_leads(self._scope, ids)
        self._took(min((fetched_at for _, fetched_at in hits.values()), default=None))
        return hits

    async def _fetch(self, request: PageRequest) -> Served:
        await self._ready()
        caller, token, deadline, scope = self.caller, self._token, self.deadline, self._scope

        def fetch():
            return self._shared.api.fetch_page(token, request, caller=caller, deadline=deadline)

        served = await self._shared.cache.get_or_fetch(scope, request.filter, request.page, fetch,
                                                       bypass=self.fresh)
        self._took(served.fetched_at)
        if served.stale == "upstream-error":
            self._warn_stale(served.age, served.error_code)
        return served

    # --- what this request was given ----------------------------------------------------------------

    def _took(self, fetched_at: float | None) -> None:
        """Every page handed to the reader passes here (``load``, ``cached``, ``seen``): the request's answer
        is as old as the oldest of them, whatever window or lookup it ended up in."""
        if fetched_at is not None and (self.fetched_at is None or fetched_at < self.fetched_at):
            self.fetched_at = fetched_at

    def _warn_stale(self, age: float, error_code: str | None) -> None:
        for w in self.warnings:
            if w["code"] == "STALE_DATA":
                w["ageSeconds"] = max(w["ageSeconds"], round(age, 1))
                return
        self.warnings.append({
            "code": "STALE_DATA",
            "message": "The upstream failed; some leads come from a cached page past its freshness lifetime.",
            "upstreamError": error_code, "ageSeconds": round(age, 1)})


def _retrieved(task: asyncio.Task) -> None:
    """A failed load whose askers all left is not reported as an exception never retrieved."""
    if not task.cancelled():
        task.exception()
