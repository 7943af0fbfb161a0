"""``LeadReader``: the caller's leads as windows, lookups by id and campaign pages, over a ``PageSource``.

It turns validated windows into planned upstream pages (``leads/pagination.py``), asks its ``PageSource``
for them (``LeadsSource``: deduped, cached, coalesced) and slices the result. Everything it hands back
says how old it is (``fetched_at``: the oldest page it was built from) and what the caller should be
warned about; it keeps no state between calls. No strawberry, no HTTP here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.datasource.cache.page_cache import Served
from gateway.leads.filter import ALL_LEADS, ListFilter
from gateway.leads.pagination import PageRef, WindowRequest, collect, plan, probe_page
from gateway.leads.records import LeadRecord

LOOKUP_PAGE_SIZE = 100  # scans use the largest page: fewest calls, and pages other scans can reuse
LOOKUP_CONCURRENCY = 4  # pages of a scan fetched at once, so an early hit saves the rest
CAMPAIGN_PAGE = PageRef(1, 15)  # the default window of Campaign.leads, so name and leads share a call


class PageSource(Protocol):
    """Where the reader gets pages: ``LeadsSource`` for one caller and request."""

    async def load(self, lead_filter: ListFilter, ref: PageRef) -> Served:
        """One page of the caller's list for this filter."""

    async def cached(self, lead_filter: ListFilter) -> list[Served]:
        """Fresh cached pages of this filter (any size), newest first; none when the request wants fresh data."""

    def seen(self, ids: Iterable[int]) -> dict[int, tuple[LeadRecord, float]]:
        """Leads recently served to this caller, with their fetch time, by id."""


def _position(pages, lead_id: int) -> tuple[int, int] | None:
    """(position, total) of the lead in these pages of one list, or None."""
    for page in pages:
        for i, lead in enumerate(page.items):
            if lead.id == lead_id:
                return page.offset + i, page.total
    return None


def _oldest(times: Iterable[float]) -> float | None:
    return min(times, default=None)


@dataclass(frozen=True, slots=True)
class Window:
    """The leads at positions ``[start, start + len(leads))`` of a list of ``total`` leads.

    ``fetched_at``: when the oldest page it was built from was fetched (None: built from no page);
    ``reused``: cached pages the planner used in place of upstream calls.
    """

    filter: ListFilter
    start: int
    stop: int
    total: int
    leads: tuple[LeadRecord, ...]
    warnings: tuple[dict, ...] = ()
    fetched_at: float | None = None
    reused: int = 0

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
    warnings: tuple[dict, ...] = ()
    fetched_at: float | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    """A lead's position in the unfiltered list of ``total`` leads (None: not found near the end)."""

    position: int | None
    total: int


PLACE_PAGES = 3  # pages of 100 read back from the end of the list when placing a new lead


