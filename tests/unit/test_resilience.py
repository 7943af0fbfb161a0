"""Retry policy and circuit breaker, with a controlled clock."""

from __future__ import annotations

import random

import pytest

from gateway.errors import (Forbidden, RateLimited, UpstreamBadResponse, UpstreamRejected, UpstreamTimeout,
                            UpstreamUnauthenticated, UpstreamUnavailable)
from gateway.datasource.resilience import BACKOFF_MAX, CircuitBreaker, is_outage, retry_delay


@pytest.mark.parametrize("error,retried", [
    (UpstreamUnavailable("x"), True),  # connection failure
    (UpstreamUnavailable("x", upstreamStatus=502), True),
    (UpstreamUnavailable("x", upstreamStatus=503), True),
    (UpstreamUnavailable("x", upstreamStatus=504), True),
    (UpstreamUnavailable("x", upstreamStatus=500), False),
    (RateLimited("x"), True),
    (UpstreamTimeout("x"), False),
    (UpstreamBadResponse("x"), False),
    (Forbidden("x"), False),
    (UpstreamUnauthenticated("x"), False),
    (UpstreamRejected("x"), False),
])
def test_what_is_retried(error, retried):
    assert (retry_delay(error, 0, retry_after_max=5) is not None) is retried


def test_backoff_grows_with_full_jitter_and_is_capped():
    rng = random.Random(1)
    error = UpstreamUnavailable("x", upstreamStatus=503)
    for attempt in range(8):
        delays = [retry_delay(error, attempt, 5, rng) for _ in range(200)]
        ceiling = min(BACKOFF_MAX, 0.1 * 2 ** attempt)
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2


def test_retry_after_is_honoured_up_to_the_cap():
    assert retry_delay(RateLimited("x", retryAfter=3), 0, retry_after_max=5) >= 3
    assert retry_delay(RateLimited("x", retryAfter=6), 0, retry_after_max=5) is None
    assert retry_delay(RateLimited("x", retryAfter=0), 0, retry_after_max=5) <= 0.1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_outages_only():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown=10, clock=clock)
    breaker.failure(outage=True)
    breaker.failure(outage=True)
    breaker.success()  # a success in between resets the count
    breaker.failure(outage=True)
    breaker.failure(outage=True)
    breaker.failure(outage=False)  # the upstream answered (a 4xx): it is up
    assert breaker.state == "closed" and breaker.allow()
    for _ in range(3):
        breaker.failure(outage=True)
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in() == 10


def test_breaker_half_open_lets_one_probe_through():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=5, clock=clock)
    breaker.failure(outage=True)
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow() and breaker.state == "half-open"
    assert not breaker.allow()  # only one probe at a time
    breaker.failure(outage=True)  # the probe failed: open again, for a full cooldown
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_an_abandoned_probe_does_not_wedge_the_breaker():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=1, clock=clock)
    breaker.failure(outage=True)
    clock.now += 1
    assert breaker.allow()
    breaker.abandon()  # the probing request was cancelled
    assert breaker.allow()


def test_outages():
    assert is_outage(UpstreamUnavailable("x")) and is_outage(UpstreamTimeout("x"))
    assert not is_outage(RateLimited("x")) and not is_outage(UpstreamBadResponse("x"))
