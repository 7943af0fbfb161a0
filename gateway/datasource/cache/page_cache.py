"""``PageCache``: fresh pages reused, identical upstream calls made once (per process and across
instances), stale pages served while revalidating or while the upstream is down.

Freshness of an entry of age ``a`` (seconds since it was fetched):
- ``a < ttl``: fresh, served as is (unless the request said ``Cache-Control: no-cache``);
- ``ttl <= a < ttl + swr``: served at once while one background refresh renews it;
- ``ttl <= a < ttl + stale_if_error``: served only if the upstream call fails with a 5xx, a timeout or a
  connection error, and the response says so in ``extensions.warnings``;
- older: gone.

Every page comes back as a ``Served``, with when it was fetched: callers build answers from it and
know exactly how fresh they are (nothing is left in the request's context).

Invalidation is by generation, never by scanning keys: every key of a caller's data is made from its
*scope*, the caller's HMAC and its current generation (``scope``); a write bumps the generation
(``invalidate``), which makes every page, group index, remembered lead and result-cache entry of that
caller unreachable at once, on every instance sharing the store. Other callers' keys do not change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from gateway.observability import scope as request_scope
from gateway.datasource.cache.codec import Entry
from gateway.datasource.cache.keys import KeyMaker
from gateway.datasource.cache.singleflight import SingleFlight
from gateway.datasource.cache.stores import holding
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable, error_from_note, error_to_note
from gateway.leads.filter import ListFilter
from gateway.leads.pagination import PageRef
from gateway.observability.metrics import Stats
from gateway.leads.records import LeadPage, LeadRecord

log = logging.getLogger("gateway.datasource.cache")
Fetch = Callable[[], Awaitable[LeadPage]]

MAX_LEASE_SECONDS = 2.0  # how long a crashed holder can stall other instances; renewed while the holder works
FAILURE_NOTE_SECONDS = 2.0  # how long a failed call's error stays readable by waiters on other instances
_STALE_IF = (UpstreamUnavailable, UpstreamTimeout)
SEEN_CALLERS = 1_000  # callers whose recently seen leads are remembered (least recently active dropped)
SEEN_PER_CALLER = 5_000  # leads remembered per caller (oldest dropped)


@dataclass(frozen=True, slots=True)
class Served:
    """A page, when it was fetched (epoch seconds), and, when it is not fresh, why it was served anyway."""

    page: LeadPage
    fetched_at: float
    stale: str | None = None  # "revalidating" or "upstream-error"
    age: float = 0.0
    error_code: str | None = None


class PageCache:
    def __init__(self, store, *, ttl: float, swr: float = 0.0, stale_if_error: float = 0.0,
                 secret: str | None = None, wait_limit: float = 10.0, stats: Stats | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self.swr = swr if ttl > 0 else 0.0
        self.stale_if_error = stale_if_error if ttl > 0 else 0.0
        self.keys = KeyMaker(secret)
        self.wait_limit = wait_limit  # longest wait for another instance's call (the upstream timeout)
        # Always shorter than the upstream timeout, so a crashed holder never stalls others for a whole call.
        self.lease_seconds = min(MAX_LEASE_SECONDS, wait_limit / 2)
        self.stats = stats or Stats()
        self._flight: SingleFlight[Entry] = SingleFlight()
        self._background: set[asyncio.Task] = set()
        # caller -> (its scope, lead id -> (record, fetched_at)): leads of pages served to that caller, in this
        # process, so lookups by id (node, lead, federation entities) find them without scanning the list
        # again; only for the scope they were served under (a write's new generation starts afresh).
        self._seen: OrderedDict[str, tuple[str, OrderedDict[int, tuple[LeadRecord, float]]]] = OrderedDict()
        # Told the bare caller after each of its invalidations by this process (live pollers poll at once).
        self.listeners: list[Callable[[str], None]] = []

    @property
    def keep_for(self) -> float:
        """How long an entry is stored: fresh, then usable as stale."""
        return self.ttl + max(self.swr, self.stale_if_error)

    def caller(self, token: str) -> str:
        return self.keys.caller(token)

    async def scope(self, caller: str) -> str:
        """The key part of ``caller``'s cached data now: its HMAC and its generation."""
        return KeyMaker.scope(caller, await self.store.generation(caller))

    async def invalidate(self, caller: str) -> str:
        """Make everything cached for ``caller`` stale, everywhere the store is shared; its new scope."""
        generation = await self.store.bump(caller)
        self.stats.invalidations += 1
        self._seen.pop(caller, None)  # unreachable now: free it at once
        for listener in self.listeners:
            listener(caller)
        return KeyMaker.scope(caller, generation)

    # Below, ``caller`` is a caller's scope (``scope()``), not its bare HMAC.

    async def fresh_pages(self, caller: str, lead_filter: ListFilter) -> list[Served]:
        """Fresh cached pages of this caller's list for this filter, any size, newest first (for the planner)."""
        if self.ttl <= 0:
            return []
        entries = await self.store.group(self.keys.group(caller, lead_filter), time.time() - self.ttl)
        return [Served(e.page, e.fetched_at) for e in sorted(entries, key=lambda e: -e.fetched_at)]

    def seen_leads(self, caller: str, ids: Iterable[int]) -> dict[int, tuple[LeadRecord, float]]:
        """Leads with these ids, and when they were fetched, from fresh pages this process served to this
        caller (any filter, any window)."""
        held = self._seen.get(KeyMaker.caller_of(caller))
        if held is None or held[0] != caller or self.ttl <= 0:
            return {}
        seen = held[1]
        fresh_after = time.time() - self.ttl
        return {i: hit for i in ids if (hit := seen.get(i)) is not None and hit[1] >= fresh_after}

    def _remember(self, caller: str, page: LeadPage, fetched_at: float) -> None:
        if self.ttl <= 0:
            return
        bare = KeyMaker.caller_of(caller)
        held = self._seen.get(bare)
        if held is None or held[0] != caller:  # a new caller, or a new generation: the old leads go
            seen = OrderedDict()
            self._seen[bare] = (caller, seen)
            self._seen.move_to_end(bare)
            if len(self._seen) > SEEN_CALLERS:
                self._seen.popitem(last=False)
        else:
            seen = held[1]
            self._seen.move_to_end(bare)
            last = page.items[-1] if page.items else None
            if last is not None and seen.get(last.id) == (last, fetched_at):
                return  # this very page was remembered already (a repeat hit): skip the per-lead work
        for lead in page.items:
            seen[lead.id] = (lead, fetched_at)
            seen.move_to_end(lead.id)
        while len(seen) > SEEN_PER_CALLER:
            seen.popitem(last=False)

    def count_reuse(self, pages: int) -> None:
        """Cached pages the planner used in place of upstream calls count as hits too."""
        self.stats.cache_hits += pages
        if (scope := request_scope.current()) is not None:
            scope.cache_hits += pages

    async def get_or_fetch(self, caller: str, lead_filter: ListFilter, ref: PageRef, fetch: Fetch, *,
                           bypass: bool = False) -> Served:
        group = self.keys.group(caller, lead_filter)
        key = self.keys.page(group, ref)
        started = time.time()
        entry = await self.store.get(key) if self.ttl > 0 else None
        if entry is not None and not bypass:
            age = started - entry.fetched_at
            if age < self.ttl:
                self.stats.cache_hits += 1
                if (scope := request_scope.current()) is not None:
                    scope.cache_hits += 1
                self._remember(caller, entry.page, entry.fetched_at)
                return Served(entry.page, entry.fetched_at)
            if age < self.ttl + self.swr:
                self.stats.stale_served["revalidating"] += 1
                self._revalidate(key, group, fetch)
                return Served(entry.page, entry.fetched_at, stale="revalidating", age=age)
        self.stats.cache_misses += 1
        since = started if bypass or self.ttl <= 0 else started - self.ttl
        task, joined = self._flight.start(key, lambda: self._fetch_shared(key, group, fetch, since))
        if joined:
            self.stats.coalesced_waiters["process"] += 1
        try:
            fetched = await asyncio.shield(task)
        except _STALE_IF as exc:
            if entry is not None and started - entry.fetched_at < self.ttl + self.stale_if_error:
                self.stats.stale_served["upstream-error"] += 1
                return Served(entry.page, entry.fetched_at, stale="upstream-error", age=started - entry.fetched_at,
                              error_code=exc.code)
            raise
        self._remember(caller, fetched.page, fetched.fetched_at)
        return Served(fetched.page, fetched.fetched_at)

    def _revalidate(self, key: str, group: str, fetch: Fetch) -> None:
        """One background refresh per key (coalesced with any foreground call for the same key)."""
        task, joined = self._flight.start(key, lambda: self._fetch_shared(key, group, fetch, time.time()))
        if joined:
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fetch_shared(self, key: str, group: str, fetch: Fetch, since: float) -> Entry:
        if not self.store.shared:
            return await self._fetch_and_put(key, group, fetch)
        owner = secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_limit + self.lease_seconds
        counted = False
        while True:
            if await self.store.try_lease(key, owner, self.lease_seconds):
                return await self._fetch_as_holder(key, group, fetch, owner)
            if not counted:
                self.stats.coalesced_waiters["instances"] += 1
                counted = True
            entry = await self._wait_for_holder(key, since, deadline)
            if entry is not None:
                return entry
            if time.monotonic() >= deadline:
                log.warning("gave up waiting for another instance's upstream call; fetching directly")
                return await self._fetch_and_put(key, group, fetch)
            # The lease ended with neither a page nor a failure (its holder died): try to take it over.

    async def _fetch_as_holder(self, key: str, group: str, fetch: Fetch, owner: str) -> Entry:
        # The lease is released after the page (or the failure) is stored, so no waiter sees an empty handover.
        async with holding(self.store, key, owner, self.lease_seconds):
            try:
                return await self._fetch_and_put(key, group, fetch)
            except GatewayError as exc:
                await self.store.put_failure(key, {**error_to_note(exc), "at": time.time()}, FAILURE_NOTE_SECONDS)
                raise

    async def _fetch_and_put(self, key: str, group: str, fetch: Fetch) -> Entry:
        entry = Entry(await fetch(), time.time())
        if self.ttl > 0 or self.store.shared:
            # With caching off, a shared store still keeps the page briefly for waiters on other instances.
            keep_for = self.keep_for if self.ttl > 0 else self.lease_seconds
            await self.store.put(key, group, entry, keep_for)
        return entry

    async def _wait_for_holder(self, key: str, since: float, deadline: float) -> Entry | None:
        """Poll for another instance's result: its page, its failure (re-raised), or the lease's end."""
        waited_from = time.time()
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            entry, failure, held = await self.store.poll(key)
            if entry is not None and entry.fetched_at >= since:
                return entry
            if failure is not None and failure.get("at", 0) >= waited_from:
                raise error_from_note(failure)
            if not held:
                entry = await self.store.get(key)
                return entry if entry is not None and entry.fetched_at >= since else None
        return None

    async def close(self) -> None:
        self._flight.cancel_all()
        for task in list(self._background):
            task.cancel()
        await self.store.close()