@dataclass(frozen=True, slots=True)
class LeadReader:
    pages: PageSource
    max_per_page: int = 100
    lookup_max_pages: int = 10

    async def window(self, lead_filter: ListFilter, request: WindowRequest) -> Window:
        # Pages already cached for this caller and filter (any size) count as in hand: the planner only
        # asks the upstream for what they do not cover, and the newest of them can tell the list's total.
        cached = await self.pages.cached(lead_filter)
        known: list[Served] = list(cached)
        read: list[Served] = list(cached)  # every page this answer depends on: its freshness is the oldest's
        total = None
        if request.needs_total:
            if not known:
                known.append(await self.pages.load(lead_filter, probe_page(self.max_per_page)))
                read.append(known[-1])
            total = known[0].page.total
        start, stop = request.bounds(total)
        pages = await self._cover(lead_filter, start, stop, known, read,
                                  total_known=total is not None or bool(known))
        fetched_total = pages[0].page.total if pages else known[0].page.total
        if request.needs_total and fetched_total != total:
            # The list's length changed since the page that told it was fetched (a cached page can be up
            # to a TTL old): place the window again on the current length.
            start, stop = request.bounds(fetched_total)
            pages = await self._cover(lead_filter, start, stop, pages + known, read, total_known=True)
        total = pages[0].page.total if pages else fetched_total
        if request.last is not None and request.hi is not None and request.hi > total:
            # A `before` cursor beyond the end of a list that has since shrunk: as the Relay spec ignores a
            # cursor that is no longer in the list, count back from the end instead.
            start, stop = request.bounds_within(total)
            pages = await self._cover(lead_filter, start, stop, known + pages, read, total_known=True)
            total = pages[0].page.total if pages else total
        cached_ids = {id(p) for p in cached}
        totals = {p.page.total for p in pages}
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
        leads = collect(((p.page.offset, p.page.items) for p in pages), start, min(stop, max(total, start)))
        return Window(lead_filter, start, stop, total, tuple(leads), tuple(warnings),
                      fetched_at=_oldest(p.fetched_at for p in read),
                      reused=sum(1 for p in pages if id(p) in cached_ids))

    async def _cover(self, lead_filter: ListFilter, start: int, stop: int, known: list[Served],
                     read: list[Served], *, total_known: bool) -> list[Served]:
        """Pages covering ``[start, stop)``: newly fetched ones (concurrently, also added to ``read``) first,
        then those in hand that overlap the window. An empty window needs no page once the total is known."""
        if stop <= start and total_known:
            return []
        in_hand = [p for p in known
                   if p.page.offset < max(stop, start + 1) and p.page.offset + p.page.per_page > start]
        have = [(p.page.offset, p.page.offset + p.page.per_page) for p in in_hand]
        refs = plan(start, stop, self.max_per_page, have)
        fetched = list(await asyncio.gather(*(self.pages.load(lead_filter, ref) for ref in refs)))
        read.extend(fetched)
        return fetched + in_hand

    async def find(self, ids: Sequence[int]) -> LookupResult:
        """Look leads up by id with a bounded scan of the caller's list (the upstream has no by-id call).

        Pages of 100 are read in order, a few at a time, until every id is found or
        ``lookup_max_pages`` pages were read.
        """
        wanted = set(ids)
        seen = self.pages.seen(ids)
        found: dict[int, LeadRecord] = {i: record for i, (record, _) in seen.items()}
        times = [fetched_at for _, fetched_at in seen.values()]
        if not wanted - found.keys():
            # All seen in pages fetched for this caller: no call.
            return LookupResult(found, complete=True, fetched_at=_oldest(times))
        first = await self.pages.load(ALL_LEADS, PageRef(1, LOOKUP_PAGE_SIZE))
        times.append(first.fetched_at)
        self._take(first.page.items, wanted, found)
        last = min(first.page.last_page, self.lookup_max_pages)
        page = 2
        while wanted - found.keys() and page <= last:
            batch = range(page, min(page + LOOKUP_CONCURRENCY, last + 1))
            for p in await asyncio.gather(*(self.pages.load(ALL_LEADS, PageRef(k, LOOKUP_PAGE_SIZE))
                                            for k in batch)):
                times.append(p.fetched_at)
                self._take(p.page.items, wanted, found)
            page = batch.stop
        total = first.page.total
        complete = first.page.last_page <= self.lookup_max_pages or not (wanted - found.keys())
        warnings: tuple[dict, ...] = ()
        if not complete:
            warnings = ({
                "code": "LOOKUP_TRUNCATED",
                "message": f"Looked for leads by id among the first {last * LOOKUP_PAGE_SIZE} of {total} "
                           "leads only (GATEWAY_LOOKUP_MAX_PAGES); some may exist beyond that.",
            },)
        return LookupResult(found, complete, scanned=min(total, last * LOOKUP_PAGE_SIZE), total=total,
                            warnings=warnings, fetched_at=_oldest(times))

    async def place(self, lead_id: int, total_hint: int | None = None) -> Placed:
        """Where a lead just created stands in the unfiltered list: the list is in id order, so at or near
        its end. Reads the first page of 100 (it tells the total, and most queries start with it, so it is
        no waste) and pages from the end, ``PLACE_PAGES`` pages in all at most. With ``total_hint`` (the
        list's length before the write, from the cache) the page the new lead should be on is read at the
        same time as the first."""
        guess = -(-(total_hint + 1) // LOOKUP_PAGE_SIZE) if total_hint is not None else 1
        if guess > 1:
            first, guessed = await asyncio.gather(self.pages.load(ALL_LEADS, PageRef(1, LOOKUP_PAGE_SIZE)),
                                                  self.pages.load(ALL_LEADS, PageRef(guess, LOOKUP_PAGE_SIZE)))
            pages = [first.page, guessed.page]
        else:
            pages = [(await self.pages.load(ALL_LEADS, PageRef(1, LOOKUP_PAGE_SIZE))).page]
        first = pages[0]
        for number in range(first.last_page, 1, -1)[:PLACE_PAGES - 1]:
            if _position(pages, lead_id) is not None:
                break
            if number != guess:
                pages.append((await self.pages.load(ALL_LEADS, PageRef(number, LOOKUP_PAGE_SIZE))).page)
        found = _position(pages, lead_id)
        if found is None:
            return Placed(None, first.total)
        return Placed(*found)

    async def campaign_leads_page(self, campaign_id: int) -> Served:
        """The first page of a campaign's leads (its name comes from them)."""
        return await self.pages.load(ALL_LEADS.with_campaign(campaign_id), CAMPAIGN_PAGE)

    @staticmethod
    def _take(items: Iterable[LeadRecord], wanted: set[int], found: dict[int, LeadRecord]) -> None:
        for lead in items:
            if lead.id in wanted:
                found.setdefault(lead.id, lead)

