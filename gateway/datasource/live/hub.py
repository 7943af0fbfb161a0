"""``LiveHub``: subscriptions grouped by caller and watch, one poller per group (Hasura's live queries over
a REST list).

Each group has one runner in every process that serves one of its subscribers. The runner whose process
holds the group's lease (``bus.py``: always, without Redis) polls: once per interval it reads the watch
through the same ``LeadsSource`` path as queries, bypassing cached pages and storing the fresh ones (so
queries profit from the poll), hashes the result and, when the hash changed, hands the new state to its
subscribers and publishes it to the other instances. A write by the caller (a generation bump) makes its
pollers poll at once. The other runners only listen; they take the lease over when its holder goes.

A subscriber holds a ``Slot``: the latest state only, never a queue, so a slow consumer skips to the newest
state instead of buffering every change. A final state (an error: the token refused, or the first read
failed) ends the subscriptions that get it. When a group's last subscriber leaves, its runner stops and
its lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.datasource.live.bus import LocalBus, RedisBus
from gateway.datasource.live.watch import (
    LeadWatch,
    State,
    Watch,
    WindowWatch,
    decode_state,
    error_state,
    group_id,
    lead_state,
    narrow_filter,
    window_state,
)
from gateway.errors import Forbidden, GatewayError, RateLimited, Unauthenticated
from gateway.leads.pagination import WindowRequest
from gateway.leads.records import LeadRecord
from gateway.observability.metrics import Stats

log = logging.getLogger("gateway.datasource.live")
_runs = itertools.count(1)

RESCAN_SECONDS = 30.0  # a watched lead known to be absent is looked for again this often (or every 6 intervals)
LEAD_PAGE = WindowRequest(lo=0, hi=None, first=100, last=None)  # a watched lead's narrow list, in one page


class Slot:
    """One subscriber's mailbox: the latest state, and whether it has not been taken yet."""

    __slots__ = ("state", "closed", "_event")

    def __init__(self) -> None:
        self.state: State | None = None
        self.closed = False
        self._event = asyncio.Event()

    def put(self, state: State) -> None:
        self.state = state  # replaces a state not taken yet: a slow consumer gets the newest
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def take(self) -> State | None:
        """The next state not taken yet; None once closed."""
        await self._event.wait()
        self._event.clear()
        if self.closed:
            return None
        return self.state


