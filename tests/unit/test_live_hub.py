"""``datasource/live/hub.py``'s ``Slot`` (a subscriber keeps only the newest state) and ``bus.py``'s buses:
``LocalBus`` always polls; ``RedisBus`` against a real Redis: one lease per group (only one of two buses holds
it, the holder keeps it by renewing, the other gets it after a release or once it expired), and a published
state reaches the buses that joined the group (and is kept as the group's last one)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.datasource.live.bus import LocalBus, RedisBus
from gateway.datasource.live.hub import Slot, _states
from gateway.datasource.live.watch import error_state, lead_state
from gateway.errors import UpstreamUnauthenticated
from gateway.leads.records import LeadRecord

pytestmark = pytest.mark.asyncio


def state(status: str):
    from datetime import datetime, timezone

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return lead_state(LeadRecord(1, None, "+15550000001", {}, status, t, t, None, ()))


# --- Slot ---------------------------------------------------------------------------------------------

async def test_slot_keeps_only_the_latest_state():
    slot = Slot()
    a, b, c = state("created"), state("scheduled"), state("processing")
    slot.put(a)
    slot.put(b)
    slot.put(c)
    assert await asyncio.wait_for(slot.take(), 1) is c  # the newest, not a queue of three
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slot.take(), 0.1)  # nothing new since
    slot.put(a)
    assert await asyncio.wait_for(slot.take(), 1) is a


async def test_slot_take_waits_for_a_put():
    slot = Slot()
    taker = asyncio.ensure_future(slot.take())
    await asyncio.sleep(0.05)
    assert not taker.done()
    slot.put(state("created"))
    assert (await asyncio.wait_for(taker, 1)).value.status == "created"


async def test_a_closed_slot_gives_none_even_with_a_state_not_taken():
    slot = Slot()
    slot.put(state("created"))
    slot.close()
    assert await asyncio.wait_for(slot.take(), 1) is None
    waiting = Slot()
    taker = asyncio.ensure_future(waiting.take())
    await asyncio.sleep(0.01)
    waiting.close()
    assert await asyncio.wait_for(taker, 1) is None


async def test_states_end_after_a_final_state_or_a_close():
    slot = Slot()
    states = _states(slot)
    slot.put(state("created"))
    assert (await asyncio.wait_for(anext(states), 1)).value.status == "created"
    slot.put(error_state(UpstreamUnauthenticated("refused")))
    assert (await asyncio.wait_for(anext(states), 1)).final
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(states), 1)
    closing = Slot()
    states = _states(closing)
    closing.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(states), 1)


# --- LocalBus -------------------------------------------------------------------------------------------

async def test_local_bus_always_polls_and_has_no_last_state():
    bus = LocalBus()
    assert await bus.hold("g", "a", 1.0) and await bus.hold("g", "b", 1.0)
    assert await bus.last("g") is None
    assert not bus.shared


# --- RedisBus against a real Redis ------------------------------------------------------------------

def group() -> str:
    return f"test-{uuid.uuid4().hex}"


async def buses(url: str, n: int = 2) -> list[RedisBus]:
    return [RedisBus(url) for _ in range(n)]


async def test_one_bus_holds_the_lease_and_keeps_it_by_renewing(redis_url):
    a, b = await buses(redis_url)
    g = group()
    try:
        assert await a.hold(g, "owner-a", 1.0) is True
        assert await b.hold(g, "owner-b", 1.0) is False
        for _ in range(3):  # renewed every half lease: never lost, never taken
            await asyncio.sleep(0.5)
            assert await a.hold(g, "owner-a", 1.0) is True
            assert await b.hold(g, "owner-b", 1.0) is False
    finally:
        for bus in (a, b):
            await bus.close()


async def test_after_a_release_the_other_bus_gets_the_lease(redis_url):
    a, b = await buses(redis_url)
    g = group()
    try:
        assert await a.hold(g, "owner-a", 5.0)
        assert not await b.hold(g, "owner-b", 5.0)
        await a.release(g, "owner-a")
        assert await b.hold(g, "owner-b", 5.0) is True
        assert await a.hold(g, "owner-a", 5.0) is False  # a gave it up: now it is b's
    finally:
        for bus in (a, b):
            await bus.close()


async def test_an_expired_lease_goes_to_the_other_bus_and_the_old_holder_knows(redis_url):
    a, b = await buses(redis_url)
    g = group()
    try:
        assert await a.hold(g, "owner-a", 0.3)
        assert not await b.hold(g, "owner-b", 0.3)
        await asyncio.sleep(0.5)  # a stopped renewing (a dead poller): the lease expires
        assert await b.hold(g, "owner-b", 2.0) is True
        assert await a.hold(g, "owner-a", 2.0) is False  # its renewal fails: it does not poll beside b
        assert await b.hold(g, "owner-b", 2.0) is True
    finally:
        for bus in (a, b):
            await bus.close()


async def test_leases_of_different_groups_are_independent(redis_url):
    a, b = await buses(redis_url)
    g1, g2 = group(), group()
    try:
        assert await a.hold(g1, "owner-a", 2.0)
        assert await b.hold(g2, "owner-b", 2.0)
        assert not await b.hold(g1, "owner-b", 2.0)
        assert not await a.hold(g2, "owner-a", 2.0)
    finally:
        for bus in (a, b):
            await bus.close()


async def test_closing_a_bus_releases_its_leases(redis_url):
    a, b = await buses(redis_url)
    g = group()
    try:
        assert await a.hold(g, "owner-a", 30.0)
        await a.close()
        assert await b.hold(g, "owner-b", 30.0) is True  # at once, not after 30 s
    finally:
        await b.close()


async def test_a_published_state_reaches_the_buses_of_the_group_and_is_kept(redis_url):
    a, b = await buses(redis_url)
    g, other = group(), group()
    got: list[tuple[str, bytes]] = []
    pokes: list[str] = []
    try:
        for bus in (a, b):
            bus.start(lambda gid, body, bus=bus: got.append((gid, body)) if bus is b else None, pokes.append)
        await b.join(g)
        deadline = time.monotonic() + 5
        while b._pubsub is None:  # its subscription is up (the listener subscribes joined groups on connect)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        body = state("completed").body
        await a.publish(g, body)
        await a.publish(other, b"{}")  # a group b did not join
        deadline = time.monotonic() + 5
        while not got:
            assert time.monotonic() < deadline, "the state was not delivered"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert got == [(g, body)]
        assert await b.last(g) == body and await a.last(g) == body
        assert await b.last(group()) is None
    finally:
        for bus in (a, b):
            await bus.close()


async def test_an_unreachable_redis_lets_every_bus_poll_at_once():
    bus = RedisBus("redis://127.0.0.1:1/0", op_timeout=0.2)  # nothing listens on port 1
    try:
        t0 = time.monotonic()
        assert await bus.hold(group(), "owner", 1.0) is True  # each instance polls rather than nobody
        assert time.monotonic() - t0 < 1.0, f"hold took {time.monotonic() - t0:.1f} s"
    finally:
        await bus.close()
