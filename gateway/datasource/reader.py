"""``LeadReader``: the caller's leads as windows, lookups by id and campaign names.

One per GraphQL request. It turns validated windows into planned upstream pages (pagination.py),
fetches them through ``load_page`` (the request's page loader, which dedupes within the operation
and goes through the shared ``PageCache``), and slices the result. No strawberry, no HTTP here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.pagination import PageRef, WindowRequest, collect, plan, probe_page
from gateway.datasource.client import PageRequest
from gateway.leads.records import LeadPage, LeadRecord

LoadPage = Callable[[PageRequest], Awaitable[LeadPage]]
CachedPages = Callable[[ListFilter], Awaitable[list[LeadPage]]]
SeenLeads = Callable[[Sequence[int]], dict[int, LeadRecord]]


async def _nothing_cached(query: ListFilter) -> list[LeadPage]:
    return []


def _nothing_seen(ids: Sequence[int]) -> dict[int, LeadRecord]:
    return {}

LOOKUP_PAGE_SIZE = 100  # scans use the largest page: fewest calls, and pages other scans can reuse
LOOKUP_CONCURRENCY = 4  # pages of a scan fetched at once, so an early hit saves the rest
CAMPAIGN_PAGE = PageRef(1, 15)  # the default window of Campaign.leads, so name and leads share a call


@dataclass(frozen=True, slots=True)
class Window:
    """The leads at positions ``[start, start + len(leads))`` of a list of ``total`` leads."""

    query: ListFilter
    start: int
    stop: int
    total: int
    leads: tuple[LeadRecord, ...]
    warnings: tuple[dict, ...] = ()

    @property
    def has_previous(self) -> bool:
        return self.start > 0 and self.total > 0

    @property
    def has_next(self) -> bool:
        return self.start + len(self.leads) < self.total


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Leads found by id; ``complete`` is False when the scan limit cut the caller's list short."""

    found: dict[int, LeadRecord]
    complete: bool
    scanned: int = 0
    total: int = 0