@dataclass(eq=False)
class Group:
    """One caller's one watch, as served by this process."""

    id: str
    caller: str
    token: str
    watch: Watch
    slots: set[Slot] = field(default_factory=set)
    state: State | None = None
    holder: bool = False
    polled: float = 0.0  # time.monotonic() of the last poll by this process
    narrow: object | None = None  # a watched lead's narrow filter, once found
    scanned: float = 0.0  # time.monotonic() of the last scan for a watched lead
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class LiveHub:
    """This process's subscriptions and pollers (made by ``LeadsSources``)."""

    def __init__(self, sources, *, interval: float, max_per_caller: int, bus: LocalBus | RedisBus,
                 stats: Stats) -> None:
        self.sources = sources
        self.interval = interval
        self.max_per_caller = max_per_caller
        self.bus = bus
        self.stats = stats
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._groups: dict[str, Group] = {}
        self._by_caller: dict[str, set[str]] = {}
        self._subscribers: Counter[str] = Counter()
        self._closing = False

    def start(self) -> None:
        self.bus.start(self._delivered, self.poke)

    @property
    def subscribers(self) -> int:
        return sum(self._subscribers.values())

    @property
    def groups(self) -> int:
        return len(self._groups)

    def polling(self) -> int:
        """Groups this process polls now (holds the lease of)."""
        return sum(1 for g in self._groups.values() if g.holder)

    # --- subscribing ----------------------------------------------------------------------------------

    def check(self, caller: str) -> None:
        """``RATE_LIMITED`` when the caller may not open one more subscription here."""
        if self._closing:
            raise RateLimited("The gateway is shutting down: subscribe again (to another instance).",
                              retryAfter=1, reason="SHUTTING_DOWN")
        if self._subscribers[caller] >= self.max_per_caller:
            raise RateLimited(f"This caller has {self._subscribers[caller]} subscriptions on this instance, the "
                              f"most it may hold: end one first.", retryAfter=max(1, round(self.interval)),
                              reason="SUBSCRIPTIONS", limit=self.max_per_caller)

    @contextlib.asynccontextmanager
    async def subscribe(self, token: str, caller: str, watch: Watch) -> AsyncIterator[AsyncIterator[State]]:
        """The states of ``watch`` for this caller: the current one at once, then each change, until the
        block ends (the subscriber left), a final state, or shutdown. ``RATE_LIMITED`` over the caller's bound."""
        self.check(caller)
        gid = group_id(caller, watch)
        group = self._groups.get(gid)
        if group is None:
            group = self._groups[gid] = Group(gid, caller, token, watch)
            self._by_caller.setdefault(caller, set()).add(gid)
            await self.bus.join(gid)
            # In a context of its own: the poller outlives the request that started it, and its upstream calls
            # are nobody's request's (not in that request's log line).
            group.task = asyncio.get_running_loop().create_task(self._run(group), context=contextvars.Context())
        slot = Slot()
        group.slots.add(slot)
        self._subscribers[caller] += 1
        if group.state is not None:
            slot.put(group.state)
        try:
            yield _states(slot)
        finally:
            group.slots.discard(slot)
            self._subscribers[caller] -= 1
            if not self._subscribers[caller]:
                del self._subscribers[caller]
            if not group.slots:
                await self._drop(group)

    async def _drop(self, group: Group) -> None:
        if self._groups.get(group.id) is not group:
            return
        del self._groups[group.id]
        ids = self._by_caller.get(group.caller)
        if ids is not None:
            ids.discard(group.id)
            if not ids:
                del self._by_caller[group.caller]
        if group.task is not None:
            group.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await group.task
        if group.id not in self._groups:  # unless a new subscriber has started the group again meanwhile
            await self.bus.leave(group.id)

    def poke(self, caller: str) -> None:
        """The caller wrote: its pollers poll now instead of at their next tick."""
        for gid in self._by_caller.get(caller, ()):
            self._groups[gid].wake.set()

    # --- polling --------------------------------------------------------------------------------------

    async def _run(self, group: Group) -> None:
        owner = f"{self.instance}:{next(_runs)}"  # this runner's, not the next one's of the same group
        lease = 1.5 * self.interval  # renewed every half interval: a dead poller is replaced within two
        try:
            group.holder = await self.bus.hold(group.id, owner, lease)
            if group.holder:
                await self._poll(group)
            else:
                await self._first_state(group)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(group.wake.wait(), self.interval / 2)
                woken = group.wake.is_set()
                group.wake.clear()
                try:
                    was_holder = group.holder
                    group.holder = await self.bus.hold(group.id, owner, lease)
                    if group.holder and (woken or not was_holder or time.monotonic() - group.polled >= self.interval):
                        await self._poll(group)
                except Exception:  # a bug must not silence the group for good: logged, and the next tick runs
                    log.exception("live poller failed", extra={"fields": {"caller": group.caller[:8]}})
        finally:
            group.holder = False
            await self.bus.release(group.id, owner)

    async def _first_state(self, group: Group) -> None:
        """A group another instance polls: its last published state, else one read through the cache."""
        body = await self.bus.last(group.id)
        if body is not None:
            self._delivered(group.id, body)
        if group.state is None:
            try:
                self._set(group, await self._read(group, fresh=False))
            except GatewayError as exc:
                self._set(group, error_state(exc))

    async def _poll(self, group: Group) -> None:
        group.polled = time.monotonic()
        self.stats.live_polls += 1
        try:
            state = await self._read(group, fresh=True)
        except GatewayError as exc:
            self.stats.live_poll_failures += 1
            if group.state is not None and not isinstance(exc, (Unauthenticated, Forbidden)):
                # Passing trouble: the subscribers keep the last state; the next tick tries again.
                log.info("live poll failed", extra={"fields": {"code": exc.extensions.get("code"),
                                                                "caller": group.caller[:8]}})
                return
            state = error_state(exc)
        if self._set(group, state):
            # An error ends the subscriptions that get it, but is not kept as the group's state for later ones.
            await self.bus.publish(group.id, state.body, keep=not state.final)

    async def _read(self, group: Group, *, fresh: bool) -> State:
        source = self.sources.open(group.token, fresh=fresh,
                                   deadline=time.monotonic() + self.sources.settings.request_timeout)
        try:
            watch = group.watch
            if isinstance(watch, WindowWatch):
                return window_state(await source.window(watch.filter, watch.request))
            return lead_state(await self._find_lead(group, watch, source))
        finally:
            source.release()

    async def _find_lead(self, group: Group, watch: LeadWatch, source) -> LeadRecord | None:
        """Found once by a scan of the list, then read with its narrow filter (one small page per poll)."""
        if group.narrow is not None:
            window = await source.window(group.narrow, LEAD_PAGE)
            lead = next((r for r in window.leads if r.id == watch.lead_id), None)
            was_there = group.state is not None and group.state.value is not None
            if lead is not None or not was_there:
                return lead  # there, or still gone: no scan
        # Not located yet, or gone from its narrow list: look for it in the whole list, once per disappearance;
        # while it is known to be absent, again only every RESCAN_SECONDS (a scan costs a page per 100 leads).
        if group.state is not None and group.state.value is None:
            if time.monotonic() - group.scanned < max(RESCAN_SECONDS, 6 * self.interval):
                return None
        group.scanned = time.monotonic()
        found = (await source.leads_by_id([watch.lead_id])).found.get(watch.lead_id)
        if found is not None:
            group.narrow = narrow_filter(found)
        return found

    # --- delivering -----------------------------------------------------------------------------------

    def _delivered(self, gid: str, body: bytes) -> None:
        """A state published by the group's poller (possibly this process's own)."""
        group = self._groups.get(gid)
        if group is None:
            return
        try:
            state = decode_state(body, group.watch)
        except ValueError:
            log.warning("ignoring a malformed live state")
            return
        self._set(group, state)

    def _set(self, group: Group, state: State) -> bool:
        """Hand a state to the group's subscribers, unless they have it already (the hash of the last one);
        whether it was new."""
        if group.state is not None and group.state.digest == state.digest:
            return False
        group.state = state
        self.stats.live_pushes += len(group.slots)
        for slot in group.slots:
            slot.put(state)
        return True

    # --- shutting down --------------------------------------------------------------------------------

    def drain(self) -> None:
        """Shutdown begins: end every subscription now (each transport then closes its stream), refuse new ones."""
        self._closing = True
        for group in list(self._groups.values()):
            for slot in group.slots:
                slot.close()

    async def close(self) -> None:
        self.drain()
        for group in list(self._groups.values()):
            await self._drop(group)
        await self.bus.close()


async def _states(slot: Slot) -> AsyncIterator[State]:
    while True:
        state = await slot.take()
        if state is None:
            return
        yield state
        if state.final:
            return


def build_bus(settings) -> LocalBus | RedisBus:
    return RedisBus(settings.cache_url) if settings.cache_url.startswith("redis://") else LocalBus()
