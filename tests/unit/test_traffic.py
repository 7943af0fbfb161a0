"""Tenant isolation, unit by unit, on a fake clock: the outcome classifier, the retry policy, the rolling
window, the breakers (rate, minimum calls, spread over callers, half-open probes), the fair limiter (shares,
round-robin, bounds, AIMD) and the 429 pauses; then ``TrafficControl`` putting them together."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.config import Settings
from gateway.datasource.traffic import Outcome, TrafficControl, classify
from gateway.datasource.traffic.breaker import Breakers, Refusal, Ticket
from gateway.datasource.traffic.fair import FairLimiter, Rejected
from gateway.datasource.traffic.pacing import Pacer
from gateway.datasource.traffic.retry import BACKOFF_MAX, retry_delay
from gateway.datasource.traffic.window import RollingWindow
from gateway.errors import (Forbidden, RateLimited, UpstreamBadResponse, UpstreamRejected, UpstreamTimeout,
                            UpstreamUnauthenticated, UpstreamUnavailable)
from gateway.observability.metrics import Stats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the classifier and the retry policy ------------------------------------------------------------------

@pytest.mark.parametrize("error,outcome,kind,retried", [
    (None, Outcome.OK, "ok", False),
    (UpstreamUnavailable("refused"), Outcome.UNREACHABLE, "outage", True),
    (UpstreamUnavailable("x", upstreamStatus=502), Outcome.OUTAGE, "outage", True),
    (UpstreamUnavailable("x", upstreamStatus=503), Outcome.OUTAGE, "outage", True),
    (UpstreamUnavailable("x", upstreamStatus=504), Outcome.OUTAGE, "outage", True),
    (UpstreamUnavailable("x", upstreamStatus=500), Outcome.CALLER_FAILURE, "caller-failure", False),
    (UpstreamTimeout("x"), Outcome.TIMEOUT, "caller-failure", False),
    (UpstreamBadResponse("x"), Outcome.CALLER_FAILURE, "caller-failure", False),
    (UpstreamUnauthenticated("x"), Outcome.CALLER_MISTAKE, "caller-mistake", False),
    (Forbidden("x"), Outcome.CALLER_MISTAKE, "caller-mistake", False),
    (UpstreamRejected("x"), Outcome.CALLER_MISTAKE, "caller-mistake", False),
    (RateLimited("x"), Outcome.SLOW_DOWN, "slow-down", True),
])
def test_every_upstream_outcome_is_classified_once(error, outcome, kind, retried):
    got = classify(error)
    assert got is outcome and got.kind == kind
    assert (retry_delay(got, None, 0, retry_after_max=5) is not None) is retried
    assert got.failed is (kind in ("outage", "caller-failure"))


def test_backoff_grows_with_full_jitter_and_is_capped():
    rng = random.Random(1)
    for attempt in range(8):
        delays = [retry_delay(Outcome.OUTAGE, None, attempt, 5, rng) for _ in range(200)]
        ceiling = min(BACKOFF_MAX, 0.1 * 2 ** attempt)
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2


def test_retry_after_is_honoured_up_to_the_cap():
    assert retry_delay(Outcome.SLOW_DOWN, 3, 0, retry_after_max=5) >= 3
    assert retry_delay(Outcome.SLOW_DOWN, 6, 0, retry_after_max=5) is None
    assert retry_delay(Outcome.SLOW_DOWN, 0, 0, retry_after_max=5) <= 0.1


# --- the rolling window -----------------------------------------------------------------------------------

def test_the_window_forgets_what_is_older_than_its_length():
    clock = Clock()
    window = RollingWindow(10, clock)
    window.add("a", failed=True)
    clock.advance(5)
    window.add("b", failed=False)
    window.add("c", failed=True, unreachable=True)
    t = window.totals()
    assert (t.calls, t.failures, t.unreachable) == (3, 2, 1)
    assert t.callers == {"a", "b", "c"} and t.failing == {"a", "c"} and t.failure_rate == pytest.approx(2 / 3)
    clock.advance(6)  # "a" is 11 s old
    t = window.totals()
    assert (t.calls, t.failures, t.callers, t.failing) == (2, 1, {"b", "c"}, {"c"})
    clock.advance(10)
    assert window.totals().calls == 0


# --- the breakers -----------------------------------------------------------------------------------------

def breakers(clock, **kw) -> Breakers:
    settings = dict(window=10, min_calls=20, failure_rate=0.5, min_callers=3, caller_min_calls=10, cooldown=5)
    return Breakers(**{**settings, **kw}, clock=clock)


def call(b: Breakers, caller: str, outcome: Outcome) -> Ticket | Refusal:
    ticket = b.admit(caller)
    if isinstance(ticket, Ticket):
        b.record(ticket, outcome)
    return ticket


def test_one_callers_failures_never_open_the_upstream_breaker_but_pause_that_caller():
    clock = Clock()
    b = breakers(clock)
    for _ in range(5):
        call(b, "quiet", Outcome.OK)
    for _ in range(40):
        call(b, "noisy", Outcome.CALLER_FAILURE)  # 500s, 40 of 45 calls failed
        call(b, "noisy2", Outcome.OK)
    assert b.state == "closed"
    refused = b.admit("noisy")
    assert refused == Refusal("caller", 5.0)  # its own breaker: 10 calls, all failed
    assert isinstance(b.admit("quiet"), Ticket) and isinstance(b.admit("noisy2"), Ticket)
    assert b.paused_callers() == 1


def test_an_outage_spread_over_callers_opens_it_for_everyone():
    clock = Clock()
    b = breakers(clock)
    for i in range(19):
        call(b, f"c{i % 3}", Outcome.OUTAGE)
    assert b.state == "closed"  # 19 calls: under the minimum
    call(b, "c0", Outcome.OUTAGE)
    assert b.state == "open"
    assert b.admit("someone-else") == Refusal("upstream", 5.0)
    assert b.paused_callers() == 0  # the callers' own breakers forget what was the upstream's fault


def test_the_failure_rate_and_the_spread_are_both_needed():
    clock = Clock()
    b = breakers(clock)
    for i in range(30):
        call(b, f"c{i % 4}", Outcome.OK)
    for i in range(25):
        call(b, f"c{i % 4}", Outcome.TIMEOUT)  # 25 of 55: under 50 %
    assert b.state == "closed"
    call(b, "c0", Outcome.TIMEOUT)
    for i in range(4):
        call(b, f"c{i}", Outcome.TIMEOUT)  # 30 of 60: at 50 %, and from four callers
    assert b.state == "open"


def test_with_two_active_callers_both_must_fail():
    clock = Clock()
    b = breakers(clock, caller_min_calls=1000)
    for _ in range(30):
        call(b, "a", Outcome.OUTAGE)
        call(b, "b", Outcome.OK)
    assert b.state == "closed"  # min(3 callers, 2 active) = 2 failing callers needed; only "a" fails
    for _ in range(30):
        call(b, "b", Outcome.OUTAGE)
    assert b.state == "open"


def test_an_unreachable_upstream_opens_it_even_with_a_single_caller():
    clock = Clock()
    b = breakers(clock)
    for _ in range(20):
        call(b, "only", Outcome.UNREACHABLE)
    assert b.state == "open"
    # ...while answered failures of a single caller never do: that caller's own breaker pauses it.
    b2 = breakers(clock)
    for _ in range(50):
        call(b2, "only", Outcome.OUTAGE)
    assert b2.state == "closed" and isinstance(b2.admit("only"), Refusal)


def test_caller_mistakes_and_429s_are_not_failures():
    clock = Clock()
    b = breakers(clock, min_callers=1, caller_min_calls=1)
    for i in range(50):
        call(b, f"c{i % 5}", Outcome.CALLER_MISTAKE if i % 2 else Outcome.SLOW_DOWN)
    assert b.state == "closed" and b.paused_callers() == 0


def test_half_open_lets_one_probe_through_and_its_outcome_decides():
    clock = Clock()
    b = breakers(clock)
    for i in range(20):
        call(b, f"c{i % 3}", Outcome.UNREACHABLE)
    assert b.state == "open"
    clock.advance(4.9)
    assert isinstance(b.admit("x"), Refusal)
    clock.advance(0.2)
    assert b.state == "half-open"
    probe = b.admit("x")
    assert isinstance(probe, Ticket) and probe.probes_upstream
    assert b.admit("y") == Refusal("upstream", 0.0)  # one probe at a time
    b.record(probe, Outcome.UNREACHABLE)  # the probe failed: open again, for a whole cooldown
    assert b.state == "open" and b.admit("y") == Refusal("upstream", 5.0)
    clock.advance(5)
    probe = b.admit("y")
    b.abandon(probe)  # cancelled: says nothing, another probe may go
    probe = b.admit("z")
    assert probe.probes_upstream
    b.record(probe, Outcome.CALLER_MISTAKE)  # the upstream answered: it is up
    assert b.state == "closed" and isinstance(b.admit("y"), Ticket)


def test_a_paused_caller_probes_on_its_own_and_closes_on_success():
    clock = Clock()
    b = breakers(clock)
    for _ in range(10):
        call(b, "noisy", Outcome.TIMEOUT)
    assert isinstance(b.admit("noisy"), Refusal)
    clock.advance(5)
    probe = b.admit("noisy")
    assert probe.probes_caller and not probe.probes_upstream
    b.record(probe, Outcome.OK)
    assert b.paused_callers() == 0
    for _ in range(9):  # its window starts afresh: nine new failures are under the minimum
        call(b, "noisy", Outcome.TIMEOUT)
    assert isinstance(b.admit("noisy"), Ticket)


# --- the fair limiter -------------------------------------------------------------------------------------

def limiter(clock, limit=4, **kw) -> FairLimiter:
    return FairLimiter(limit, **{"share": 0.5, "queue_max": 10, "queue_timeout": 5.0, "clock": clock, **kw})


async def test_a_caller_holds_at_most_its_share_so_others_find_a_free_slot():
    lim = limiter(Clock())
    await lim.acquire("noisy", 1)
    await lim.acquire("noisy", 1)
    third = asyncio.ensure_future(lim.acquire("noisy", 1))
    await asyncio.sleep(0)
    assert not third.done() and lim.queued == 1  # at its cap (2 of 4) although two slots are free
    await asyncio.wait_for(lim.acquire("quiet", 1), 0.1)  # at once
    assert lim.held("quiet") == 1 and lim.total == 3
    lim.release("noisy", Outcome.OK)
    await asyncio.wait_for(third, 0.1)
    assert lim.held("noisy") == 2


async def test_waiting_callers_are_served_round_robin():
    lim = limiter(Clock(), limit=2, share=1.0)
    await lim.acquire("a", 1)
    await lim.acquire("a", 1)
    served: list[str] = []

    async def wait(caller: str) -> None:
        await lim.acquire(caller, 5)
        served.append(caller)

    tasks = [asyncio.ensure_future(wait(c)) for c in ("a", "a", "a", "b", "c")]
    await asyncio.sleep(0)
    for _ in range(5):
        holder = "a" if lim.held("a") else next(c for c in ("b", "c") if lim.held(c))
        lim.release(holder, None)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "c", "a", "a"]  # not a, a, a, b, c: a's backlog does not go first


async def test_a_full_queue_and_a_long_wait_are_refused():
    lim = limiter(Clock(), limit=2, queue_max=2, queue_timeout=0.05)
    await lim.acquire("a", 1)
    waiting = [asyncio.ensure_future(lim.acquire("a", 1)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Rejected) as full:
        await lim.acquire("a", 1)
    assert full.value.reason == "queue_full"
    for w in waiting:
        with pytest.raises(Rejected) as late:
            await w
        assert late.value.reason == "queue_timeout"
    assert lim.queued == 0 and lim.total == 1
    with pytest.raises(TimeoutError):  # the request's deadline, shorter than the queue's bound
        await lim.acquire("a", 0.01)


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    lim = limiter(Clock(), limit=2, share=0.5)
    await lim.acquire("a", 1)
    waiter = asyncio.ensure_future(lim.acquire("a", 1))
    await asyncio.sleep(0)
    lim.release("a", None)  # grants the waiter its slot...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.total == 0 and lim.queued == 0


def test_aimd_shrinks_on_overload_and_grows_back_on_success():
    clock = Clock()
    lim = limiter(clock, limit=32)
    for outcome in (Outcome.OUTAGE, Outcome.UNREACHABLE, Outcome.OUTAGE):
        lim.total, lim._held = 1, {"a": 1}
        lim.release("a", outcome)
    assert lim.capacity == int(32 * 0.9 ** 3) and lim.cap == int(lim.limit * 0.5)
    for _ in range(500):
        lim.total, lim._held = 1, {"a": 1}
        lim.release("a", Outcome.CALLER_FAILURE)
    assert lim.capacity == 23  # a 500 is one caller's failure, not overload
    for _ in range(100):
        lim.total, lim._held = 1, {"a": 1}
        lim.release("a", Outcome.OUTAGE)
    assert lim.capacity == lim.min_limit == 4  # never below the floor
    for _ in range(2000):
        lim.total, lim._held = 1, {"a": 1}
        lim.release("a", Outcome.OK)
    assert lim.capacity == 32  # and never above the configured concurrency


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SLOW_DOWN])
def test_timeouts_and_429s_shrink_the_limit_only_when_more_than_one_caller_gets_them(outcome):
    clock = Clock()
    lim = limiter(clock, limit=32)
    for _ in range(20):
        lim.total, lim._held = 1, {"slow": 1}
        lim.release("slow", outcome)
    assert lim.capacity == 32
    lim.total, lim._held = 1, {"other": 1}
    lim.release("other", outcome)
    assert lim.capacity == 28
    clock.advance(11)  # the first caller's trouble is out of the window: "other" is alone again
    lim.total, lim._held = 1, {"other": 1}
    lim.release("other", outcome)
    assert lim.capacity == 28


# --- 429 pauses -------------------------------------------------------------------------------------------

def test_a_429_pauses_its_caller_and_429s_for_two_callers_pause_everyone():
    clock = Clock()
    pacer = Pacer(clock, window=10)
    assert pacer.slow_down("a", 3) is False
    assert pacer.remaining("a") == (3.0, "caller") and pacer.remaining("b") == (0.0, "caller")
    clock.advance(1)
    assert pacer.slow_down("b", None) is True  # a second caller: the upstream throttles everyone
    assert pacer.remaining("c") == (1.0, "upstream")
    assert pacer.remaining("a") == (2.0, "caller")
    clock.advance(2.5)
    assert pacer.remaining("a") == (0.0, "caller") and pacer.paused() == 0
    # Among many active callers, two throttled ones are only those two (the upstream throttles per user).
    pacer = Pacer(clock, window=10)
    assert pacer.slow_down("a", 3, needed=3) is False and pacer.slow_down("b", 3, needed=3) is False
    assert pacer.remaining("c") == (0.0, "caller")
    assert pacer.slow_down("d", 3, needed=3) is True and pacer.remaining("c") == (3.0, "upstream")


# --- together ---------------------------------------------------------------------------------------------

async def test_traffic_control_refuses_with_the_contracts_codes_and_counts_why():
    clock = Clock()
    stats = Stats()
    settings = Settings(breaker_min_calls=4, breaker_min_callers=2, caller_breaker_min_calls=3,
                        upstream_concurrency=2, upstream_queue_max=0, upstream_retry_after_max=0.5)
    traffic = TrafficControl(settings, stats, clock=clock, jitter=lambda: 0)
    for _ in range(3):
        traffic.done(await traffic.admit("noisy", None), Outcome.CALLER_FAILURE)
    with pytest.raises(RateLimited) as paused:
        await traffic.admit("noisy", None)
    assert paused.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 5, "reason": "CALLER_PAUSED"}

    held = await traffic.admit("quiet", None)  # quiet's share is 1 slot of 2; its queue holds none
    with pytest.raises(RateLimited) as full:
        await traffic.admit("quiet", None)
    assert full.value.extensions["reason"] == "QUEUE_FULL"
    traffic.done(held, Outcome.OK)

    traffic.done(await traffic.admit("a", None), Outcome.SLOW_DOWN, retry_after=30)
    with pytest.raises(RateLimited) as slowed:  # 30 s: more than we may wait
        await traffic.admit("a", None)
    assert slowed.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 30, "reason": "UPSTREAM_SLOW_DOWN"}

    assert traffic.readiness()["breaker"] == "closed"  # one caller's failures: only that caller paused

    clock.advance(11)  # a new window: the upstream goes down for everyone
    for caller in ("b", "c", "b", "c"):
        traffic.done(await traffic.admit(caller, None), Outcome.UNREACHABLE)
    with pytest.raises(UpstreamUnavailable) as down:
        await traffic.admit("d", None)
    assert down.value.extensions == {"code": "UPSTREAM_UNAVAILABLE", "retryAfter": 5, "reason": "BREAKER_OPEN"}
    assert stats.rejected == {"caller_breaker": 1, "queue_full": 1, "upstream_slow_down": 1, "breaker_open": 1}
    assert stats.breaker_transitions == {("caller", "open"): 1, ("upstream", "open"): 1}
    assert stats.upstream_outcomes == {"caller_failure": 3, "ok": 1, "slow_down": 1, "unreachable": 4}
    assert traffic.readiness()["breaker"] == "open"


async def test_refusal_says_before_admission_what_the_callers_next_call_would_get_without_admitting_it():
    clock = Clock()
    stats = Stats()
    settings = Settings(caller_breaker_min_calls=2, upstream_concurrency=2, upstream_queue_max=1,
                        upstream_queue_timeout=60, upstream_retry_after_max=0.5)
    traffic = TrafficControl(settings, stats, clock=clock, jitter=lambda: 1)
    assert traffic.refusal("a") is None

    # Its queue full (share: 1 slot of 2, one call queued behind it): the next would be refused, with jitter.
    held = await traffic.admit("a", None)
    waiting = asyncio.ensure_future(traffic.admit("a", None))
    await asyncio.sleep(0)
    refused = traffic.refusal("a")
    assert refused is not None and refused.extensions == {"code": "RATE_LIMITED", "retryAfter": 2, "reason": "QUEUE_FULL"}
    assert traffic.refusal("b") is None  # another caller's queue is its own
    traffic.done(held, Outcome.CALLER_FAILURE)
    traffic.done(await waiting, Outcome.CALLER_FAILURE)  # two failures of two: a's own breaker opens

    refused = traffic.refusal("a")
    assert refused is not None and refused.extensions == {"code": "RATE_LIMITED", "retryAfter": 5, "reason": "CALLER_PAUSED"}
    clock.advance(5)  # cooldown over: the half-open probe may go, and asking did not take it
    assert traffic.refusal("a") is None and traffic.refusal("a") is None
    probe = await traffic.admit("a", None)
    assert probe.probes_caller
    traffic.done(probe, Outcome.OK)

    traffic.done(await traffic.admit("b", None), Outcome.SLOW_DOWN, retry_after=30)
    refused = traffic.refusal("b")
    assert refused is not None and refused.extensions == {"code": "RATE_LIMITED", "retryAfter": 30,
                                                          "reason": "UPSTREAM_SLOW_DOWN"}
    traffic.done(await traffic.admit("c", None), Outcome.SLOW_DOWN, retry_after=0.2)
    assert traffic.refusal("c") is None  # a pause short enough to wait out is waited out by admit
    assert stats.rejected == {"queue_full": 1, "caller_breaker": 1, "upstream_slow_down": 1}


async def test_calls_queued_together_give_up_at_different_times_within_the_queue_timeout():
    draws = iter([0.8, 1.0])
    lim = limiter(Clock(), limit=2, queue_max=5, queue_timeout=0.25, spread=lambda: next(draws))
    await lim.acquire("a", 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended = {}

    async def wait(name: str) -> None:
        with pytest.raises(Rejected):
            await lim.acquire("a", 5)
        ended[name] = loop.time() - started

    await asyncio.gather(wait("first"), wait("second"))
    assert 0.19 <= ended["first"] < 0.24 <= ended["second"] < 0.4