@dataclass
class LeadReader:
    load_page: LoadPage
    cached_pages: CachedPages = _nothing_cached  # fresh cached pages of a filter, newest first
    seen_leads: SeenLeads = _nothing_seen  # leads of fresh pages recently served to this caller, by id
    count_reuse: Callable[[int], None] = lambda pages: None  # cached pages used instead of upstream calls
    max_per_page: int = 100
    lookup_max_pages: int = 10
    warnings: list[dict] = field(default_factory=list)

    async def window(self, query: ListFilter, request: WindowRequest) -> Window:
        # Pages already cached for this caller and filter (any size) count as in hand: the planner only
        # asks the upstream for what they do not cover, and the newest of them can tell the list's total.
        cached = await self.cached_pages(query)
        known: list[LeadPage] = list(cached)
        total = None
        if request.needs_total:
            if not known:
                known.append(await self._load(query, probe_page(self.max_per_page)))
            total = known[0].total
        start, stop = request.bounds(total)
        pages = await self._cover(query, start, stop, known, total_known=total is not None or bool(known))
        fetched_total = pages[0].total if pages else known[0].total
        if request.needs_total and fetched_total != total:
            # The list's length changed since the page that told it was fetched (a cached page can be up
            # to a TTL old): place the window again on the current length.
            start, stop = request.bounds(fetched_total)
            pages = await self._cover(query, start, stop, pages + known, total_known=True)
        total = pages[0].total if pages else fetched_total
        if request.last is not None and request.hi is not None and request.hi > total:
            # A `before` cursor beyond the end of a list that has since shrunk: as the Relay spec ignores a
            # cursor that is no longer in the list, count back from the end instead.
            start, stop = request.bounds_within(total)
            pages = await self._cover(query, start, stop, known + pages, total_known=True)
            total = pages[0].total if pages else total
        cached_ids = {id(p) for p in cached}
        if reused := sum(1 for p in pages if id(p) in cached_ids):
            self.count_reuse(reused)
        totals = {p.total for p in pages}
        warnings: list[dict] = []
        if len(totals) > 1:
            warnings.append({"code": "LIST_CHANGED", "message": "The upstream list changed while this window "
                             "was being read; leads may be missing or repeated.", "totals": sorted(totals)})
        for cursor, name in ((request.after, "after"), (request.before, "before")):
            if cursor is not None and cursor.total != total:
                warnings.append({
                    "code": "LIST_SHIFTED",
                    "message": f"The list had {cursor.total} leads when `{name}` was issued and has {total} now; "
                               "leads were added or removed, so this window may skip or repeat some.",
                    "cursorTotal": cursor.total, "total": total,
                })
        self.warnings.extend(warnings)
        leads = collect(((p.offset, p.items) for p in pages), start, min(stop, max(total, start)))
        return Window(query, start, stop, total, tuple(leads), tuple(warnings))

    async def _cover(self, query: ListFilter, start: int, stop: int, known: list[LeadPage], *,
                     total_known: bool) -> list[LeadPage]:
        """Pages covering ``[start, stop)``: newly fetched ones (concurrently) first, then those in hand
        that overlap the window. An empty window needs no page once the total is known."""
        if stop <= start and total_known:
            return []
        in_hand = [p for p in known if p.offset < max(stop, start + 1) and p.offset + p.per_page > start]
        have = [(p.offset, p.offset + p.per_page) for p in in_hand]
        refs = plan(start, stop, self.max_per_page, have)
        fetched = list(await asyncio.gather(*(self._load(query, ref) for ref in refs)))
        return fetched + in_hand

    async def find(self, ids: Sequence[int]) -> LookupResult:
        """Look leads up by id with a bounded scan of the caller's list (the upstream has no by-id call).

        Pages of 100 are read in order, a few at a time, until every id is found or
        ``lookup_max_pages`` pages were read.
        """
        wanted = set(ids)
        found: dict[int, LeadRecord] = dict(self.seen_leads(ids))
        if not wanted - found.keys():
            return LookupResult(found, complete=True)  # all seen in pages fetched for this caller: no call
        first = await self._load(ALL_LEADS, PageRef(1, LOOKUP_PAGE_SIZE))
        self._take(first.items, wanted, found)
        last = min(first.last_page, self.lookup_max_pages)
        page = 2
        while wanted - found.keys() and page <= last:
            batch = range(page, min(page + LOOKUP_CONCURRENCY, last + 1))
            for p in await asyncio.gather(*(self._load(ALL_LEADS, PageRef(k, LOOKUP_PAGE_SIZE)) for k in batch)):
                self._take(p.items, wanted, found)
            page = batch.stop
        complete = first.last_page <= self.lookup_max_pages or not (wanted - found.keys())
        if not complete:
            self.warnings.append({
                "code": "LOOKUP_TRUNCATED",
                "message": f"Looked for leads by id among the first {last * LOOKUP_PAGE_SIZE} of {first.total} "
                           "leads only (GATEWAY_LOOKUP_MAX_PAGES); some may exist beyond that.",
            })
        return LookupResult(found, complete, scanned=min(first.total, last * LOOKUP_PAGE_SIZE), total=first.total)

    async def campaign_leads_page(self, campaign_id: int) -> LeadPage:
        """The first page of a campaign's leads (its name comes from them)."""
        return await self._load(ALL_LEADS.with_campaign(campaign_id), CAMPAIGN_PAGE)

    def _load(self, query: ListFilter, ref: PageRef) -> Awaitable[LeadPage]:
        return self.load_page(PageRequest(query, ref))

    @staticmethod
    def _take(items: Iterable[LeadRecord], wanted: set[int], found: dict[int, LeadRecord]) -> None:
        for lead in items:
            if lead.id in wanted:
                found.setdefault(lead.id, lead)
